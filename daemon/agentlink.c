/*
 * Helper sessions (see agentlink.h and include/fp/agentlink.h).
 *
 * Opening a session:
 *   1. a fresh directory in the target's /tmp as resolved inside the
 *      target's root (openat2 RESOLVE_IN_ROOT), owned by root, mode 0711:
 *      the only place the helper library copy and the socket live.  The
 *      target's user may write /tmp and swap any name in it, so everything
 *      after the mkdir goes through fds, and nothing is ever chowned: in a
 *      directory only root can write, names cannot be swapped;
 *   2. a listening socket in it, bound through /proc/self/fd/DIRFD so that
 *      the target reaches it at /tmp/.fpd-XXXXXXXXXXXX/s whatever its
 *      namespace; mode 0666, for the helper runs as the target's user;
 *   3. the injector loads the helper (or re-triggers the loaded one), which
 *      connects out; a peer whose SO_PEERCRED pid is not the target's is
 *      turned away;
 *   4. socket and directory are removed at once: nothing is left in the
 *      target's filesystem while the session runs.
 *
 * A request: REQUEST out, then EVENT/END/ERROR back, relayed to the client.
 * Until the helper says RUNNING it is waiting for the GIL; after half a
 * second fpd tells the client which thread holds it and where (read from
 * outside, as `stack --native` does) instead of hanging silently.
 */
#include "agentlink.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <linux/openat2.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fp/agentlink.h"
#include "inject.h"
#include "log.h"
#include "proc.h"
#include "stack.h"
#include "unwind.h"

/* Whole-step limits: the injector has its own per-step watchdog. */
#define CONNECT_TIMEOUT_MS 8000
#define HELLO_TIMEOUT_MS   5000
#define GIL_NOTICE_MS	   500
#define CANCEL_GRACE_MS	   2000

struct fp_agent {
	pid_t pid;
	int fd;
	unsigned long long start_time; /* the process's, to notice a reused pid */
	char python[32];
	atomic_bool dead;
	uint32_t next_id;
	uint32_t cur_id; /* the request running now, for INPUT */
	pthread_mutex_t send_lock;
	struct fp_agent *next;	/* the connection's sessions */
	struct fp_agent *gnext; /* every session, for detach */
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fp_agent *g_agents;
static char g_agent_path[PATH_MAX + 32];

void fp_agent_set_path(const char *path)
{
	snprintf(g_agent_path, sizeof(g_agent_path), "%s", path);
}

/* libfpagent.so next to fpd (build tree), else in ../lib/fpd (installed). */
static const char *agent_path(void)
{
	if (g_agent_path[0])
		return g_agent_path;
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return FP_AGENT_LIBNAME;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	static char found[PATH_MAX + 32];
	snprintf(found, sizeof(found), "%s/" FP_AGENT_LIBNAME, exe);
	if (access(found, R_OK) != 0)
		snprintf(found, sizeof(found), "%s/../lib/fpd/" FP_AGENT_LIBNAME, exe);
	return found;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void agent_free(struct fp_agent *a)
{
	pthread_mutex_lock(&g_lock);
	for (struct fp_agent **pp = &g_agents; *pp; pp = &(*pp)->gnext)
		if (*pp == a) {
			*pp = a->gnext;
			break;
		}
	pthread_mutex_unlock(&g_lock);
	if (a->fd >= 0)
		close(a->fd);
	pthread_mutex_destroy(&a->send_lock);
	free(a);
}

void fp_agent_close_all(struct fp_agent **list)
{
	while (*list) {
		struct fp_agent *a = *list;
		*list = a->next;
		agent_free(a);
	}
}

static int agent_send(struct fp_agent *a, uint8_t op, uint32_t id, const char *payload)
{
	pthread_mutex_lock(&a->send_lock);
	int rc = fp_al_send(a->fd, op, id, payload, payload ? strlen(payload) : 0, 0);
	pthread_mutex_unlock(&a->send_lock);
	if (rc)
		atomic_store(&a->dead, true);
	return rc;
}

/* ".fpd-" and 12 random letters and digits: nobody can make the name ahead of fpd. */
static int session_name(char *out, size_t cap)
{
	static const char abc[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char r[12];
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return -1;
	char name[sizeof(r) + 1];
	for (size_t i = 0; i < sizeof(r); i++)
		name[i] = abc[r[i] % (sizeof(abc) - 1)];
	name[sizeof(r)] = '\0';
	snprintf(out, cap, ".fpd-%s", name);
	return 0;
}

/*
 * The session directory in one base (say "tmp") of the target's root; 0, or
 * -1 with the failed step in why.  The base is resolved inside the root (an
 * absolute symlink there must not lead to fpd's own /etc), crossing mounts
 * (/tmp is often a tmpfs), but only a shared sticky directory or one of the
 * target's own user will do: never a root-owned one a namespace's bind mount
 * put there.
 */
static int session_dir_in(int root, const char *base, uid_t uid, struct fp_session_dir *d,
			  char *why, size_t whylen)
{
	struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
			       .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
	struct stat st;
	d->base = (int)syscall(SYS_openat2, root, base, &how, sizeof(how));
	if (d->base < 0 || fstat(d->base, &st) != 0) {
		snprintf(why, whylen, "open: %s", strerror(errno));
		goto fail;
	}
	if (!((st.st_mode & (S_ISVTX | S_IWOTH)) == (S_ISVTX | S_IWOTH) || st.st_uid == uid)) {
		snprintf(why, whylen, "neither a sticky shared directory nor the target user's");
		goto fail;
	}
	/* 0700 until checked: until then nobody else may even look inside. */
	int made = -1;
	for (int i = 0; i < 8 && made != 0; i++) {
		if (session_name(d->name, sizeof(d->name)) != 0) {
			snprintf(why, whylen, "getrandom: %s", strerror(errno));
			goto fail;
		}
		made = mkdirat(d->base, d->name, 0700);
		if (made != 0 && errno != EEXIST)
			break;
	}
	if (made != 0) {
		snprintf(why, whylen, "mkdir: %s", strerror(errno));
		goto fail;
	}
	/*
	 * The target's user can rename entries of a base that is theirs: the
	 * name must still be a directory of ours that nobody else can write.
	 */
	d->fd = openat(d->base, d->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (d->fd < 0 || fstat(d->fd, &st) != 0) {
		snprintf(why, whylen, "opening what mkdir made: %s", strerror(errno));
		goto fail;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 0077) != 0) {
		snprintf(why, whylen, "%s was replaced right after mkdir", d->name);
		goto fail;
	}
	if (fchmod(d->fd, 0711) != 0) {
		snprintf(why, whylen, "chmod: %s", strerror(errno));
		goto fail;
	}
	snprintf(d->target, sizeof(d->target), "/%s/%s", base, d->name);
	return 0;
fail:
	if (d->fd >= 0) {
		/* Checked as ours: empty, it can go by name. */
		if (fstat(d->fd, &st) == 0 && st.st_uid == geteuid() && (st.st_mode & 0077) == 0)
			unlinkat(d->base, d->name, AT_REMOVEDIR);
		close(d->fd);
	}
	if (d->base >= 0)
		close(d->base);
	d->fd = d->base = -1;
	return -1;
}

int fp_session_dir_make(pid_t pid, struct fp_session_dir *d, char *err, size_t errlen)
{
	static const char *const bases[] = {"tmp", "var/tmp", "dev/shm"};
	char path[64];
	struct stat st;
	d->fd = d->base = -1;
	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	if (stat(path, &st) != 0) {
		snprintf(err, errlen, "attach: process %d does not exist", (int)pid);
		return -1;
	}
	snprintf(path, sizeof(path), "/proc/%d/root", (int)pid);
	int root = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0) {
		snprintf(err, errlen,
			 "attach: session directory: opening the root of process %d: %s", (int)pid,
			 strerror(errno));
		return -1;
	}
	int n = snprintf(err, errlen, "attach: cannot make a session directory in the target's");
	int rc = -1;
	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]) && rc != 0; i++) {
		char why[160];
		rc = session_dir_in(root, bases[i], st.st_uid, d, why, sizeof(why));
		if (rc != 0 && n >= 0 && (size_t)n < errlen)
			n += snprintf(err + n, errlen - (size_t)n, "%s /%s (%s)", i ? ";" : "",
				      bases[i], why);
	}
	close(root);
	return rc;
}

void fp_session_dir_remove(struct fp_session_dir *d)
{
	if (d->fd >= 0) {
		/* Only fpd can write in it: whatever is in it is fpd's, to remove. */
		int dup_fd = openat(d->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		DIR *dir = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
		struct dirent *e;
		while (dir && (e = readdir(dir)))
			if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
				unlinkat(d->fd, e->d_name, 0);
		if (dir)
			closedir(dir);
		else if (dup_fd >= 0)
			close(dup_fd);
		/* Its name may have been taken over meanwhile: rmdir only while it is ours. */
		struct stat mine, now;
		if (fstat(d->fd, &mine) == 0 &&
		    fstatat(d->base, d->name, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
		    mine.st_dev == now.st_dev && mine.st_ino == now.st_ino)
			unlinkat(d->base, d->name, AT_REMOVEDIR);
		close(d->fd);
	}
	if (d->base >= 0)
		close(d->base);
	d->fd = d->base = -1;
}

/*
 * What the PEP 768 script reported, if it ran and failed, appended to err.
 * Anyone may have written that file: only printable ASCII of it is shown.
 */
static void append_script_error(int dir_fd, char *err, size_t errlen)
{
	char text[256];
	int fd = openat(dir_fd, FP_PEP768_ERR, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, text, sizeof(text) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return;
	text[n] = '\0';
	text[strcspn(text, "\n")] = '\0';
	for (char *c = text; *c; c++)
		if (*c < 0x20 || *c > 0x7e)
			*c = '?';
	size_t used = strlen(err);
	if (used < errlen)
		snprintf(err + used, errlen - used, "; the attach script said: %s", text);
}

/* Accepts the helper's connection; only the target itself may connect. */
static int accept_helper(int lfd, pid_t pid, int64_t deadline, char *err, size_t errlen)
{
	for (;;) {
		int left = (int)(deadline - mono_ms());
		struct pollfd p = {.fd = lfd, .events = POLLIN};
		int r = left > 0 ? poll(&p, 1, left) : 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(err, errlen,
				 "attach: the helper was loaded but did not connect back within "
				 "%d ms (is the process stopped or out of threads?)",
				 CONNECT_TIMEOUT_MS);
			return -1;
		}
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		struct ucred cred;
		socklen_t len = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid == pid)
			return fd;
		fp_log("helper socket of pid %d: refused a connection from pid %d", (int)pid,
		       (int)cred.pid);
		close(fd);
	}
}

static int open_session(struct fp_req *r, const struct fp_python *py, struct fp_agent **out,
			char *err, size_t errlen)
{
	struct stat st;
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/%d", (int)r->pid);
	if (stat(proc, &st)) {
		snprintf(err, errlen, "process %d does not exist", (int)r->pid);
		return -1;
	}
	struct fp_session_dir dir;
	if (fp_session_dir_make(r->pid, &dir, err, errlen))
		return -1;
	char sock_target[sizeof(dir.target) + 2];
	snprintf(sock_target, sizeof(sock_target), "%s/s", dir.target);

	/*
	 * Bound through the directory's fd, so that no path the target's user
	 * controls is resolved; the directory is root's, so "s" is the socket
	 * just bound when it is made connectable for the helper (the target's
	 * user).  Anyone else who connects is turned away by accept_helper.
	 */
	int rc = -1, fd = -1;
	const char *step = NULL;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/s", dir.fd);
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		step = "socket";
	else if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		step = "bind";
	else if (fchmodat(dir.fd, "s", 0666, 0) != 0)
		step = "chmod";
	else if (listen(lfd, 4) != 0)
		step = "listen";
	if (step) {
		snprintf(err, errlen, "attach: session socket %s: %s: %s", sock_target, step,
			 strerror(errno));
		goto out;
	}

	struct fp_inject_opts o = {
	    .agent_path = agent_path(),
	    .dir_fd = dir.fd,
	    .dir_target = dir.target,
	    .sock_target = sock_target,
	};
	struct fp_inject_report rep = {0};
	int64_t t0 = mono_ms();
	if (fp_inject_agent(py, &o, &rep, err, errlen))
		goto out;
	fd = accept_helper(lfd, r->pid, mono_ms() + CONNECT_TIMEOUT_MS, err, errlen);
	if (fd < 0) {
		if (rep.method && strcmp(rep.method, "pep768") == 0)
			append_script_error(dir.fd, err, errlen);
		goto out;
	}

	uint8_t op;
	uint32_t id;
	char *payload = NULL;
	size_t len;
	if (fp_al_recv(fd, &op, &id, &payload, &len, HELLO_TIMEOUT_MS) || op != FP_AL_HELLO) {
		snprintf(err, errlen, "attach: the helper connected but did not say hello");
		free(payload);
		goto out;
	}
	json_t *hello = json_loads(payload, 0, NULL);
	free(payload);
	const char *herr = json_string_value(json_object_get(hello, "error"));
	if (herr) {
		snprintf(err, errlen, "attach: the helper cannot use Python here: %s", herr);
		json_decref(hello);
		goto out;
	}
	/*
	 * The helper runs code for the client from now on: the process it runs
	 * in must still be one the client may ptrace (it may have exec'd a
	 * setuid program, or died and had its pid reused, while it was loaded).
	 */
	if (fp_req_reauthorize(r)) {
		json_decref(hello);
		snprintf(err, errlen, "attach: permission denied after loading the helper");
		goto out;
	}
	struct fp_agent *a = calloc(1, sizeof(*a));
	if (!a) {
		json_decref(hello);
		snprintf(err, errlen, "attach: out of memory");
		goto out;
	}
	a->pid = r->pid;
	a->fd = fd;
	fd = -1;
	a->start_time = fp_proc_start_time(r->pid);
	snprintf(a->python, sizeof(a->python), "%s",
		 json_string_value(json_object_get(hello, "python"))
		     ? json_string_value(json_object_get(hello, "python"))
		     : py->version);
	json_decref(hello);
	pthread_mutex_init(&a->send_lock, NULL);
	pthread_mutex_lock(&g_lock);
	a->gnext = g_agents;
	g_agents = a;
	pthread_mutex_unlock(&g_lock);
	*out = a;
	rc = 0;

	json_t *ev = fp_msg_event(r->id, "agent");
	json_object_set_new(ev, "pid", json_integer(r->pid));
	json_object_set_new(ev, "loaded", json_boolean(rep.loaded));
	json_object_set_new(ev, "method", json_string(rep.method ? rep.method : "ptrace"));
	json_object_set_new(ev, "tid", json_integer(rep.tid));
	json_object_set_new(ev, "retries", json_integer(rep.retries));
	json_object_set_new(ev, "stopped_ms", json_real(rep.stopped_ms));
	json_object_set_new(ev, "attach_ms", json_integer(mono_ms() - t0));
	json_object_set_new(ev, "python", json_string(a->python));
	fp_req_emit(r, ev);
out:
	if (lfd >= 0)
		close(lfd);
	if (fd >= 0)
		close(fd);
	fp_session_dir_remove(&dir);
	return rc;
}

/* "(Python) File ..., line N, in f" / "(C) symbol (library)", as `stack --native` shows them. */
static json_t *frame_json(const struct fp_frame *f)
{
	char text[1024];
	if (f->kind == FP_FRAME_PY)
		snprintf(text, sizeof(text), "(Python) File \"%s\", line %d, in %s",
			 f->file ? f->file : "?", f->line, f->func ? f->func : "?");
	else
		snprintf(text, sizeof(text), "(C) %s (%s)", f->func ? f->func : "??",
			 f->library ? f->library : "?");
	return json_pack("{s:s}", "text", text);
}

/* Tells the client which thread holds the GIL the helper is waiting for, and where. */
static void report_gil_wait(struct fp_req *r, const struct fp_python *py)
{
	struct fp_mem_proc mp;
	struct fp_mem mem;
	fp_mem_proc_init(&mem, &mp, r->pid);
	struct fp_stack s;
	char err[256];
	json_t *ev = fp_msg_event(r->id, "gil_wait");
	if (fp_stack_read(py, &mem, 0, &s, err, sizeof(err)) == 0) {
		struct fp_thread *holder = NULL;
		for (size_t i = 0; i < s.nthreads; i++)
			if (strcmp(s.threads[i].state, "holding GIL") == 0)
				holder = &s.threads[i];
		if (holder) {
			struct fp_stack one = {.threads = holder, .nthreads = 1};
			fp_ptrace_lock();
			fp_unwind_stack(r->pid, &one, NULL, NULL, err, sizeof(err));
			fp_ptrace_unlock();
			json_object_set_new(ev, "tid", json_integer(holder->tid));
			json_object_set_new(ev, "name", json_string(holder->name));
			json_t *frames = json_array();
			for (size_t i = 0; i < holder->nframes && i < 12; i++)
				json_array_append_new(frames, frame_json(&holder->frames[i]));
			json_object_set_new(ev, "frames", frames);
		}
		fp_stack_free(&s);
	}
	if (!json_object_get(ev, "tid"))
		json_object_set_new(ev, "tid", json_integer(0)); /* nobody holds it now */
	fp_mem_proc_close(&mp);
	fp_req_emit(r, ev);
}

static void on_input(void *ctx, json_t *msg)
{
	struct fp_agent *a = ctx;
	json_t *copy = json_deep_copy(msg);
	json_object_del(copy, "type");
	json_object_del(copy, "id");
	char *text = json_dumps(copy, JSON_COMPACT);
	json_decref(copy);
	if (text && a->cur_id)
		agent_send(a, FP_AL_INPUT, a->cur_id, text);
	free(text);
}

static bool target_gone_now(const struct fp_agent *a)
{
	struct fp_proc_info info;
	if (fp_proc_info(a->pid, &info) || info.state == 'Z' || info.state == 'X')
		return true;
	return fp_proc_start_time(a->pid) != a->start_time;
}

/*
 * Whether the target has exited (or its pid was reused).  A helper's link
 * closes a moment before the process becomes a zombie, so a closed link
 * gives the exit a little time to show.
 */
static bool target_gone(const struct fp_agent *a, int grace_ms)
{
	for (int waited = 0;; waited += 20) {
		if (target_gone_now(a))
			return true;
		if (waited >= grace_ms)
			return false;
		usleep(20000);
	}
}

/* Relays one helper frame; 1 when the request is over, 0 to go on. */
static int relay(struct fp_req *r, uint8_t op, const char *payload, bool *running)
{
	json_t *obj = payload[0] ? json_loads(payload, 0, NULL) : NULL;
	int done = 0;
	switch (op) {
	case FP_AL_RUNNING:
		*running = true;
		break;
	case FP_AL_EVENT:
		if (json_is_object(obj) && json_is_string(json_object_get(obj, "event"))) {
			json_object_set_new(obj, "type", json_string("event"));
			fp_req_emit(r, json_incref(obj));
		}
		break;
	case FP_AL_END:
		fp_req_end(r);
		done = 1;
		break;
	case FP_AL_ERROR: {
		const char *code = json_string_value(json_object_get(obj, "code"));
		const char *msg = json_string_value(json_object_get(obj, "message"));
		json_t *ex = json_object_get(obj, "exit");
		fp_req_fail(r, code ? code : "helper_error",
			    json_is_integer(ex) ? (int)json_integer_value(ex) : FP_EXIT_CMD, "%s",
			    msg ? msg : "the helper failed");
		done = 1;
		break;
	}
	default:
		break;
	}
	json_decref(obj);
	return done;
}

/* Runs one request on an open session; -1 with *retry when the link was found dead first. */
static int run_request(struct fp_agent *a, struct fp_req *r, const struct fp_python *py,
		       const char *cmd, bool *retry)
{
	*retry = false;
	json_t *req = json_pack("{s:s, s:O}", "cmd", cmd, "args", r->args);
	char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!text)
		return fp_req_fail(r, "memory", FP_EXIT_CMD, "%s: out of memory", cmd);
	uint32_t id = ++a->next_id;
	int rc = agent_send(a, FP_AL_REQUEST, id, text);
	free(text);
	if (rc) {
		*retry = true;
		return -1;
	}
	a->cur_id = id;
	fp_req_set_input(r, on_input, a);

	bool running = false, noticed = false, cancel_sent = false, any = false;
	int64_t sent = mono_ms(), cancel_deadline = 0;
	int result = 0;
	for (;;) {
		if (!cancel_sent && fp_req_cancelled(r)) {
			agent_send(a, FP_AL_CANCEL, id, NULL);
			cancel_sent = true;
			cancel_deadline = mono_ms() + CANCEL_GRACE_MS;
		}
		if (cancel_sent && mono_ms() > cancel_deadline) {
			result = fp_req_fail(r, "cancelled", FP_EXIT_CMD, "%s: cancelled", cmd);
			break;
		}
		if (!running && !noticed && !cancel_sent && mono_ms() - sent >= GIL_NOTICE_MS) {
			noticed = true;
			report_gil_wait(r, py);
		}
		struct pollfd p = {.fd = a->fd, .events = POLLIN};
		int pr = poll(&p, 1, 100);
		if (pr < 0 && errno != EINTR) {
			result = fp_req_fail(r, "link", FP_EXIT_CMD, "%s: polling the helper: %s",
					     cmd, strerror(errno));
			break;
		}
		if (pr <= 0)
			continue;
		uint8_t op;
		uint32_t fid;
		char *payload;
		size_t len;
		if (fp_al_recv(a->fd, &op, &fid, &payload, &len, 5000)) {
			atomic_store(&a->dead, true);
			if (target_gone(a, 300))
				result = fp_req_fail(r, "exited", FP_EXIT_CMD,
						     "%s: process %d exited during the command",
						     cmd, (int)a->pid);
			else if (!any && !running)
				*retry = true, result = -1;
			else
				result = fp_req_fail(r, "link", FP_EXIT_CMD,
						     "%s: the helper in process %d closed the link "
						     "(detached by 'fpctl detach'?)",
						     cmd, (int)a->pid);
			break;
		}
		any = true;
		int done = fid == id ? relay(r, op, payload, &running) : 0;
		free(payload);
		if (done)
			break;
	}
	fp_req_set_input(r, NULL, NULL);
	a->cur_id = 0;
	return result;
}

int fp_agent_forward(struct fp_req *r, const char *cmd)
{
	struct fp_python py;
	if (fp_req_python(r, &py))
		return -1;
	struct fp_agent **list = fp_req_agents(r);
	for (int attempt = 0; attempt < 2; attempt++) {
		struct fp_agent *a = NULL, **pp;
		for (pp = list; *pp; pp = &(*pp)->next)
			if ((*pp)->pid == r->pid)
				break;
		if (*pp && (atomic_load(&(*pp)->dead) || target_gone(*pp, 0))) {
			struct fp_agent *old = *pp;
			*pp = old->next;
			agent_free(old);
		}
		for (pp = list; *pp; pp = &(*pp)->next)
			if ((*pp)->pid == r->pid)
				break;
		a = *pp;
		bool fresh = false;
		if (!a) {
			char err[512];
			if (open_session(r, &py, &a, err, sizeof(err)))
				return fp_req_fail(r, "attach", FP_EXIT_ATTACH, "%s", err);
			a->next = *list;
			*list = a;
			fresh = true;
		}
		bool retry;
		int rc = run_request(a, r, &py, cmd, &retry);
		if (!retry)
			return rc;
		/* A stale session (the helper was detached meanwhile): once more on a new one. */
		atomic_store(&a->dead, true);
		if (fresh)
			break;
	}
	return fp_req_fail(r, "link", FP_EXIT_ATTACH,
			   "%s: the helper in process %d stopped answering; try again", cmd,
			   (int)r->pid);
}

int fp_cmd_agent(struct fp_req *r)
{
	return fp_agent_forward(r, r->cmd);
}

json_t *fp_agent_sessions_json(const struct fp_cred *c)
{
	json_t *out = json_array();
	size_t n = 0, cap = 0;
	struct entry {
		pid_t pid;
		char python[32];
	} *v = NULL;
	pthread_mutex_lock(&g_lock);
	for (struct fp_agent *a = g_agents; a; a = a->gnext) {
		if (atomic_load(&a->dead))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct entry *nv = realloc(v, ncap * sizeof(*nv));
			if (!nv)
				break;
			v = nv;
			cap = ncap;
		}
		v[n].pid = a->pid;
		snprintf(v[n].python, sizeof(v[n].python), "%s", a->python);
		n++;
	}
	pthread_mutex_unlock(&g_lock);
	pid_t *pids = calloc(n ? n : 1, sizeof(*pids));
	bool *allowed = calloc(n ? n : 1, sizeof(*allowed));
	if (pids && allowed) {
		for (size_t i = 0; i < n; i++)
			pids[i] = v[i].pid;
		/* A user learns of the sessions on processes they could ptrace, not others'. */
		if (fp_auth_filter(c, pids, n, allowed) == 0)
			for (size_t i = 0; i < n; i++)
				if (allowed[i])
					json_array_append_new(out, json_sprintf("%d (Python %s)",
										(int)v[i].pid,
										v[i].python));
	}
	free(pids);
	free(allowed);
	free(v);
	return out;
}

int fp_cmd_detach(struct fp_req *r)
{
	if (fp_req_authorize(r))
		return -1;
	int n = 0;
	pthread_mutex_lock(&g_lock);
	for (struct fp_agent *a = g_agents; a; a = a->gnext)
		if (a->pid == r->pid && !atomic_exchange(&a->dead, true)) {
			/* The owner frees it; the helper sees the link close and cleans up. */
			shutdown(a->fd, SHUT_RDWR);
			n++;
		}
	pthread_mutex_unlock(&g_lock);
	json_t *ev = fp_msg_event(r->id, "detached");
	json_object_set_new(ev, "pid", json_integer(r->pid));
	json_object_set_new(ev, "sessions", json_integer(n));
	return fp_req_emit(r, ev);
}
