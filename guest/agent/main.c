/* main.c - hyperstart, the Hypernetes guest agent: PID 1 of every pod VM.
 *
 * It sets the VM up (mounts, kernel modules, cgroups), finds its control
 * channel (a virtio-serial port named io.hypernetes.agent), then serves the
 * host's requests in one poll loop: pod set-up, containers, execs, signals,
 * stdio streams, exit reports and shutdown. The protocol is in
 * guest/PROTOCOL.md. While no host is connected it stops reading container
 * output, so nothing is lost while the host-side driver restarts: the
 * containers just block on a full pipe until the host is back. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "hs.h"

#define PORT_NAME "io.hypernetes.agent"

struct container *containers;
struct proc *procs;

static int port = -1;
static int connected;
static uint8_t *inbuf;
static size_t inlen, incap;

void logmsg(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	/* stderr is the VM console: the boot log the host keeps per pod. */
	if (write(2, "hyperstart: ", 12) < 0 || write(2, buf, (size_t)n) < 0)
		return;
}

int write_file(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	size_t len = strlen(data);
	ssize_t n = write(fd, data, len);
	int saved = errno;
	close(fd);
	errno = saved;
	return n == (ssize_t)len ? 0 : -1;
}

int mkdir_p(const char *path, mode_t mode)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -1;
	for (char *p = tmp + 1; *p; p++) {
		if (*p == '/') {
			*p = 0;
			if (mkdir(tmp, mode) && errno != EEXIST)
				return -1;
			*p = '/';
		}
	}
	if (mkdir(tmp, mode) && errno != EEXIST)
		return -1;
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Waits until the host end of the port is connected and writable. */
static void wait_writable(void)
{
	for (;;) {
		struct pollfd p = {.fd = port, .events = POLLOUT};
		if (poll(&p, 1, 200) < 0 && errno != EINTR)
			return;
		if ((p.revents & POLLOUT) && !(p.revents & POLLHUP))
			return;
	}
}

/* One frame, one write(): a frame stays whole in a single virtio buffer, so a
 * host that disconnects loses whole frames, never half of one. */
void send_frame(uint8_t type, uint32_t stream, const void *data, size_t len)
{
	uint8_t *buf = malloc(HS_HDR + len);
	if (!buf)
		abort();
	buf[0] = HS_MAGIC0;
	buf[1] = HS_MAGIC1;
	buf[2] = HS_PROTO_VERSION;
	buf[3] = type;
	for (int i = 0; i < 4; i++) {
		buf[4 + i] = (uint8_t)(stream >> (24 - 8 * i));
		buf[8 + i] = (uint8_t)(len >> (24 - 8 * i));
	}
	if (len)
		memcpy(buf + HS_HDR, data, len);
	size_t off = 0, total = HS_HDR + len;
	while (off < total) {
		ssize_t n = write(port, buf + off, total - off);
		if (n > 0) {
			off += (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else {
			wait_writable();
		}
	}
	free(buf);
}

static void send_msg(uint8_t type, struct mpw *w)
{
	send_frame(type, 0, w->buf, w->len);
	mpw_free(w);
}

static void reply_error(int64_t id, const char *reason, const char *message)
{
	struct mpw w;
	mpw_init(&w);
	mpw_map(&w, 4);
	mpw_str(&w, "id");
	mpw_int(&w, id);
	mpw_str(&w, "ok");
	mpw_bool(&w, 0);
	mpw_str(&w, "reason");
	mpw_str(&w, reason);
	mpw_str(&w, "error");
	mpw_str(&w, message);
	send_msg(F_RESPONSE, &w);
}

/* Starts an OK response with `extra` more fields for the caller to write. */
static void reply_begin(struct mpw *w, int64_t id, uint32_t extra)
{
	mpw_init(w);
	mpw_map(w, 2 + extra);
	mpw_str(w, "id");
	mpw_int(w, id);
	mpw_str(w, "ok");
	mpw_bool(w, 1);
}

static void reply_ok(int64_t id)
{
	struct mpw w;
	reply_begin(&w, id, 0);
	send_msg(F_RESPONSE, &w);
}

static struct container *find_container(const char *id)
{
	for (struct container *c = containers; c && id; c = c->next)
		if (!strcmp(c->id, id))
			return c;
	return NULL;
}

static struct proc *find_proc(const char *cid, const char *exec_id)
{
	for (struct proc *p = procs; p; p = p->next) {
		if (!p->ctr || strcmp(p->ctr->id, cid))
			continue;
		if (!exec_id ? !p->exec_id : (p->exec_id && !strcmp(p->exec_id, exec_id)))
			return p;
	}
	return NULL;
}

void proc_unlink(struct proc *p)
{
	for (struct proc **pp = &procs; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	if (p->ctr && p->ctr->init == p)
		p->ctr->init = NULL;
	if (p->in_fd >= 0)
		close(p->in_fd);
	if (p->out_fd >= 0)
		close(p->out_fd);
	if (p->err_fd >= 0)
		close(p->err_fd);
	free(p->pending);
	free(p->exec_id);
	free(p);
}

static int exit_code_of(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 255;
}

static void write_ctr_state(struct mpw *w, struct container *c)
{
	static const char *names[] = {"created", "running", "exited"};
	mpw_map(w, 8);
	mpw_str(w, "container");
	mpw_str(w, c->id);
	mpw_str(w, "state");
	mpw_str(w, names[c->state]);
	mpw_str(w, "pid");
	mpw_int(w, c->init ? c->init->pid : 0);
	mpw_str(w, "exit_code");
	mpw_int(w, c->exit_code);
	mpw_str(w, "signal");
	mpw_int(w, c->signal);
	mpw_str(w, "oom");
	mpw_bool(w, c->oom);
	mpw_str(w, "reason");
	mpw_str(w, c->reason);
	mpw_str(w, "message");
	mpw_str(w, c->message);
}

/* Reports an exit once the process is reaped and its output is drained. */
static void maybe_finish(struct proc *p)
{
	if (!p->reaped || p->exit_sent)
		return;
	if (!p->exec_id && (p->out_fd >= 0 || p->err_fd >= 0))
		return; /* a container's init: its pipes close when its PID namespace is gone */
	p->exit_sent = 1;
	for (uint32_t s = 0; s < 2; s++) {
		uint32_t stream = s ? p->s_err : p->s_out;
		if (stream && (s ? p->err_fd : p->out_fd) >= 0)
			send_frame(F_DATA, stream, NULL, 0);
	}
	struct container *c = p->ctr;
	int code = exit_code_of(p->status);
	int sig = WIFSIGNALED(p->status) ? WTERMSIG(p->status) : 0;
	int oom = 0;
	if (!p->exec_id && c) {
		oom = ctr_oom_killed(c);
		c->state = C_EXITED;
		c->exit_code = code;
		c->signal = sig;
		c->oom = oom;
		free(c->reason);
		c->reason = strdup(oom ? "OOMKilled" : code == 0 ? "Completed" : "Error");
	}
	struct mpw w;
	mpw_init(&w);
	mpw_map(&w, 7);
	mpw_str(&w, "event");
	mpw_str(&w, "exit");
	mpw_str(&w, "container");
	mpw_str(&w, c ? c->id : "");
	mpw_str(&w, "exec_id");
	if (p->exec_id)
		mpw_str(&w, p->exec_id);
	else
		mpw_nil(&w);
	mpw_str(&w, "pid");
	mpw_int(&w, p->pid);
	mpw_str(&w, "exit_code");
	mpw_int(&w, code);
	mpw_str(&w, "signal");
	mpw_int(&w, sig);
	mpw_str(&w, "oom");
	mpw_bool(&w, oom);
	send_msg(F_EVENT, &w);
	proc_unlink(p);
}

/* Forwards what a process wrote; returns 0 at end of stream. */
static int pump_output(struct proc *p, int *fd, uint32_t stream)
{
	uint8_t buf[HS_DATA_CHUNK];
	(void)p;
	ssize_t n = read(*fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 1;
	if (n <= 0) { /* EOF, or EIO from a pty whose other side is closed */
		if (stream)
			send_frame(F_DATA, stream, NULL, 0);
		close(*fd);
		*fd = -1;
		return 0;
	}
	if (stream)
		send_frame(F_DATA, stream, buf, (size_t)n);
	return 1;
}

/* Forwards whatever output is ready right now, without waiting for more. */
static void drain(struct proc *p, int *fd, uint32_t stream)
{
	for (;;) {
		struct pollfd pf = {.fd = *fd, .events = POLLIN};
		if (*fd < 0 || poll(&pf, 1, 0) <= 0 || !pump_output(p, fd, stream))
			return;
	}
}

static void flush_stdin(struct proc *p)
{
	while (p->npending && p->in_fd >= 0) {
		ssize_t n = write(p->in_fd, p->pending, p->npending);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			p->npending = 0; /* reader gone: drop */
			break;
		}
		memmove(p->pending, p->pending + n, p->npending - (size_t)n);
		p->npending -= (size_t)n;
	}
	if (!p->npending && p->close_in_after_pending && p->in_fd >= 0) {
		if (p->tty) {
			/* A pty has one fd for both ways: send EOF (^D) instead of closing. */
			char eot = 4;
			if (write(p->in_fd, &eot, 1) < 0)
				logmsg("pty eof: %m");
		} else {
			close(p->in_fd);
			p->in_fd = -1;
		}
		p->close_in_after_pending = 0;
	}
}

static void on_stdin(uint32_t stream, const uint8_t *data, size_t len)
{
	for (struct proc *p = procs; p; p = p->next) {
		if (!p->s_in || p->s_in != stream)
			continue;
		if (!len) {
			p->close_in_after_pending = 1;
		} else if (p->in_fd >= 0) {
			p->pending = realloc(p->pending, p->npending + len);
			if (!p->pending)
				abort();
			memcpy(p->pending + p->npending, data, len);
			p->npending += len;
		}
		flush_stdin(p);
		return;
	}
}

static void reap(void)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			return;
		for (struct proc *p = procs; p; p = p->next) {
			if (p->pid != pid || p->reaped)
				continue;
			p->reaped = 1;
			p->status = status;
			if (p->exec_id) { /* drain what is already there, then report */
				drain(p, &p->out_fd, p->s_out);
				drain(p, &p->err_fd, p->s_err);
			}
			maybe_finish(p);
			break;
		}
	}
}

static void op_state(int64_t id)
{
	struct mpw w;
	uint32_t nc = 0, np = 0;
	for (struct container *c = containers; c; c = c->next)
		nc++;
	for (struct proc *p = procs; p; p = p->next)
		np += p->exec_id != NULL;
	reply_begin(&w, id, 2);
	mpw_str(&w, "containers");
	mpw_arr(&w, nc);
	for (struct container *c = containers; c; c = c->next)
		write_ctr_state(&w, c);
	mpw_str(&w, "execs");
	mpw_arr(&w, np);
	for (struct proc *p = procs; p; p = p->next) {
		if (!p->exec_id)
			continue;
		mpw_map(&w, 3);
		mpw_str(&w, "container");
		mpw_str(&w, p->ctr->id);
		mpw_str(&w, "exec_id");
		mpw_str(&w, p->exec_id);
		mpw_str(&w, "pid");
		mpw_int(&w, p->pid);
	}
	send_msg(F_RESPONSE, &w);
}

static void shutdown_vm(void)
{
	for (struct proc *p = procs; p; p = p->next)
		if (!p->reaped)
			kill(p->pid, SIGKILL);
	for (struct container *c = containers; c; c = c->next) {
		char err[128];
		ctr_remove(c, err, sizeof(err));
	}
	sync();
	/* With -no-reboot, QEMU exits when the guest resets (reboot=t on the
	 * kernel command line makes that a triple fault, which needs no ACPI). */
	reboot(RB_AUTOBOOT);
	_exit(0);
}

/* After a pod VM is restored from a template, every clone starts with the
 * template's RNG state and a clock stopped at the moment it was saved. The
 * host sends fresh entropy and its wall-clock time with setup_pod: the bytes
 * are mixed into the input pool (credited: they come from the host's CSPRNG)
 * and the CRNG is reseeded at once, so no two pods share random numbers;
 * then CLOCK_REALTIME is set. */
static int seed_and_clock(struct mpr req, char *err, size_t errlen)
{
	struct mpr v;
	const char *bytes;
	uint32_t n;
	if (!mp_get(req, "entropy", &v) && !mpr_str(&v, &bytes, &n) && n > 0 && n <= 512) {
		struct {
			struct rand_pool_info info;
			uint8_t buf[512];
		} e;
		e.info.entropy_count = (int)n * 8;
		e.info.buf_size = (int)n;
		memcpy(e.buf, bytes, n);
		int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || ioctl(fd, RNDADDENTROPY, &e.info) || ioctl(fd, RNDRESEEDCRNG)) {
			snprintf(err, errlen, "reseeding the RNG: %s", strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		close(fd);
	}
	int64_t ns = mp_get_int(req, "time_ns", 0);
	if (ns > 0) {
		struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
		if (clock_settime(CLOCK_REALTIME, &ts)) {
			snprintf(err, errlen, "setting the clock: %s", strerror(errno));
			return -1;
		}
	}
	return 0;
}

static void handle_request(const uint8_t *data, size_t len)
{
	struct mpr req = {data, data + len};
	int64_t id = mp_get_int(req, "id", -1);
	char *op = mp_get_str(req, "op");
	char *cid = mp_get_str(req, "container");
	char *eid = mp_get_str(req, "exec_id");
	char err[512] = "";
	struct container *c = find_container(cid);
	if (!op) {
		reply_error(id, "BadRequest", "no op");
	} else if (!strcmp(op, "hello")) {
		struct utsname u;
		struct mpw w;
		uname(&u);
		char *nonce = mp_get_str(req, "nonce");
		reply_begin(&w, id, 5);
		mpw_str(&w, "nonce");
		mpw_str(&w, nonce);
		mpw_str(&w, "version");
		mpw_int(&w, HS_PROTO_VERSION);
		mpw_str(&w, "agent");
		mpw_str(&w, HS_AGENT_VERSION);
		mpw_str(&w, "kernel");
		mpw_str(&w, u.release);
		mpw_str(&w, "uptime_ms");
		mpw_int(&w, now_ms());
		send_msg(F_RESPONSE, &w);
		free(nonce);
	} else if (!strcmp(op, "ping")) {
		reply_ok(id);
	} else if (!strcmp(op, "setup_pod")) {
		if (seed_and_clock(req, err, sizeof(err)))
			reply_error(id, "SetupFailed", err);
		else if (net_configure(req, err, sizeof(err)))
			reply_error(id, "NetworkSetupFailed", err);
		else
			reply_ok(id);
	} else if (!strcmp(op, "state")) {
		op_state(id);
	} else if (!strcmp(op, "create")) {
		struct container *nc;
		if (c)
			reply_error(id, "AlreadyExists", "container exists");
		else if (ctr_create(req, &nc, err, sizeof(err)))
			reply_error(id, "CreateContainerError", err);
		else {
			nc->next = containers;
			containers = nc;
			reply_ok(id);
		}
	} else if (!c) {
		reply_error(id, "NotFound", "no such container");
	} else if (!strcmp(op, "start")) {
		if (c->state != C_CREATED)
			reply_error(id, "BadState", "container already started");
		else if (ctr_start(c, err, sizeof(err)))
			reply_error(id, "ContainerCannotRun", err);
		else {
			struct mpw w;
			reply_begin(&w, id, 1);
			mpw_str(&w, "pid");
			mpw_int(&w, c->init->pid);
			send_msg(F_RESPONSE, &w);
		}
	} else if (!strcmp(op, "exec")) {
		struct proc *p;
		if (c->state != C_RUNNING || !c->init)
			reply_error(id, "BadState", "container is not running");
		else if (!eid || find_proc(cid, eid))
			reply_error(id, "BadRequest", "missing or duplicate exec_id");
		else if (ctr_exec(c, req, &p, err, sizeof(err)))
			reply_error(id, "ExecFailed", err);
		else {
			struct mpw w;
			reply_begin(&w, id, 1);
			mpw_str(&w, "pid");
			mpw_int(&w, p->pid);
			send_msg(F_RESPONSE, &w);
		}
	} else if (!strcmp(op, "signal") || !strcmp(op, "resize")) {
		struct proc *p = find_proc(cid, eid);
		if (!p || p->reaped) {
			reply_error(id, "NotFound", "no such running process");
		} else if (op[0] == 's') {
			if (kill(p->pid, (int)mp_get_int(req, "signal", SIGTERM)))
				reply_error(id, "SignalFailed", strerror(errno));
			else
				reply_ok(id);
		} else {
			struct winsize ws = {.ws_row = (unsigned short)mp_get_int(req, "rows", 24),
					     .ws_col = (unsigned short)mp_get_int(req, "cols", 80)};
			if (!p->tty || ioctl(p->out_fd, TIOCSWINSZ, &ws))
				reply_error(id, "ResizeFailed", p->tty ? strerror(errno) : "no tty");
			else
				reply_ok(id);
		}
	} else if (!strcmp(op, "remove")) {
		if (c->state == C_RUNNING)
			reply_error(id, "BadState", "container is running");
		else if (ctr_remove(c, err, sizeof(err)))
			reply_error(id, "RemoveFailed", err);
		else {
			for (struct container **pp = &containers; *pp; pp = &(*pp)->next) {
				if (*pp == c) {
					*pp = c->next;
					break;
				}
			}
			ctr_free(c);
			reply_ok(id);
		}
	} else {
		reply_error(id, "BadRequest", "unknown op");
	}
	free(op);
	free(cid);
	free(eid);
}

static void handle_frame(uint8_t type, uint32_t stream, const uint8_t *data, size_t len)
{
	if (type == F_REQUEST) {
		struct mpr req = {data, data + len};
		char *op = mp_get_str(req, "op");
		if (op && !strcmp(op, "shutdown")) {
			reply_ok(mp_get_int(req, "id", -1));
			free(op);
			shutdown_vm();
		}
		free(op);
		handle_request(data, len);
	} else if (type == F_DATA) {
		on_stdin(stream, data, len);
	}
}

static void on_port_readable(void)
{
	if (inlen + 65536 > incap) {
		incap = inlen + 65536;
		inbuf = realloc(inbuf, incap);
		if (!inbuf)
			abort();
	}
	ssize_t n = read(port, inbuf + inlen, incap - inlen);
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			connected = 0;
			inlen = 0;
		}
		return;
	}
	inlen += (size_t)n;
	size_t off = 0;
	while (inlen - off >= HS_HDR) {
		const uint8_t *h = inbuf + off;
		if (h[0] != HS_MAGIC0 || h[1] != HS_MAGIC1 || h[2] != HS_PROTO_VERSION) {
			off++; /* resynchronise on the next frame header */
			continue;
		}
		uint32_t stream = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7];
		uint32_t len = (uint32_t)h[8] << 24 | (uint32_t)h[9] << 16 | (uint32_t)h[10] << 8 | h[11];
		if (len > HS_MAX_PAYLOAD) {
			off++;
			continue;
		}
		if (inlen - off < HS_HDR + len)
			break;
		handle_frame(h[3], stream, h + HS_HDR, len);
		off += HS_HDR + len;
	}
	memmove(inbuf, inbuf + off, inlen - off);
	inlen -= off;
}

static int find_port(void)
{
	for (long long deadline = now_ms() + 10000; now_ms() < deadline;) {
		DIR *d = opendir("/sys/class/virtio-ports");
		struct dirent *e;
		while (d && (e = readdir(d))) {
			char path[300], name[64] = "";
			snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				continue;
			ssize_t n = read(fd, name, sizeof(name) - 1);
			close(fd);
			if (n > 0 && !strncmp(name, PORT_NAME, strlen(PORT_NAME))) {
				snprintf(path, sizeof(path), "/dev/%s", e->d_name);
				closedir(d);
				int pfd = -1;
				for (int i = 0; i < 200 && pfd < 0; i++) {
					pfd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
					if (pfd < 0)
						usleep(10000);
				}
				return pfd;
			}
		}
		if (d)
			closedir(d);
		usleep(10000);
	}
	return -1;
}

static void load_modules(void)
{
	FILE *f = fopen("/lib/modules/order", "re");
	char line[256];
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (!line[0])
			continue;
		int fd = open(line, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || (syscall(SYS_finit_module, fd, "", 0) && errno != EEXIST))
			logmsg("module %s: %m", line);
		if (fd >= 0)
			close(fd);
		unlink(line); /* the initramfs is never freed: give the memory back */
	}
	if (f)
		fclose(f);
}

/* The initramfs root cannot be pivot_root'ed away from, which containers
 * need; so move a tmpfs over it and chroot there, as switch_root does. */
static void switch_root(void)
{
	if (mkdir("/newroot", 0755) || mount("tmpfs", "/newroot", "tmpfs", 0, "mode=0755") ||
	    chdir("/newroot") || mount("/newroot", "/", NULL, MS_MOVE, NULL) || chroot(".") ||
	    chdir("/"))
		logmsg("switch root: %m");
}

static void early_mounts(void)
{
	mkdir("/dev", 0755);
	mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	int fd = open("/dev/console", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
	}
	mkdir("/proc", 0555);
	mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mkdir("/sys", 0555);
	mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mkdir("/dev/pts", 0755);
	mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "ptmxmode=0666,mode=0620");
	mkdir("/run", 0755);
	mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	mkdir_p("/run/hs/pod", 0755);
	mkdir_p("/run/hs/c", 0700);
	write_file("/run/hs/pod/hostname", "localhost\n");
	write_file("/run/hs/pod/hosts", "127.0.0.1\tlocalhost\n");
	write_file("/run/hs/pod/resolv.conf", "");
	mkdir("/tmp", 01777);
}

int main(void)
{
	if (getpid() != 1) {
		fprintf(stderr, "hyperstart: must run as PID 1 of a pod VM\n");
		return 1;
	}
	umask(022);
	mkdir("/dev", 0755);
	mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	load_modules();
	umount2("/dev", MNT_DETACH);
	switch_root();
	early_mounts();
	if (setup_cgroups())
		logmsg("cgroups: %m (no resource limits in this VM)");

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGIO);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	signal(SIGPIPE, SIG_IGN);

	port = find_port();
	if (port < 0) {
		logmsg("no control port %s: powering off", PORT_NAME);
		reboot(RB_AUTOBOOT);
		return 1;
	}
	/* While no host is connected the port reports POLLHUP at once, so it
	 * cannot be polled for the connection; the driver signals the change
	 * with SIGIO instead (it lands in the signalfd). A restored template
	 * VM thus answers as soon as its new host connects. */
	fcntl(port, F_SETOWN, getpid());
	fcntl(port, F_SETFL, fcntl(port, F_GETFL) | O_ASYNC);
	/* A host that connected before O_ASYNC was set sends no signal: look. */
	struct pollfd first = {.fd = port, .events = POLLOUT};
	if (poll(&first, 1, 0) >= 0 && !(first.revents & POLLHUP))
		connected = 1;
	logmsg("ready (agent %s, protocol %d)", HS_AGENT_VERSION, HS_PROTO_VERSION);

	for (;;) {
		struct pollfd fds[2 + 3 * 256];
		struct proc *who[2 + 3 * 256];
		nfds_t n = 0;
		fds[n].fd = connected ? port : -1;
		fds[n].events = POLLIN;
		who[n++] = NULL;
		fds[n].fd = sfd;
		fds[n].events = POLLIN;
		who[n++] = NULL;
		for (struct proc *p = procs; p && connected && n + 3 <= 2 + 3 * 256; p = p->next) {
			if (p->out_fd >= 0) {
				fds[n] = (struct pollfd){.fd = p->out_fd, .events = POLLIN};
				who[n++] = p;
			}
			if (p->err_fd >= 0) {
				fds[n] = (struct pollfd){.fd = p->err_fd, .events = POLLIN};
				who[n++] = p;
			}
			if (p->in_fd >= 0 && p->npending) {
				fds[n] = (struct pollfd){.fd = p->in_fd, .events = POLLOUT};
				who[n++] = p;
			}
		}
		if (poll(fds, n, connected ? -1 : 1000) < 0 && errno != EINTR)
			continue;
		if (!connected) {
			struct pollfd pf = {.fd = port, .events = POLLOUT};
			poll(&pf, 1, 0);
			if (!(pf.revents & POLLHUP)) {
				connected = 1;
				inlen = 0;
			}
		} else if (fds[0].revents & POLLHUP) {
			connected = 0;
			inlen = 0;
		} else if (fds[0].revents & POLLIN) {
			on_port_readable();
		}
		if (fds[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) == sizeof(si))
				;
			reap();
		}
		for (nfds_t i = 2; i < n; i++) {
			struct proc *p = who[i];
			if (!fds[i].revents)
				continue;
			/* The process may have been finished and freed earlier in this pass. */
			struct proc *q = procs;
			while (q && q != p)
				q = q->next;
			if (!q)
				continue;
			if (fds[i].fd == p->out_fd)
				pump_output(p, &p->out_fd, p->s_out);
			else if (fds[i].fd == p->err_fd)
				pump_output(p, &p->err_fd, p->s_err);
			else if (fds[i].fd == p->in_fd)
				flush_stdin(p);
			maybe_finish(p);
		}
	}
}
