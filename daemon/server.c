/*
 * Unix-socket server.  Each client connection gets a thread that reads
 * frames; each request runs on a thread of its own so that the connection
 * thread can still receive a "cancel" for it.  A malformed or oversized frame
 * closes that connection and nothing else.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agentlink.h"
#include "commands.h"
#include "fp/proto.h"
#include "limits.h"
#include "log.h"
#include "proc.h"

/* Open files fpd asks for (within the hard limit). */
#define FD_LIMIT_WANTED 65536
/* With --exit-when-idle: how long to wait for the first client. */
#define IDLE_FIRST_CLIENT_S 10.0

struct fp_conn {
	int fd;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	struct fp_cred cred;
	pthread_mutex_t send_lock;
	pthread_mutex_t req_lock;
	struct fp_req *active; /* the request running now, for "cancel" */
	pthread_t worker;
	bool has_worker;
	int refs;		 /* the connection thread and the running worker */
	struct fp_agent *agents; /* helper sessions this connection opened */
	/* Whose connection fp_limits_admit counted it as. */
	uid_t quota_uid;
};

static char g_socket[108];
static struct timespec g_start;
static atomic_int g_clients;
static volatile sig_atomic_t g_stop;

double fp_server_uptime(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - g_start.tv_sec) + (now.tv_nsec - g_start.tv_nsec) / 1e9;
}

int fp_server_clients(void)
{
	return atomic_load(&g_clients);
}

const char *fp_server_socket(void)
{
	return g_socket;
}

static void conn_put(struct fp_conn *c)
{
	pthread_mutex_lock(&c->req_lock);
	int left = --c->refs;
	pthread_mutex_unlock(&c->req_lock);
	if (left)
		return;
	close(c->fd);
	pthread_mutex_destroy(&c->send_lock);
	pthread_mutex_destroy(&c->req_lock);
	fp_limits_release(c->quota_uid);
	free(c);
	atomic_fetch_sub(&g_clients, 1);
}

static int conn_send(struct fp_conn *c, const json_t *msg)
{
	pthread_mutex_lock(&c->send_lock);
	int rc = fp_frame_send(c->fd, msg);
	pthread_mutex_unlock(&c->send_lock);
	return rc == FP_FRAME_OK ? 0 : -1;
}

static bool still_authorized(struct fp_req *r);

int fp_req_emit(struct fp_req *r, json_t *event)
{
	if (!event)
		return -1;
	if (!still_authorized(r)) {
		json_decref(event);
		atomic_store(&r->cancelled, true);
		return -1;
	}
	json_object_set_new(event, "id", json_integer(r->id));
	int rc = conn_send(r->conn, event);
	json_decref(event);
	if (rc)
		atomic_store(&r->cancelled, true); /* nobody is listening any more */
	return rc;
}

int fp_req_end(struct fp_req *r)
{
	if (r->done)
		return 0;
	r->done = true;
	json_t *m = fp_msg_end(r->id);
	int rc = conn_send(r->conn, m);
	json_decref(m);
	return rc;
}

int fp_req_fail(struct fp_req *r, const char *code, int exit_status, const char *fmt, ...)
{
	if (r->done)
		return -1;
	r->done = true;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_t *m = fp_msg_error(r->id, code, exit_status, "%s", msg);
	conn_send(r->conn, m);
	json_decref(m);
	return -1;
}

bool fp_req_cancelled(struct fp_req *r)
{
	return atomic_load(&r->cancelled);
}

void fp_req_set_input(struct fp_req *r, fp_input_fn fn, void *ctx)
{
	pthread_mutex_lock(&r->conn->req_lock);
	r->on_input = fn;
	r->input_ctx = ctx;
	pthread_mutex_unlock(&r->conn->req_lock);
}

struct fp_agent **fp_req_agents(struct fp_req *r)
{
	return &r->conn->agents;
}

bool fp_req_flag(struct fp_req *r, const char *name)
{
	return json_is_true(json_object_get(r->args, name));
}

int fp_req_authorize(struct fp_req *r)
{
	if (r->pid <= 0)
		return fp_req_fail(r, "bad_pid", FP_EXIT_USAGE, "a positive process id is needed");
	unsigned long long started = fp_proc_start_time(r->pid);
	enum fp_auth a = started ? fp_auth_may_ptrace(&r->cred, r->pid) : FP_AUTH_NO_PROCESS;
	/* The pid may have been reused while the kernel was asked. */
	if (a == FP_AUTH_OK && fp_proc_start_time(r->pid) != started)
		a = FP_AUTH_NO_PROCESS;
	switch (a) {
	case FP_AUTH_OK:
		break;
	case FP_AUTH_NO_PROCESS:
		return fp_req_fail(r, "no_such_process", FP_EXIT_ATTACH,
				   "no process with pid %d; check the pid with 'fpctl ps'",
				   (int)r->pid);
	case FP_AUTH_DENIED:
		return fp_req_fail(
		    r, "permission", FP_EXIT_ATTACH,
		    "permission denied: the kernel would not let uid %u ptrace process %d (another "
		    "user's, setuid, changed its ids, or not dumpable), so fpd will not act on it "
		    "for you; attach to your own processes, or run fpctl as root",
		    (unsigned)r->cred.uid, (int)r->pid);
	case FP_AUTH_ERROR:
		return fp_req_fail(
		    r, "auth", FP_EXIT_ATTACH,
		    "permission check for process %d failed inside fpd (see its log); "
		    "refusing",
		    (int)r->pid);
	}
	r->auth_start_time = started;
	r->authorized = true;
	return 0;
}

/*
 * An event about a process goes to a non-root client only while the kernel
 * would still let that client ptrace it: a target may change credentials
 * (exec a setuid program) after the request was allowed, or exit and have
 * its pid reused.  So the kernel is asked again before every event, after
 * the data in it was read: a check costs a thread and an open (tens of
 * microseconds), and anything less frequent let the first second of a
 * setuid program's stacks through.  A target that is simply gone keeps its
 * events (perf's profile comes after the exit).
 */
static bool still_authorized(struct fp_req *r)
{
	if (!r->authorized || r->cred.uid == 0)
		return true;
	enum fp_auth a = fp_auth_may_ptrace(&r->cred, r->pid);
	unsigned long long started = fp_proc_start_time(r->pid);
	if ((a == FP_AUTH_OK && started == r->auth_start_time) ||
	    (a == FP_AUTH_NO_PROCESS && started == 0))
		return true;
	fp_req_fail(r, "permission", FP_EXIT_ATTACH,
		    "process %d changed credentials or was replaced since the command started; "
		    "uid %u may no longer ptrace it, so the command stops here",
		    (int)r->pid, (unsigned)r->cred.uid);
	return false;
}

int fp_req_reauthorize(struct fp_req *r)
{
	return still_authorized(r) ? 0 : -1;
}

int fp_req_python(struct fp_req *r, struct fp_python *py)
{
	if (fp_req_authorize(r))
		return -1;
	char err[512];
	int rc = fp_python_discover(r->pid, py, err, sizeof(err));
	if (rc == FP_PY_OK)
		return 0;
	static const struct {
		int rc;
		const char *code;
	} codes[] = {
	    {FP_PY_NO_PROCESS, "no_such_process"}, {FP_PY_ZOMBIE, "zombie"},
	    {FP_PY_NOT_PYTHON, "not_python"},	   {FP_PY_UNSUPPORTED, "unsupported"},
	    {FP_PY_NO_ACCESS, "no_access"},	   {FP_PY_NOT_READY, "not_ready"},
	};
	const char *code = "attach";
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i].rc == rc)
			code = codes[i].code;
	return fp_req_fail(r, code, FP_EXIT_ATTACH, "%s", err);
}

struct worker_arg {
	struct fp_conn *conn;
	struct fp_req *req;
	fp_cmd_fn fn;
};

static void *worker_main(void *p)
{
	struct worker_arg *a = p;
	struct fp_req *r = a->req;
	int rc = a->fn(r);
	if (!r->done) {
		if (rc == 0)
			fp_req_end(r);
		else
			fp_req_fail(r, "internal", FP_EXIT_CMD, "command %s failed", r->cmd);
	}
	pthread_mutex_lock(&a->conn->req_lock);
	a->conn->active = NULL;
	pthread_mutex_unlock(&a->conn->req_lock);
	json_decref(r->args);
	free((char *)r->cmd);
	free(r);
	conn_put(a->conn);
	free(a);
	return NULL;
}

static void join_worker(struct fp_conn *c)
{
	if (c->has_worker) {
		pthread_join(c->worker, NULL);
		c->has_worker = false;
	}
}

/* The largest pid the kernel hands out now (it can be changed at run time). */
static long long pid_max(void)
{
	char buf[32];
	int fd = open("/proc/sys/kernel/pid_max", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return INT_MAX;
	buf[n] = '\0';
	long long v = strtoll(buf, NULL, 10);
	return v > 0 && v <= INT_MAX ? v : INT_MAX;
}

static const char *json_type_name(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_REAL:
		return "a real number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	default:
		return "not an integer";
	}
}

/*
 * A request's "pid": absent (0, no target) or a pid the kernel could have
 * given.  Never cut to fit pid_t: 2^32+P would otherwise act on P.  On
 * refusal, why holds the line for the client.
 */
static int request_pid(const json_t *jpid, pid_t *pid, char *why, size_t len)
{
	*pid = 0;
	if (!jpid)
		return 0;
	if (!json_is_integer(jpid)) {
		snprintf(why, len, "\"pid\" must be an integer process id, not %s",
			 json_type_name(jpid));
		return -1;
	}
	json_int_t v = json_integer_value(jpid);
	long long max = pid_max();
	if (v < 1 || v > max) {
		snprintf(why, len,
			 "%lld is not a process id: pids run from 1 to %lld here (the kernel's "
			 "pid_max); check the pid with 'fpctl ps'",
			 (long long)v, max);
		return -1;
	}
	*pid = (pid_t)v;
	return 0;
}

/* Starts one request; a connection runs its requests one after the other. */
static int start_request(struct fp_conn *c, json_t *msg)
{
	json_t *jid = json_object_get(msg, "id");
	json_t *jcmd = json_object_get(msg, "cmd");
	json_int_t id = json_is_integer(jid) ? json_integer_value(jid) : 0;
	if (!json_is_integer(jid) || !json_is_string(jcmd)) {
		json_t *e = fp_msg_error(id, "bad_request", FP_EXIT_USAGE,
					 "a request needs an integer \"id\" and a string \"cmd\"");
		conn_send(c, e);
		json_decref(e);
		return 0;
	}
	join_worker(c);

	const char *name = json_string_value(jcmd);
	fp_cmd_fn fn = fp_command_find(name);
	if (!fn) {
		json_t *e = fp_msg_error(id, "unknown_command", FP_EXIT_USAGE,
					 "unknown command '%s'; see 'fpctl help'", name);
		conn_send(c, e);
		json_decref(e);
		return 0;
	}
	pid_t pid;
	char why[256];
	if (request_pid(json_object_get(msg, "pid"), &pid, why, sizeof(why))) {
		json_t *e = fp_msg_error(id, "bad_pid", FP_EXIT_USAGE, "%s", why);
		conn_send(c, e);
		json_decref(e);
		return 0;
	}

	struct fp_req *r = calloc(1, sizeof(*r));
	struct worker_arg *a = calloc(1, sizeof(*a));
	if (!r || !a) {
		free(r);
		free(a);
		return -1;
	}
	r->id = id;
	r->cmd = strdup(name);
	r->pid = pid;
	json_t *args = json_object_get(msg, "args");
	r->args = json_is_object(args) ? json_incref(args) : json_object();
	r->uid = c->uid;
	r->gid = c->gid;
	r->peer_pid = c->pid;
	r->cred = c->cred;
	r->conn = c;
	atomic_init(&r->cancelled, false);
	a->conn = c;
	a->req = r;
	a->fn = fn;

	pthread_mutex_lock(&c->req_lock);
	c->refs++;
	c->active = r;
	pthread_mutex_unlock(&c->req_lock);
	if (pthread_create(&c->worker, NULL, worker_main, a) != 0) {
		pthread_mutex_lock(&c->req_lock);
		c->refs--;
		c->active = NULL;
		pthread_mutex_unlock(&c->req_lock);
		json_decref(r->args);
		free((char *)r->cmd);
		free(r);
		free(a);
		return -1;
	}
	c->has_worker = true;
	return 0;
}

static void cancel_active(struct fp_conn *c, json_t *msg)
{
	json_t *jid = json_object_get(msg, "id");
	pthread_mutex_lock(&c->req_lock);
	if (c->active && (!json_is_integer(jid) || json_integer_value(jid) == c->active->id))
		atomic_store(&c->active->cancelled, true);
	pthread_mutex_unlock(&c->req_lock);
}

static void deliver_input(struct fp_conn *c, json_t *msg)
{
	json_t *jid = json_object_get(msg, "id");
	pthread_mutex_lock(&c->req_lock);
	struct fp_req *r = c->active;
	if (r && r->on_input && json_is_integer(jid) && json_integer_value(jid) == r->id)
		r->on_input(r->input_ctx, msg);
	pthread_mutex_unlock(&c->req_lock);
}

static void *conn_main(void *p)
{
	struct fp_conn *c = p;
	json_t *msg = NULL;
	int rc = fp_frame_recv_bounded(c->fd, &msg, FP_HELLO_DEADLINE_MS, FP_FRAME_DEADLINE_MS,
				       FP_MAX_CLIENT_FRAME);
	const char *type = msg ? json_string_value(json_object_get(msg, "type")) : NULL;
	json_t *v = msg ? json_object_get(msg, "v") : NULL;
	if (rc != FP_FRAME_OK || strcmp(type, "hello") != 0 || !json_is_integer(v) ||
	    json_integer_value(v) != FP_PROTO_VERSION) {
		if (rc == FP_FRAME_OK) {
			json_t *e =
			    fp_msg_error(0, "protocol", FP_EXIT_ATTACH,
					 "protocol mismatch: fpd speaks version %d and expects "
					 "a hello frame first; use the fpctl of the same release",
					 FP_PROTO_VERSION);
			conn_send(c, e);
			json_decref(e);
		} else if (rc == FP_FRAME_TIMEOUT) {
			fp_log("client pid %d (uid %u): no hello within %d s of connecting, "
			       "closing its connection",
			       (int)c->pid, (unsigned)c->quota_uid, FP_HELLO_DEADLINE_MS / 1000);
		} else if (rc != FP_FRAME_EOF) {
			fp_log("client pid %d (uid %u): %s, closing its connection", (int)c->pid,
			       (unsigned)c->quota_uid, fp_frame_strerror(rc));
		}
		json_decref(msg);
		goto out;
	}
	json_decref(msg);
	json_t *hello = json_pack("{s:s, s:i, s:s, s:i}", "type", "hello", "v", FP_PROTO_VERSION,
				  "server", "fpd", "pid", (int)getpid());
	conn_send(c, hello);
	json_decref(hello);

	while (!g_stop) {
		/* An idle client may wait as long as it likes; a started frame may not. */
		rc = fp_frame_recv_bounded(c->fd, &msg, -1, FP_FRAME_DEADLINE_MS,
					   FP_MAX_CLIENT_FRAME);
		if (rc == FP_FRAME_TIMEOUT) {
			fp_log("client pid %d (uid %u): a frame not complete %d s after its first "
			       "byte, closing its connection",
			       (int)c->pid, (unsigned)c->quota_uid, FP_FRAME_DEADLINE_MS / 1000);
			break;
		}
		if (rc != FP_FRAME_OK) {
			if (rc != FP_FRAME_EOF && rc != FP_FRAME_IO)
				fp_log("client pid %d (uid %u): %s, closing its connection",
				       (int)c->pid, (unsigned)c->quota_uid, fp_frame_strerror(rc));
			break;
		}
		type = json_string_value(json_object_get(msg, "type"));
		if (strcmp(type, "request") == 0) {
			if (start_request(c, msg)) {
				json_decref(msg);
				break;
			}
		} else if (strcmp(type, "cancel") == 0) {
			cancel_active(c, msg);
		} else if (strcmp(type, "input") == 0) {
			deliver_input(c, msg);
		} else {
			fp_log("client pid %d: unexpected frame type '%s', closing its connection",
			       (int)c->pid, type);
			json_decref(msg);
			break;
		}
		json_decref(msg);
	}
out:
	/* The client is gone: whatever it started must stop. */
	cancel_active(c, NULL);
	shutdown(c->fd, SHUT_RD);
	join_worker(c);
	/* Detach: each helper session ends and undoes its instrumentation. */
	fp_agent_close_all(&c->agents);
	conn_put(c);
	return NULL;
}

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static int make_socket(const char *path)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(addr.sun_path)) {
		fp_log("socket path %s is too long (at most %zu bytes)", path,
		       sizeof(addr.sun_path) - 1);
		return -1;
	}
	strcpy(addr.sun_path, path);

	/* /run/fpd may not exist outside systemd's RuntimeDirectory. */
	char dir[sizeof(addr.sun_path)];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) && errno != EEXIST) {
			fp_log("creating the socket directory %s failed: %s", dir, strerror(errno));
			return -1;
		}
	}

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fp_log("socket() failed: %s", strerror(errno));
		return -1;
	}
	/* A socket file left by a crashed fpd is stale only if nobody answers on it. */
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
		fp_log("another fpd is already listening on %s", path);
		close(fd);
		return -1;
	}
	unlink(path);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		fp_log("binding %s failed: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	/* Every user may connect; authorization happens per request with SO_PEERCRED. */
	chmod(path, 0666);
	if (listen(fd, 64) != 0) {
		fp_log("listen on %s failed: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	return fd;
}

/*
 * A connection over a limit: one error frame saying which limit, then it
 * closes.  Logged sparingly: a flood of refusals must not flood the journal.
 */
static void refuse_client(int fd, const struct ucred *cred, const char *why)
{
	json_t *e = fp_msg_error(0, "busy", FP_EXIT_ATTACH, "%s", why);
	fp_frame_send(fd, e);
	json_decref(e);
	close(fd);
	unsigned long more;
	if (fp_limits_log_due(&more))
		fp_log("refused client pid %d (uid %u): %s (%lu more refusals since the last line)",
		       (int)cred->pid, (unsigned)cred->uid, why, more);
}

/*
 * Every client and helper session holds descriptors: the usual soft limit
 * of 1024 would run out long before the connection caps do.
 */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= FD_LIMIT_WANTED)
		return;
	rl.rlim_cur = rl.rlim_max < FD_LIMIT_WANTED ? rl.rlim_max : FD_LIMIT_WANTED;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		fp_log("raising the open-file limit to %llu failed: %s",
		       (unsigned long long)rl.rlim_cur, strerror(errno));
}

int fp_server_run(const struct fp_server_opts *o)
{
	raise_fd_limit();
	clock_gettime(CLOCK_MONOTONIC, &g_start);
	snprintf(g_socket, sizeof(g_socket), "%s", o->socket_path);
	int lfd = make_socket(o->socket_path);
	if (lfd < 0)
		return 1;

	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/*
	 * Only the accept loop takes SIGTERM/SIGINT, inside ppoll(): every thread
	 * started from here inherits the blocked mask, so a signal can never
	 * interrupt a worker that has a target's threads stopped.
	 */
	sigset_t stop_sigs, waitmask;
	sigemptyset(&stop_sigs);
	sigaddset(&stop_sigs, SIGTERM);
	sigaddset(&stop_sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop_sigs, &waitmask);
	sigdelset(&waitmask, SIGTERM);
	sigdelset(&waitmask, SIGINT);
	fp_log("listening on %s", o->socket_path);

	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	bool served = false, starved = false;
	while (!g_stop) {
		struct pollfd pfd = {.fd = lfd, .events = POLLIN};
		/* Idle checks are cheap; 50 ms keeps a spawning fpctl's exit wait short. */
		struct timespec tick = {.tv_nsec = 50 * 1000 * 1000};
		int pr = ppoll(&pfd, 1, o->exit_when_idle ? &tick : NULL, &waitmask);
		if (pr < 0) {
			if (errno == EINTR)
				continue;
			fp_log("waiting for clients on %s failed: %s", o->socket_path,
			       strerror(errno));
			break;
		}
		if (o->exit_when_idle && atomic_load(&g_clients) == 0 &&
		    (served || fp_server_uptime() > IDLE_FIRST_CLIENT_S) && pr == 0) {
			fp_log("no client left, stopping (--exit-when-idle)");
			break;
		}
		if (pr == 0)
			continue;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			/* Out of descriptors or memory passes; stopping would lock everyone out. */
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				if (!starved)
					fp_log("accept on %s failed: %s; retrying every 100 ms",
					       o->socket_path, strerror(errno));
				starved = true;
				nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
				continue;
			}
			fp_log("accept on %s failed: %s", o->socket_path, strerror(errno));
			break;
		}
		starved = false;
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0) {
			fp_log("SO_PEERCRED failed: %s", strerror(errno));
			close(fd);
			continue;
		}
		/* Each client costs a thread: caps keep a local user from exhausting them. */
		char why[512];
		if (fp_limits_admit(cred.uid, why, sizeof(why))) {
			refuse_client(fd, &cred, why);
			continue;
		}
		struct fp_conn *c = calloc(1, sizeof(*c));
		if (!c) {
			fp_limits_release(cred.uid);
			close(fd);
			continue;
		}
		c->quota_uid = cred.uid;
		served = true;
		c->fd = fd;
		c->uid = cred.uid;
		c->gid = cred.gid;
		c->pid = cred.pid;
		/* The same peer, with its groups too: what authorization runs as. */
		fp_cred_from_socket(fd, &c->cred);
		c->refs = 1;
		pthread_mutex_init(&c->send_lock, NULL);
		pthread_mutex_init(&c->req_lock, NULL);
		atomic_fetch_add(&g_clients, 1);
		pthread_t t;
		if (pthread_create(&t, &attr, conn_main, c) != 0) {
			fp_log("starting a connection thread failed");
			conn_put(c);
		}
	}
	pthread_attr_destroy(&attr);
	close(lfd);
	unlink(o->socket_path);
	fp_log("stopped");
	return 0;
}
