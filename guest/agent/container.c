/* container.c - containers inside the pod VM: each one gets its own mount
 * and PID namespace, a rootfs made of a read-only image disk (hot-plugged
 * SCSI, erofs) under a writable tmpfs overlay, and a cgroup carrying its
 * memory/CPU/PID limits. Network, UTS and IPC are the VM's, shared by the
 * pod's containers as Kubernetes expects. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "hs.h"

#define CGROOT "/sys/fs/cgroup"
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static int cgroups_ok;

int setup_cgroups(void)
{
	mkdir(CGROOT, 0755);
	if (mount("cgroup2", CGROOT, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
		return -1;
	if (write_file(CGROOT "/cgroup.subtree_control", "+memory +pids +cpu"))
		return -1;
	cgroups_ok = 1;
	return 0;
}

static int valid_id(const char *s)
{
	if (!s || !*s || strlen(s) > 64 || s[0] == '.')
		return 0;
	for (; *s; s++)
		if (!(*s == '-' || *s == '_' || *s == '.' || (*s >= '0' && *s <= '9') ||
		      (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
			return 0;
	return 1;
}

static char *join(const char *a, const char *b)
{
	char *s;
	if (asprintf(&s, "%s%s", a, b) < 0)
		abort();
	return s;
}

/* A disk present since boot whose backing the host just swapped: the kernel
 * re-reads its size, and drops what it cached of the previous content. */
static void refresh_disk(const char *scsi_name, const char *dev)
{
	char path[300];
	snprintf(path, sizeof(path), "/sys/bus/scsi/devices/%s/rescan", scsi_name);
	if (write_file(path, "1"))
		logmsg("%s: %m", path);
	int fd = open(dev, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || ioctl(fd, BLKFLSBUF, 0))
		logmsg("flush %s: %m", dev);
	if (fd >= 0)
		close(fd);
}

/* The block device of SCSI target:lun (hot-plugged by the host just before,
 * or present since boot with a new backing: `rescan`). */
static int find_scsi_disk(int target, int lun, int rescan, char *dev, size_t devlen)
{
	/* 1 ms polls: the guest's SCSI scan of a just-plugged disk ends at any
	 * moment, and each poll is cheap next to it (5 ms cost ~2.5 ms a start). */
	struct timespec pause = {0, 1000 * 1000};
	for (int tries = 0; tries < 15000; tries++) { /* 15 s: TCG guests are slow */
		DIR *d = opendir("/sys/bus/scsi/devices");
		struct dirent *e;
		while (d && (e = readdir(d))) {
			int h, c, t, l;
			if (sscanf(e->d_name, "%d:%d:%d:%d", &h, &c, &t, &l) != 4 || t != target ||
			    l != lun)
				continue;
			char path[300];
			snprintf(path, sizeof(path), "/sys/bus/scsi/devices/%s/block", e->d_name);
			DIR *b = opendir(path);
			struct dirent *be;
			while (b && (be = readdir(b))) {
				if (be->d_name[0] == '.')
					continue;
				snprintf(dev, devlen, "/dev/%s", be->d_name);
				if (rescan)
					refresh_disk(e->d_name, dev);
				snprintf(path, sizeof(path), "/sys/class/block/%s/size", be->d_name);
				closedir(b);
				closedir(d);
				/* The node appears before the disk has been sized: wait for both. */
				struct stat st;
				char size[32] = "0";
				for (int i = 0; i < 5000; i++) {
					int fd = open(path, O_RDONLY | O_CLOEXEC);
					ssize_t n = fd >= 0 ? read(fd, size, sizeof(size) - 1) : -1;
					if (fd >= 0)
						close(fd);
					size[n > 0 ? n : 0] = 0;
					if (!stat(dev, &st) && atoll(size) > 0)
						return 0;
					nanosleep(&pause, NULL);
				}
				return -1;
			}
			if (b)
				closedir(b);
		}
		if (d)
			closedir(d);
		nanosleep(&pause, NULL);
	}
	return -1;
}

static void set_limit(struct container *c, const char *file, const char *value)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", c->cgroup, file);
	if (write_file(path, value))
		logmsg("%s=%s: %m", path, value);
}

static void undo_mounts(struct container *c)
{
	char *p;
	umount2(c->rootfs, MNT_DETACH);
	p = join(c->dir, "/rw");
	umount2(p, MNT_DETACH);
	free(p);
	p = join(c->dir, "/lower");
	umount2(p, MNT_DETACH);
	free(p);
}

int ctr_create(struct mpr req, struct container **out, char *err, size_t errlen)
{
	struct container *c = calloc(1, sizeof(*c));
	struct mpr rootfs;
	char dev[64] = "", *p;
	if (!c)
		abort();
	c->id = mp_get_str(req, "container");
	c->argv = mp_get_strv(req, "argv");
	c->env = mp_get_strv(req, "env");
	c->cwd = mp_get_str(req, "cwd");
	c->uid = (uid_t)mp_get_int(req, "uid", 0);
	c->gid = (gid_t)mp_get_int(req, "gid", 0);
	c->tty = mp_get_bool(req, "tty", 0);
	c->open_stdin = mp_get_bool(req, "stdin", 0);
	c->s_in = (uint32_t)mp_get_int(req, "stdin_stream", 0);
	c->s_out = (uint32_t)mp_get_int(req, "stdout_stream", 0);
	c->s_err = (uint32_t)mp_get_int(req, "stderr_stream", 0);
	c->reason = strdup("");
	c->message = strdup("");
	if (!valid_id(c->id) || !c->argv || !c->argv[0]) {
		snprintf(err, errlen, "a valid container id and a non-empty argv are needed");
		goto fail;
	}
	if (asprintf(&c->dir, "/run/hs/c/%s", c->id) < 0)
		abort();
	c->rootfs = join(c->dir, "/rootfs");
	if (mp_get(req, "rootfs", &rootfs)) {
		snprintf(err, errlen, "no rootfs");
		goto fail;
	}
	int target = (int)mp_get_int(rootfs, "scsi_target", -1);
	int lun = (int)mp_get_int(rootfs, "scsi_lun", 0);
	int rescan = mp_get_bool(rootfs, "rescan", 0);
	char *fstype = mp_get_str(rootfs, "fstype");
	char *device = mp_get_str(rootfs, "device");
	char *options = mp_get_str(rootfs, "options"); /* e.g. 9p: trans=virtio,... */
	if (device) {
		snprintf(dev, sizeof(dev), "%s", device);
	} else if (target < 0 || find_scsi_disk(target, lun, rescan, dev, sizeof(dev))) {
		snprintf(err, errlen, "rootfs disk %d:%d did not appear", target, lun);
		free(fstype);
		free(options);
		goto fail;
	}
	free(device);
	mkdir_p(c->dir, 0700);
	p = join(c->dir, "/lower");
	mkdir(p, 0755);
	int rc = -1;
	struct timespec retry = {0, 2 * 1000 * 1000};
	for (int i = 0; i < 1000 && rc; i++) { /* a just-plugged disk can still say ENXIO */
		rc = mount(dev, p, fstype ? fstype : "erofs", MS_RDONLY | MS_NODEV, options);
		if (rc && errno != ENXIO && errno != ENOENT && errno != ENODEV && errno != EIO)
			break;
		if (rc)
			nanosleep(&retry, NULL);
	}
	int mount_errno = errno;
	free(p);
	free(fstype);
	free(options);
	if (rc) {
		snprintf(err, errlen, "mount image %s: %s", dev, strerror(mount_errno));
		goto fail;
	}
	/* The writable layer lives in guest memory, so it counts in the VM's RAM. */
	char opts[64] = "mode=0755";
	int64_t rw_size = mp_get_int(req, "rw_size", 0);
	if (rw_size > 0)
		snprintf(opts, sizeof(opts), "mode=0755,size=%lld", (long long)rw_size);
	p = join(c->dir, "/rw");
	mkdir(p, 0755);
	rc = mount("tmpfs", p, "tmpfs", MS_NODEV, opts);
	free(p);
	char *upper = join(c->dir, "/rw/upper"), *work = join(c->dir, "/rw/work");
	char *lower = join(c->dir, "/lower"), *ovl;
	if (asprintf(&ovl, "lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work) < 0)
		abort();
	mkdir(upper, 0755);
	mkdir(work, 0755);
	mkdir(c->rootfs, 0755);
	if (!rc)
		rc = mount("overlay", c->rootfs, "overlay", MS_NODEV, ovl);
	int saved = errno;
	free(upper);
	free(work);
	free(lower);
	free(ovl);
	if (rc) {
		snprintf(err, errlen, "mount rootfs overlay: %s", strerror(saved));
		goto fail;
	}
	if (cgroups_ok) {
		char num[32];
		if (asprintf(&c->cgroup, CGROOT "/%s", c->id) < 0)
			abort();
		if (mkdir(c->cgroup, 0755) && errno != EEXIST) {
			snprintf(err, errlen, "cgroup: %s", strerror(errno));
			goto fail;
		}
		int64_t mem = mp_get_int(req, "memory_limit", 0);
		int64_t quota = mp_get_int(req, "cpu_quota_us", 0);
		int64_t pids = mp_get_int(req, "pids_limit", 0);
		if (mem > 0) {
			snprintf(num, sizeof(num), "%lld", (long long)mem);
			set_limit(c, "memory.max", num);
		}
		if (quota > 0) {
			snprintf(num, sizeof(num), "%lld 100000", (long long)quota);
			set_limit(c, "cpu.max", num);
		}
		if (pids > 0) {
			snprintf(num, sizeof(num), "%lld", (long long)pids);
			set_limit(c, "pids.max", num);
		}
	}
	c->state = C_CREATED;
	*out = c;
	return 0;
fail:
	if (c->rootfs)
		undo_mounts(c);
	if (c->cgroup)
		rmdir(c->cgroup);
	ctr_free(c);
	return -1;
}

void ctr_free(struct container *c)
{
	free(c->id);
	free(c->dir);
	free(c->rootfs);
	free(c->cgroup);
	strv_free(c->argv);
	strv_free(c->env);
	free(c->cwd);
	free(c->reason);
	free(c->message);
	free(c);
}

int ctr_remove(struct container *c, char *err, size_t errlen)
{
	undo_mounts(c);
	char *p;
	const char *subdirs[] = {"/rootfs", "/rw", "/lower", ""};
	for (size_t i = 0; i < sizeof(subdirs) / sizeof(*subdirs); i++) {
		p = join(c->dir, subdirs[i]);
		rmdir(p);
		free(p);
	}
	/* The cgroup empties when the last zombie is reaped: retry for a moment. */
	struct timespec pause = {0, 10 * 1000 * 1000};
	for (int i = 0; c->cgroup && i < 100 && rmdir(c->cgroup) && errno == EBUSY; i++)
		nanosleep(&pause, NULL);
	(void)err;
	(void)errlen;
	return 0;
}

int ctr_oom_killed(struct container *c)
{
	char path[256], buf[512];
	if (!c->cgroup)
		return 0;
	snprintf(path, sizeof(path), "%s/memory.events", c->cgroup);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *line = strstr(buf, "oom_kill ");
	return line && atoi(line + 9) > 0;
}

/* --- in the child, between fork and exec ------------------------------- */

static void die(int errfd, const char *what, const char *arg)
{
	char msg[512];
	int n = snprintf(msg, sizeof(msg), "%s%s%s: %s", what, arg ? " " : "", arg ? arg : "",
			 strerror(errno));
	if (write(errfd, msg, (size_t)n) < 0)
		_exit(126);
	_exit(127);
}

static const char *env_get(char **env, const char *name)
{
	size_t n = strlen(name);
	for (char **e = env; e && *e; e++)
		if (!strncmp(*e, name, n) && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

/* execvp with the container's PATH rather than the agent's. */
static void exec_in(char **argv, char **env, int errfd)
{
	char *empty[] = {NULL};
	if (!env)
		env = empty;
	if (strchr(argv[0], '/')) {
		execve(argv[0], argv, env);
		die(errfd, "exec", argv[0]);
	}
	const char *path = env_get(env, "PATH");
	char *dirs = strdup(path ? path : DEFAULT_PATH), *save = NULL;
	int last = ENOENT;
	for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		char full[4096];
		snprintf(full, sizeof(full), "%s/%s", *d ? d : ".", argv[0]);
		execve(full, argv, env);
		if (errno != ENOENT && errno != ENOTDIR)
			last = errno;
	}
	errno = last;
	if (last == ENOENT) {
		char msg[512];
		int n = snprintf(msg, sizeof(msg),
				 "exec: \"%s\": executable file not found in $PATH", argv[0]);
		if (write(errfd, msg, (size_t)n) < 0)
			_exit(126);
		_exit(127);
	}
	die(errfd, "exec", argv[0]);
}

static void child_stdio(int in, int out, int err, int tty)
{
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	signal(SIGPIPE, SIG_DFL);
	setsid();
	if (tty)
		ioctl(out, TIOCSCTTY, 0);
	dup2(in, 0);
	dup2(out, 1);
	dup2(err, 2);
	if (in > 2)
		close(in);
	if (out > 2 && out != in)
		close(out);
	if (err > 2 && err != in && err != out)
		close(err);
}

static void join_cgroup(struct container *c)
{
	char path[256];
	if (!c->cgroup)
		return;
	snprintf(path, sizeof(path), "%s/cgroup.procs", c->cgroup);
	write_file(path, "0");
}

static void bind_pod_file(const char *rootfs, const char *name, const char *target)
{
	char src[128], dst[4096];
	snprintf(src, sizeof(src), "/run/hs/pod/%s", name);
	snprintf(dst, sizeof(dst), "%s%s", rootfs, target);
	struct stat st;
	if (lstat(dst, &st)) { /* create the mount point in the writable layer */
		char dir[4096];
		snprintf(dir, sizeof(dir), "%s/etc", rootfs);
		mkdir(dir, 0755);
		int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd >= 0)
			close(fd);
	} else if (!S_ISREG(st.st_mode)) {
		return; /* a symlink (e.g. to a systemd file) would lead outside: skip */
	}
	mount(src, dst, NULL, MS_BIND, NULL);
}

static void make_dev(const char *rootfs, int errfd)
{
	static const struct {
		const char *name;
		unsigned maj, min;
	} nodes[] = {{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7},
		     {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};
	char path[4096];
	snprintf(path, sizeof(path), "%s/dev", rootfs);
	mkdir(path, 0755);
	if (mount("tmpfs", path, "tmpfs", MS_NOSUID, "mode=0755,size=65536k"))
		die(errfd, "mount", "/dev");
	for (size_t i = 0; i < sizeof(nodes) / sizeof(*nodes); i++) {
		snprintf(path, sizeof(path), "%s/dev/%s", rootfs, nodes[i].name);
		if (mknod(path, S_IFCHR | 0666, makedev(nodes[i].maj, nodes[i].min)))
			die(errfd, "mknod", path);
		chmod(path, 0666);
	}
	snprintf(path, sizeof(path), "%s/dev/pts", rootfs);
	mkdir(path, 0755);
	mount("devpts", path, "devpts", MS_NOSUID | MS_NOEXEC,
	      "newinstance,ptmxmode=0666,mode=0620");
	snprintf(path, sizeof(path), "%s/dev/shm", rootfs);
	mkdir(path, 01777);
	mount("shm", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=65536k");
	static const char *links[][2] = {{"pts/ptmx", "ptmx"},       {"/proc/self/fd", "fd"},
					 {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
					 {"/proc/self/fd/2", "stderr"}};
	for (size_t i = 0; i < sizeof(links) / sizeof(*links); i++) {
		snprintf(path, sizeof(path), "%s/dev/%s", rootfs, links[i][1]);
		if (symlink(links[i][0], path))
			die(errfd, "symlink", path);
	}
}

static void become(uid_t uid, gid_t gid, int errfd)
{
	if (setgroups(0, NULL) || setgid(gid) || setuid(uid))
		die(errfd, "set user", NULL);
}

static void container_child(struct container *c, int in, int out, int err, int errfd)
{
	char path[4096];
	child_stdio(in, out, err, c->tty);
	join_cgroup(c);
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		die(errfd, "make mounts private", NULL);
	snprintf(path, sizeof(path), "%s/proc", c->rootfs);
	mkdir(path, 0555);
	if (mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
		die(errfd, "mount", "/proc");
	snprintf(path, sizeof(path), "%s/sys", c->rootfs);
	mkdir(path, 0555);
	if (mount("sysfs", path, "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL))
		die(errfd, "mount", "/sys");
	make_dev(c->rootfs, errfd);
	bind_pod_file(c->rootfs, "hosts", "/etc/hosts");
	bind_pod_file(c->rootfs, "hostname", "/etc/hostname");
	bind_pod_file(c->rootfs, "resolv.conf", "/etc/resolv.conf");
	if (chdir(c->rootfs) || syscall(SYS_pivot_root, ".", ".") || umount2(".", MNT_DETACH) ||
	    chdir("/"))
		die(errfd, "pivot_root", c->rootfs);
	const char *cwd = c->cwd && *c->cwd ? c->cwd : "/";
	mkdir_p(cwd, 0755); /* as root, like runc: the user may not be able to */
	become(c->uid, c->gid, errfd);
	if (chdir(cwd))
		die(errfd, "chdir", cwd);
	exec_in(c->argv, c->env, errfd);
}

/* stdio of a new process: three pipes, or one pty. Host-side ends out. */
static int make_stdio(int tty, int child[3], int host[3])
{
	if (tty) {
		int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (m < 0 || grantpt(m) || unlockpt(m))
			return -1;
		int s = open(ptsname(m), O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (s < 0)
			return -1;
		child[0] = child[1] = child[2] = s;
		host[0] = fcntl(m, F_DUPFD_CLOEXEC, 3);
		host[1] = m;
		host[2] = -1;
	} else {
		int p[3][2];
		for (int i = 0; i < 3; i++)
			if (pipe2(p[i], O_CLOEXEC))
				return -1;
		child[0] = p[0][0];
		host[0] = p[0][1];
		child[1] = p[1][1];
		host[1] = p[1][0];
		child[2] = p[2][1];
		host[2] = p[2][0];
	}
	for (int i = 0; i < 3; i++)
		if (host[i] >= 0)
			fcntl(host[i], F_SETFL, fcntl(host[i], F_GETFL) | O_NONBLOCK);
	return 0;
}

static void close_child_ends(int child[3])
{
	close(child[0]);
	if (child[1] != child[0])
		close(child[1]);
	if (child[2] != child[0] && child[2] != child[1])
		close(child[2]);
}

/* Waits for exec or for the child's error report; returns 0 on success. */
static int await_exec(int errfd, char *err, size_t errlen)
{
	ssize_t n;
	do
		n = read(errfd, err, errlen - 1);
	while (n < 0 && errno == EINTR);
	close(errfd);
	if (n <= 0)
		return 0;
	err[n] = 0;
	return -1;
}

static struct proc *new_proc(struct container *c, int host[3], int tty, int open_stdin)
{
	struct proc *p = calloc(1, sizeof(*p));
	if (!p)
		abort();
	p->ctr = c;
	p->tty = tty;
	p->in_fd = host[0];
	p->out_fd = host[1];
	p->err_fd = host[2];
	if (!open_stdin && !tty && p->in_fd >= 0) { /* stdin reads EOF at once */
		close(p->in_fd);
		p->in_fd = -1;
	}
	p->next = procs;
	procs = p;
	return p;
}

int ctr_start(struct container *c, char *err, size_t errlen)
{
	int child[3], host[3], ep[2];
	if (make_stdio(c->tty, child, host) || pipe2(ep, O_CLOEXEC)) {
		snprintf(err, errlen, "stdio: %s", strerror(errno));
		return -1;
	}
	pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWNS | CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0);
	if (pid == 0) {
		close(ep[0]);
		container_child(c, child[0], child[1], child[2], ep[1]);
	}
	close(ep[1]);
	close_child_ends(child);
	if (pid < 0) {
		snprintf(err, errlen, "clone: %s", strerror(errno));
		close(ep[0]);
		for (int i = 0; i < 3; i++)
			if (host[i] >= 0)
				close(host[i]);
		return -1;
	}
	struct proc *p = new_proc(c, host, c->tty, c->open_stdin);
	p->pid = pid;
	p->s_in = c->s_in;
	p->s_out = c->s_out;
	p->s_err = c->s_err;
	c->init = p;
	c->state = C_RUNNING;
	if (await_exec(ep[0], err, errlen)) {
		/* Never ran: the exit is reported by this response, not an event. */
		int status;
		waitpid(pid, &status, 0);
		proc_unlink(p);
		c->state = C_EXITED;
		c->exit_code = 128;
		free(c->reason);
		free(c->message);
		c->reason = strdup("ContainerCannotRun");
		c->message = strdup(err);
		return -1;
	}
	return 0;
}

int ctr_exec(struct container *c, struct mpr req, struct proc **out, char *err, size_t errlen)
{
	char **argv = mp_get_strv(req, "argv"), **env = mp_get_strv(req, "env");
	char *cwd = mp_get_str(req, "cwd");
	int tty = mp_get_bool(req, "tty", 0), open_stdin = mp_get_bool(req, "stdin", 0);
	uid_t uid = (uid_t)mp_get_int(req, "uid", c->uid);
	gid_t gid = (gid_t)mp_get_int(req, "gid", c->gid);
	int child[3], host[3], ep[2], rc = -1;
	char path[64];
	if (!argv || !argv[0]) {
		snprintf(err, errlen, "empty argv");
		goto out;
	}
	snprintf(path, sizeof(path), "/proc/%d/ns/pid", c->init->pid);
	int pidns = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/%d/ns/mnt", c->init->pid);
	int mntns = open(path, O_RDONLY | O_CLOEXEC);
	int selfns = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	if (pidns < 0 || mntns < 0 || selfns < 0 || make_stdio(tty, child, host) ||
	    pipe2(ep, O_CLOEXEC)) {
		snprintf(err, errlen, "namespaces: %s", strerror(errno));
		goto out_ns;
	}
	/* Children of the agent are born in the container's PID namespace. */
	if (setns(pidns, CLONE_NEWPID)) {
		snprintf(err, errlen, "setns pid: %s", strerror(errno));
		close(ep[0]);
		close(ep[1]);
		close_child_ends(child);
		goto out_ns;
	}
	pid_t pid = fork();
	if (pid == 0) {
		close(ep[0]);
		child_stdio(child[0], child[1], child[2], tty);
		join_cgroup(c);
		if (setns(mntns, CLONE_NEWNS))
			die(ep[1], "setns mnt", NULL);
		become(uid, gid, ep[1]);
		if (chdir(cwd && *cwd ? cwd : (c->cwd && *c->cwd ? c->cwd : "/")))
			die(ep[1], "chdir", cwd);
		exec_in(argv, env ? env : c->env, ep[1]);
	}
	if (setns(selfns, CLONE_NEWPID))
		logmsg("setns back: %m");
	close(ep[1]);
	close_child_ends(child);
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(ep[0]);
		goto out_ns;
	}
	struct proc *p = new_proc(c, host, tty, open_stdin);
	p->pid = pid;
	p->exec_id = mp_get_str(req, "exec_id");
	p->s_in = (uint32_t)mp_get_int(req, "stdin_stream", 0);
	p->s_out = (uint32_t)mp_get_int(req, "stdout_stream", 0);
	p->s_err = (uint32_t)mp_get_int(req, "stderr_stream", 0);
	if (await_exec(ep[0], err, errlen)) {
		int status;
		waitpid(pid, &status, 0);
		proc_unlink(p);
		goto out_ns;
	}
	*out = p;
	rc = 0;
out_ns:
	if (pidns >= 0)
		close(pidns);
	if (mntns >= 0)
		close(mntns);
	if (selfns >= 0)
		close(selfns);
out:
	strv_free(argv);
	strv_free(env);
	free(cwd);
	return rc;
}
