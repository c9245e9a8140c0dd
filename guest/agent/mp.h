/* mp.h - the small MessagePack subset the guest agent speaks (maps, arrays,
 * strings, binaries, integers, booleans, nil): a growable writer and a cursor
 * reader. Enough for guest/PROTOCOL.md, nothing more. */
#ifndef HS_MP_H
#define HS_MP_H

#include <stddef.h>
#include <stdint.h>

struct mpw {
	uint8_t *buf;
	size_t len, cap;
};

void mpw_init(struct mpw *w);
void mpw_free(struct mpw *w);
void mpw_map(struct mpw *w, uint32_t n);
void mpw_arr(struct mpw *w, uint32_t n);
void mpw_str(struct mpw *w, const char *s);
void mpw_strn(struct mpw *w, const char *s, size_t n);
void mpw_int(struct mpw *w, int64_t v);
void mpw_bool(struct mpw *w, int v);
void mpw_nil(struct mpw *w);

/* A read cursor over one encoded value (and whatever follows it). */
struct mpr {
	const uint8_t *p, *end;
};

enum mp_kind { MP_ERR, MP_NIL, MP_BOOL, MP_INT, MP_STR, MP_BIN, MP_ARR, MP_MAP, MP_OTHER };

enum mp_kind mpr_kind(const struct mpr *r);
int mpr_skip(struct mpr *r);
int mpr_map(struct mpr *r, uint32_t *n);
int mpr_arr(struct mpr *r, uint32_t *n);
int mpr_str(struct mpr *r, const char **s, uint32_t *n);
int mpr_int(struct mpr *r, int64_t *v);
int mpr_bool(struct mpr *r, int *v);

/* Looks `key` up in the map at `map` (not consumed); on success `val` points
 * at the value. Returns 0 if found, -1 otherwise. */
int mp_get(struct mpr map, const char *key, struct mpr *val);
/* Convenience getters with defaults; strings are malloc'ed (NULL if absent). */
char *mp_get_str(struct mpr map, const char *key);
int64_t mp_get_int(struct mpr map, const char *key, int64_t def);
int mp_get_bool(struct mpr map, const char *key, int def);
/* An array of strings as a NULL-terminated malloc'ed vector (NULL if absent). */
char **mp_get_strv(struct mpr map, const char *key);
void strv_free(char **v);

#endif
