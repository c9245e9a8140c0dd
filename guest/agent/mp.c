/* mp.c - MessagePack subset used by the guest agent protocol (see mp.h). */
#include "mp.h"

#include <stdlib.h>
#include <string.h>

static void put(struct mpw *w, const void *p, size_t n)
{
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 256;
		while (cap < w->len + n)
			cap *= 2;
		w->buf = realloc(w->buf, cap);
		if (!w->buf)
			abort();
		w->cap = cap;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static void put8(struct mpw *w, uint8_t v) { put(w, &v, 1); }

static void putbe(struct mpw *w, uint64_t v, int bytes)
{
	uint8_t b[8];
	for (int i = 0; i < bytes; i++)
		b[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
	put(w, b, (size_t)bytes);
}

void mpw_init(struct mpw *w) { memset(w, 0, sizeof(*w)); }
void mpw_free(struct mpw *w) { free(w->buf); mpw_init(w); }

void mpw_map(struct mpw *w, uint32_t n)
{
	if (n < 16) {
		put8(w, (uint8_t)(0x80 | n));
	} else if (n < 65536) {
		put8(w, 0xde);
		putbe(w, n, 2);
	} else {
		put8(w, 0xdf);
		putbe(w, n, 4);
	}
}

void mpw_arr(struct mpw *w, uint32_t n)
{
	if (n < 16) {
		put8(w, (uint8_t)(0x90 | n));
	} else if (n < 65536) {
		put8(w, 0xdc);
		putbe(w, n, 2);
	} else {
		put8(w, 0xdd);
		putbe(w, n, 4);
	}
}

void mpw_strn(struct mpw *w, const char *s, size_t n)
{
	if (n < 32) {
		put8(w, (uint8_t)(0xa0 | n));
	} else if (n < 256) {
		put8(w, 0xd9);
		putbe(w, n, 1);
	} else if (n < 65536) {
		put8(w, 0xda);
		putbe(w, n, 2);
	} else {
		put8(w, 0xdb);
		putbe(w, n, 4);
	}
	put(w, s, n);
}

void mpw_str(struct mpw *w, const char *s) { mpw_strn(w, s ? s : "", s ? strlen(s) : 0); }

void mpw_int(struct mpw *w, int64_t v)
{
	if (v >= 0 && v < 128) {
		put8(w, (uint8_t)v);
	} else if (v < 0 && v >= -32) {
		put8(w, (uint8_t)(int8_t)v);
	} else {
		put8(w, 0xd3);
		putbe(w, (uint64_t)v, 8);
	}
}

void mpw_bool(struct mpw *w, int v) { put8(w, v ? 0xc3 : 0xc2); }
void mpw_nil(struct mpw *w) { put8(w, 0xc0); }

static int need(const struct mpr *r, size_t n) { return (size_t)(r->end - r->p) >= n; }

static uint64_t getbe(const uint8_t *p, int bytes)
{
	uint64_t v = 0;
	for (int i = 0; i < bytes; i++)
		v = (v << 8) | p[i];
	return v;
}

enum mp_kind mpr_kind(const struct mpr *r)
{
	if (!need(r, 1))
		return MP_ERR;
	uint8_t b = *r->p;
	if (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3))
		return MP_INT;
	if ((b & 0xf0) == 0x80 || b == 0xde || b == 0xdf)
		return MP_MAP;
	if ((b & 0xf0) == 0x90 || b == 0xdc || b == 0xdd)
		return MP_ARR;
	if ((b & 0xe0) == 0xa0 || (b >= 0xd9 && b <= 0xdb))
		return MP_STR;
	if (b >= 0xc4 && b <= 0xc6)
		return MP_BIN;
	if (b == 0xc0)
		return MP_NIL;
	if (b == 0xc2 || b == 0xc3)
		return MP_BOOL;
	return MP_OTHER;
}

/* Reads a container header (map or array) with the given fix/16/32 markers. */
static int read_len(struct mpr *r, uint8_t fixmask, uint8_t fixbits, uint8_t m16, uint8_t m32,
		    uint32_t *n)
{
	if (!need(r, 1))
		return -1;
	uint8_t b = *r->p;
	if ((b & fixmask) == fixbits) {
		*n = b & (uint8_t)~fixmask;
		r->p += 1;
	} else if (b == m16 && need(r, 3)) {
		*n = (uint32_t)getbe(r->p + 1, 2);
		r->p += 3;
	} else if (b == m32 && need(r, 5)) {
		*n = (uint32_t)getbe(r->p + 1, 4);
		r->p += 5;
	} else {
		return -1;
	}
	return 0;
}

int mpr_map(struct mpr *r, uint32_t *n) { return read_len(r, 0xf0, 0x80, 0xde, 0xdf, n); }
int mpr_arr(struct mpr *r, uint32_t *n) { return read_len(r, 0xf0, 0x90, 0xdc, 0xdd, n); }

/* Strings and binaries: returns the payload. */
static int read_bytes(struct mpr *r, const char **s, uint32_t *n)
{
	if (!need(r, 1))
		return -1;
	uint8_t b = *r->p;
	size_t hdr;
	uint32_t len;
	if ((b & 0xe0) == 0xa0) {
		hdr = 1;
		len = b & 0x1f;
	} else if ((b == 0xd9 || b == 0xc4) && need(r, 2)) {
		hdr = 2;
		len = r->p[1];
	} else if ((b == 0xda || b == 0xc5) && need(r, 3)) {
		hdr = 3;
		len = (uint32_t)getbe(r->p + 1, 2);
	} else if ((b == 0xdb || b == 0xc6) && need(r, 5)) {
		hdr = 5;
		len = (uint32_t)getbe(r->p + 1, 4);
	} else {
		return -1;
	}
	if (!need(r, hdr + len))
		return -1;
	*s = (const char *)r->p + hdr;
	*n = len;
	r->p += hdr + len;
	return 0;
}

int mpr_str(struct mpr *r, const char **s, uint32_t *n)
{
	enum mp_kind k = mpr_kind(r);
	if (k != MP_STR && k != MP_BIN)
		return -1;
	return read_bytes(r, s, n);
}

int mpr_int(struct mpr *r, int64_t *v)
{
	if (!need(r, 1))
		return -1;
	uint8_t b = *r->p;
	static const int sizes[] = {1, 2, 4, 8};
	if (b <= 0x7f) {
		*v = b;
		r->p += 1;
	} else if (b >= 0xe0) {
		*v = (int8_t)b;
		r->p += 1;
	} else if (b >= 0xcc && b <= 0xcf) {
		int sz = sizes[b - 0xcc];
		if (!need(r, 1 + (size_t)sz))
			return -1;
		*v = (int64_t)getbe(r->p + 1, sz);
		r->p += 1 + sz;
	} else if (b >= 0xd0 && b <= 0xd3) {
		int sz = sizes[b - 0xd0];
		if (!need(r, 1 + (size_t)sz))
			return -1;
		uint64_t u = getbe(r->p + 1, sz);
		int shift = 64 - 8 * sz;
		*v = shift ? ((int64_t)(u << shift)) >> shift : (int64_t)u;
		r->p += 1 + sz;
	} else {
		return -1;
	}
	return 0;
}

int mpr_bool(struct mpr *r, int *v)
{
	if (!need(r, 1) || (*r->p != 0xc2 && *r->p != 0xc3))
		return -1;
	*v = *r->p == 0xc3;
	r->p += 1;
	return 0;
}

int mpr_skip(struct mpr *r)
{
	uint32_t n;
	const char *s;
	int64_t i;
	switch (mpr_kind(r)) {
	case MP_NIL:
	case MP_BOOL:
		r->p += 1;
		return 0;
	case MP_INT:
		return mpr_int(r, &i);
	case MP_STR:
	case MP_BIN:
		return read_bytes(r, &s, &n);
	case MP_ARR:
		if (mpr_arr(r, &n))
			return -1;
		while (n--)
			if (mpr_skip(r))
				return -1;
		return 0;
	case MP_MAP:
		if (mpr_map(r, &n))
			return -1;
		while (n--)
			if (mpr_skip(r) || mpr_skip(r))
				return -1;
		return 0;
	default:
		return -1;
	}
}

int mp_get(struct mpr map, const char *key, struct mpr *val)
{
	uint32_t n;
	size_t klen = strlen(key);
	if (mpr_map(&map, &n))
		return -1;
	while (n--) {
		const char *k;
		uint32_t kn;
		if (mpr_kind(&map) == MP_STR) {
			if (mpr_str(&map, &k, &kn))
				return -1;
			if (kn == klen && memcmp(k, key, klen) == 0) {
				*val = map;
				return mpr_kind(val) == MP_NIL ? -1 : 0;
			}
		} else if (mpr_skip(&map)) {
			return -1;
		}
		if (mpr_skip(&map))
			return -1;
	}
	return -1;
}

char *mp_get_str(struct mpr map, const char *key)
{
	struct mpr v;
	const char *s;
	uint32_t n;
	if (mp_get(map, key, &v) || mpr_str(&v, &s, &n))
		return NULL;
	return strndup(s, n);
}

int64_t mp_get_int(struct mpr map, const char *key, int64_t def)
{
	struct mpr v;
	int64_t i;
	if (mp_get(map, key, &v) || mpr_int(&v, &i))
		return def;
	return i;
}

int mp_get_bool(struct mpr map, const char *key, int def)
{
	struct mpr v;
	int b;
	if (mp_get(map, key, &v) || mpr_bool(&v, &b))
		return def;
	return b;
}

char **mp_get_strv(struct mpr map, const char *key)
{
	struct mpr v;
	uint32_t n;
	if (mp_get(map, key, &v) || mpr_arr(&v, &n))
		return NULL;
	char **out = calloc((size_t)n + 1, sizeof(char *));
	if (!out)
		abort();
	for (uint32_t i = 0; i < n; i++) {
		const char *s;
		uint32_t len;
		if (mpr_str(&v, &s, &len)) {
			strv_free(out);
			return NULL;
		}
		out[i] = strndup(s, len);
	}
	return out;
}

void strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}
