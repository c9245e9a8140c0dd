/* hs.h - shared declarations of hyperstart, the Hypernetes guest agent (PID 1
 * of every pod VM). See guest/PROTOCOL.md for the host<->guest protocol. */
#ifndef HS_H
#define HS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mp.h"

#define HS_AGENT_VERSION "1.0"
#define HS_PROTO_VERSION 1
#define HS_MAGIC0 'H'
#define HS_MAGIC1 'S'
#define HS_HDR 12
#define HS_MAX_PAYLOAD (1u << 20)
#define HS_DATA_CHUNK 16384

enum frame_type {
	F_REQUEST = 1,  /* host -> guest, msgpack map {id, op, ...} */
	F_RESPONSE = 2, /* guest -> host, msgpack map {id, ok, error?, ...} */
	F_EVENT = 3,    /* guest -> host, msgpack map {event, ...} */
	F_DATA = 4,     /* both ways, raw bytes of one stream; empty = end of stream */
};

/* A process the agent started: a container's init or an exec'd process. */
struct proc {
	struct proc *next;
	struct container *ctr;
	char *exec_id;  /* NULL for a container's init */
	pid_t pid;
	int tty;
	int in_fd;      /* stdin pipe (or pty master); -1 when closed */
	int out_fd;     /* stdout pipe (or pty master) */
	int err_fd;     /* stderr pipe; -1 with a tty */
	uint32_t s_in, s_out, s_err;
	uint8_t *pending; /* stdin bytes not yet accepted by the pipe */
	size_t npending;
	int close_in_after_pending;
	int reaped;
	int status;     /* wait status */
	int exit_sent;
};

enum ctr_state { C_CREATED, C_RUNNING, C_EXITED };

struct container {
	struct container *next;
	char *id;
	char *dir;      /* /run/hs/c/<id> */
	char *rootfs;   /* <dir>/rootfs */
	char *cgroup;   /* /sys/fs/cgroup/hs/<id> or NULL */
	char **argv, **env;
	char *cwd;
	uid_t uid;
	gid_t gid;
	int tty, open_stdin;
	uint32_t s_in, s_out, s_err;
	enum ctr_state state;
	struct proc *init;
	int exit_code, signal, oom;
	char *reason, *message;
};

/* main.c */
extern struct container *containers;
extern struct proc *procs;
void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void proc_unlink(struct proc *p);
void send_frame(uint8_t type, uint32_t stream, const void *data, size_t len);
int write_file(const char *path, const char *data);
int mkdir_p(const char *path, mode_t mode);

/* container.c */
int ctr_create(struct mpr req, struct container **out, char *err, size_t errlen);
int ctr_start(struct container *c, char *err, size_t errlen);
int ctr_exec(struct container *c, struct mpr req, struct proc **out, char *err, size_t errlen);
int ctr_remove(struct container *c, char *err, size_t errlen);
void ctr_free(struct container *c);
int ctr_oom_killed(struct container *c);
int setup_cgroups(void);

/* net.c */
int net_configure(struct mpr req, char *err, size_t errlen);

#endif
