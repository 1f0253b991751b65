/*
 * The connection to fpd: connect and hello, starting fpd for the duration
 * of the call when nothing listens and fpctl runs as root, and the request
 * loop with its cancel paths (--timeout, Ctrl-C).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "fp/proto.h"

#define SPAWN_WAIT_MS  5000
#define HELLO_WAIT_MS  5000
#define CANCEL_WAIT_MS 2000
/* A stopped perf still aggregates and sends its whole profile. */
#define DRAIN_WAIT_MS 15000
#define STOP_WAIT_MS  2000
/* A frame that has started arriving is sent in one piece; this only catches a stuck peer. */
#define FRAME_WAIT_MS 30000

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits up to ms for a signal; returns it, or 0. */
static int nap(int ms)
{
	struct pollfd p = {.fd = cli_signal_fd(), .events = POLLIN};
	if (!cli_signal_pending())
		poll(&p, 1, ms);
	return cli_signal_pending();
}

/* 0 connected (*fd set), else the errno of connect(). */
static int try_connect(const char *path, int *fd)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return errno;
	if (connect(s, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		int e = errno;
		close(s);
		return e;
	}
	*fd = s;
	return 0;
}

/* fpd next to our own executable (an installed or built pair), else the one in PATH. */
static void exec_fpd(const char *socket_path)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash && (size_t)(slash - self) + sizeof("/fpd") <= sizeof(self)) {
			strcpy(slash, "/fpd");
			if (access(self, X_OK) == 0)
				execl(self, "fpd", "--socket", socket_path, "--exit-when-idle",
				      (char *)NULL);
		}
	}
	execlp("fpd", "fpd", "--socket", socket_path, "--exit-when-idle", (char *)NULL);
}

/*
 * The fpd we started runs with --exit-when-idle: once our connection is
 * closed it leaves by itself, unless another fpctl that found it meanwhile is
 * still using it, in which case it stays for that one and must not be killed.
 */
static void stop_child(struct cli_conn *c)
{
	if (c->child <= 0)
		return;
	long long deadline = now_ms() + STOP_WAIT_MS;
	while (waitpid(c->child, NULL, WNOHANG) == 0 && now_ms() < deadline)
		usleep(5000);
	c->child = 0;
}

/* Starts fpd on ctx->socket and waits for it to listen; returns 0 or the exit status. */
static int spawn_fpd(struct cli_ctx *ctx, struct cli_conn *c)
{
	int errpipe[2];
	if (pipe2(errpipe, O_CLOEXEC) != 0)
		return cli_fail(ctx, 3, "spawn", "cannot start fpd: pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0) {
		close(errpipe[0]);
		close(errpipe[1]);
		return cli_fail(ctx, 3, "spawn", "cannot start fpd: fork: %s", strerror(errno));
	}
	if (pid == 0) {
		/*
		 * Its own process group: the terminal's Ctrl-C must reach only
		 * fpctl, which cancels the request.  fpd ends when its last client
		 * is gone, fpctl killed outright included (--exit-when-idle).
		 */
		setpgid(0, 0);
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			if (!getenv("FPCTL_DEBUG"))
				dup2(null, 2);
		}
		exec_fpd(ctx->socket);
		int e = errno;
		ssize_t w = write(errpipe[1], &e, sizeof(e));
		(void)w; /* nothing left to tell if even this fails */
		_exit(127);
	}
	close(errpipe[1]);
	c->child = pid;
	int e = 0;
	ssize_t got = read(errpipe[0], &e, sizeof(e));
	close(errpipe[0]);
	if (got == (ssize_t)sizeof(e)) {
		waitpid(pid, NULL, 0);
		c->child = 0;
		if (e == ENOENT)
			return cli_fail(ctx, 3, "spawn",
					"fpd is not running and no fpd binary was found next to "
					"fpctl or in PATH; start it with 'systemctl start fpd'");
		return cli_fail(ctx, 3, "spawn",
				"cannot start fpd: %s; start it with 'systemctl start fpd'",
				strerror(e));
	}

	long long deadline = now_ms() + SPAWN_WAIT_MS;
	for (;;) {
		int err = try_connect(ctx->socket, &c->fd);
		if (err == 0)
			return 0;
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			c->child = 0;
			/* Another fpctl may have started its fpd on this socket first. */
			if (try_connect(ctx->socket, &c->fd) == 0)
				return 0;
			return cli_fail(
			    ctx, 3, "spawn",
			    "fpd exited while starting (%s %d); run 'FPCTL_DEBUG=1 fpctl "
			    "...' to see why",
			    WIFEXITED(status) ? "exit status" : "signal",
			    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		}
		if (err != ENOENT && err != ECONNREFUSED)
			return cli_fail(ctx, 3, "connect", "cannot connect to fpd at %s: %s",
					ctx->socket, strerror(err));
		if (now_ms() >= deadline)
			return cli_fail(ctx, 3, "spawn",
					"fpd did not open %s within %d s; run 'FPCTL_DEBUG=1 fpctl "
					"...' to see why",
					ctx->socket, SPAWN_WAIT_MS / 1000);
		int sig = nap(20);
		if (sig)
			return 128 + sig;
	}
}

/*
 * Whoever listens on the socket learns what fpctl asks and decides what it
 * prints, so it must be fpd run by root, or by this user (an fpd of their
 * own).  The kernel records the listener's credentials in the connection:
 * unlike the socket file's owner, checked before connect, they cannot be
 * swapped in between.
 */
static int check_peer(struct cli_ctx *ctx, struct cli_conn *c)
{
	if (ctx->g.trust_socket)
		return 0;
	struct ucred peer;
	socklen_t len = sizeof(peer);
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0)
		return cli_fail(ctx, 3, "connect",
				"cannot tell who serves %s: SO_PEERCRED: %s; pass --trust-socket "
				"to talk to it anyway",
				ctx->socket, strerror(errno));
	if (peer.uid == 0 || peer.uid == getuid() || peer.uid == geteuid())
		return 0;
	return cli_fail(ctx, 3, "untrusted",
			"the server on %s runs as uid %u, neither root nor you: refusing to talk "
			"to it; pass --trust-socket if you trust that user",
			ctx->socket, (unsigned)peer.uid);
}

static int hello(struct cli_ctx *ctx, struct cli_conn *c)
{
	json_t *h =
	    json_pack("{s:s, s:i, s:s}", "type", "hello", "v", FP_PROTO_VERSION, "client", "fpctl");
	int rc = fp_frame_send(c->fd, h);
	json_decref(h);
	json_t *ans = NULL;
	/* fpd may have refused us (busy) and closed before our hello went out: its answer waits. */
	if (rc == FP_FRAME_OK || rc == FP_FRAME_IO)
		rc = fp_frame_recv(c->fd, &ans, HELLO_WAIT_MS);
	if (rc != FP_FRAME_OK)
		return cli_fail(ctx, 3, "hello", "no hello from fpd at %s: %s; is it really fpd?",
				ctx->socket, fp_frame_strerror(rc));
	const char *type = cli_jstr(ans, "type", "");
	if (strcmp(type, "error") == 0) {
		rc = cli_fail(ctx, 3, cli_jstr(ans, "code", "hello"), "%s",
			      cli_jstr(ans, "message", "fpd refused the connection"));
	} else if (strcmp(type, "hello") != 0) {
		rc = cli_fail(ctx, 3, "hello", "fpd at %s answered '%s' instead of hello",
			      ctx->socket, type);
	} else if (cli_jint(ans, "v", -1) != FP_PROTO_VERSION) {
		rc = cli_fail(ctx, 3, "protocol",
			      "protocol mismatch: fpd at %s speaks version %lld, this fpctl "
			      "speaks %d; use fpctl and fpd of the same release",
			      ctx->socket, (long long)cli_jint(ans, "v", -1), FP_PROTO_VERSION);
	}
	json_decref(ans);
	return rc;
}

int cli_connect(struct cli_ctx *ctx, struct cli_conn *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	ctx->conn = NULL;
	if (strlen(ctx->socket) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return cli_fail(ctx, 2, "usage", "socket path '%s' is too long (at most %zu bytes)",
				ctx->socket, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	int err = try_connect(ctx->socket, &c->fd);
	int rc = 0;
	if (err == ENOENT || err == ECONNREFUSED) {
		if (geteuid() != 0)
			return cli_fail(ctx, 3, "no_daemon",
					"fpd is not running (%s at %s); start it with "
					"'systemctl start fpd' or run fpctl as root",
					err == ENOENT ? "no socket" : "nothing listens",
					ctx->socket);
		rc = spawn_fpd(ctx, c);
	} else if (err) {
		rc = cli_fail(ctx, 3, "connect", "cannot connect to fpd at %s: %s", ctx->socket,
			      strerror(err));
	}
	if (rc == 0)
		rc = check_peer(ctx, c);
	if (rc == 0)
		rc = hello(ctx, c);
	ctx->conn = c;
	if (rc)
		cli_disconnect(ctx);
	return rc;
}

void cli_disconnect(struct cli_ctx *ctx)
{
	struct cli_conn *c = ctx->conn;
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	stop_child(c);
	ctx->conn = NULL;
}

static void send_cancel(struct cli_conn *c, json_int_t id)
{
	json_t *m = json_pack("{s:s, s:I}", "type", "cancel", "id", id);
	fp_frame_send(c->fd, m);
	json_decref(m);
}

void cli_send_cancel(struct cli_ctx *ctx, json_int_t id)
{
	send_cancel(ctx->conn, id);
}

int cli_lost(struct cli_ctx *ctx, int rc)
{
	ctx->conn->broken = true;
	return cli_fail(ctx, 1, "connection", "lost the connection to fpd: %s",
			rc == FP_FRAME_EOF ? "fpd closed it" : fp_frame_strerror(rc));
}

json_int_t cli_request_send(struct cli_ctx *ctx, const char *cmd, pid_t pid, json_t *args)
{
	struct cli_conn *c = ctx->conn;
	json_int_t id = ++c->last_id;
	json_t *req = json_pack("{s:s, s:I, s:s}", "type", "request", "id", id, "cmd", cmd);
	if (pid > 0)
		json_object_set_new(req, "pid", json_integer(pid));
	if (args)
		json_object_set_new(req, "args", args);
	int rc = fp_frame_send(c->fd, req);
	json_decref(req);
	if (rc != FP_FRAME_OK) {
		cli_lost(ctx, rc);
		return -1;
	}
	return id;
}

int cli_send_input(struct cli_ctx *ctx, json_int_t id, const json_t *obj)
{
	json_t *m = json_deep_copy(obj);
	if (!m || json_object_set_new(m, "type", json_string("input")) ||
	    json_object_set_new(m, "id", json_integer(id))) {
		json_decref(m);
		return cli_fail(ctx, 1, "memory", "out of memory");
	}
	int rc = fp_frame_send(ctx->conn->fd, m);
	json_decref(m);
	return rc == FP_FRAME_OK ? 0 : cli_lost(ctx, rc);
}

int cli_timeout_fail(const struct cli_ctx *ctx, const char *cmd)
{
	return cli_fail(ctx, 1, "timeout", "%s: timed out after %g s", cmd, ctx->g.timeout_s);
}

int cli_timeout_end(const struct cli_ctx *ctx, const char *cmd, int rc)
{
	return rc == 0 && ctx->conn && ctx->conn->timed_out ? cli_timeout_fail(ctx, cmd) : rc;
}

static int request(struct cli_ctx *ctx, const char *cmd, pid_t pid, json_t *args, cli_event_fn fn,
		   void *ud, bool drain)
{
	struct cli_conn *c = ctx->conn;
	c->timed_out = false;
	json_int_t id = cli_request_send(ctx, cmd, pid, args);
	if (id < 0)
		return 1;
	int rc;

	long long deadline =
	    ctx->g.timeout_s > 0 ? now_ms() + (long long)(ctx->g.timeout_s * 1000) : -1;
	long long cancel_deadline = -1;
	int result = 0;	       /* once cancelled: the status to leave with */
	bool gil_wait = false; /* the last event: the helper waits for the target's GIL */
	for (;;) {
		long long now = now_ms();
		int sig = cli_signal_pending();
		if (sig && cancel_deadline >= 0 && drain) {
			/*
			 * A second Ctrl-C (or one after --timeout's stop): the user no
			 * longer waits for what fpd would still send.
			 */
			return cli_fail(ctx, 128 + sig, "interrupted",
					"%s: interrupted; no profile written", cmd);
		}
		if (sig && cancel_deadline < 0) {
			send_cancel(c, id);
			result = drain ? 0 : 128 + sig;
			cancel_deadline = now + (drain ? DRAIN_WAIT_MS : CANCEL_WAIT_MS);
			/* Drained, the stop is under way: a second signal must be seen. */
			if (drain)
				cli_signal_clear();
		}
		if (cancel_deadline >= 0 && now >= cancel_deadline)
			return drain ? cli_fail(ctx, 1, "timeout",
						"%s: fpd did not finish within %d s of the stop",
						cmd, DRAIN_WAIT_MS / 1000)
				     : result;
		if (cancel_deadline < 0 && deadline >= 0 && now >= deadline) {
			/*
			 * The daemon stops the command; frames that still come for it
			 * are dropped by id later.  A drained command first receives
			 * what it collected, and a helper command's end says its
			 * instrumentation is gone, which takes a moment; but not while
			 * the helper waits for a GIL that the target may never release.
			 */
			send_cancel(c, id);
			if (!drain || gil_wait)
				return cli_timeout_fail(ctx, cmd);
			c->timed_out = true;
			cancel_deadline = now + DRAIN_WAIT_MS;
			continue;
		}
		long long until = cancel_deadline >= 0 ? cancel_deadline : deadline;
		/*
		 * Once cancelled the signal pipe stays readable and only fpd's answer
		 * matters, unless drained: the first signal was cleared, a second one
		 * abandons the wait.
		 */
		struct pollfd p[2] = {
		    {.fd = c->fd, .events = POLLIN},
		    {.fd = cancel_deadline < 0 || drain ? cli_signal_fd() : -1, .events = POLLIN}};
		int n = poll(p, 2, until < 0 ? -1 : (int)(until - now));
		if (n < 0 && errno != EINTR)
			return cli_fail(ctx, 1, "poll", "waiting for fpd failed: %s",
					strerror(errno));
		if (n <= 0 || !(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;

		json_t *m = NULL;
		rc = fp_frame_recv(c->fd, &m, FRAME_WAIT_MS);
		if (rc != FP_FRAME_OK)
			return cancel_deadline >= 0 ? result : cli_lost(ctx, rc);
		/* Frames of an earlier, cancelled request may still arrive. */
		if (cli_jint(m, "id", -1) != id) {
			json_decref(m);
			continue;
		}
		const char *type = cli_jstr(m, "type", "");
		if (strcmp(type, "event") == 0) {
			gil_wait = strcmp(cli_jstr(m, "event", ""), "gil_wait") == 0;
			if (cancel_deadline >= 0 && drain && fn(ud, m) != 0) {
				result = 1;
			} else if (cancel_deadline < 0 && fn(ud, m) != 0) {
				send_cancel(c, id);
				result = 1;
				cancel_deadline = now_ms() + CANCEL_WAIT_MS;
			}
			json_decref(m);
			continue;
		}
		if (strcmp(type, "end") == 0) {
			json_decref(m);
			return result;
		}
		if (strcmp(type, "error") == 0) {
			if (cancel_deadline >= 0 && !drain) {
				json_decref(m);
				return result;
			}
			/* The helper could not confirm the stop in time: still the timeout. */
			if (c->timed_out && strcmp(cli_jstr(m, "code", ""), "cancelled") == 0) {
				c->timed_out = false;
				json_decref(m);
				return cli_timeout_fail(ctx, cmd);
			}
			c->timed_out = false;
			json_int_t ex = cli_jint(m, "exit", FP_EXIT_CMD);
			if (ex < 1 || ex > 125)
				ex = FP_EXIT_CMD;
			if (ctx->g.json)
				cli_print_json(stdout, m);
			fputs(ctx->shell ? "" : "fpctl: ", stderr);
			cli_put_safe(stderr, cli_jstr(m, "message",
						      "fpd reported an error without a message"));
			putc('\n', stderr);
			json_decref(m);
			return (int)ex;
		}
		json_decref(m);
	}
}

int cli_request(struct cli_ctx *ctx, const char *cmd, pid_t pid, json_t *args, cli_event_fn fn,
		void *ud)
{
	return request(ctx, cmd, pid, args, fn, ud, false);
}

int cli_request_drain(struct cli_ctx *ctx, const char *cmd, pid_t pid, json_t *args,
		      cli_event_fn fn, void *ud)
{
	return request(ctx, cmd, pid, args, fn, ud, true);
}
