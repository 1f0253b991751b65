/*
 * The daemon's front door: the Unix socket, one thread per client
 * connection, and the request context every command handler works with.
 */
#ifndef FP_SERVER_H
#define FP_SERVER_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#include "auth.h"
#include "fp/proto.h"
#include "py/python.h"

struct fp_conn;
struct fp_agent;

/* Called with each "input" frame the client sends for the running request. */
typedef void (*fp_input_fn)(void *ctx, json_t *msg);

struct fp_req {
	json_int_t id;
	const char *cmd;
	pid_t pid;    /* target, 0 when the command has none */
	json_t *args; /* object, never NULL */
	uid_t uid;    /* requester, from SO_PEERCRED */
	gid_t gid;
	pid_t peer_pid;
	struct fp_cred cred; /* the requester as the kernel described it */
	/*
	 * Set once the requester was allowed r->pid: every later event is sent
	 * only while that still holds (see fp_req_emit).
	 */
	bool authorized;
	unsigned long long auth_start_time; /* the target's, to notice a reused pid */
	struct fp_conn *conn;
	atomic_bool cancelled;
	bool done;	      /* an end or error frame was sent */
	fp_input_fn on_input; /* under the connection's lock: see fp_req_set_input */
	void *input_ctx;
};

/* Sends an event (takes ownership).  -1 when the client is gone. */
int fp_req_emit(struct fp_req *r, json_t *event);
/* Ends the stream successfully. */
int fp_req_end(struct fp_req *r);
/* Ends the stream with an error; returns -1 so handlers can `return fp_req_fail(...)`. */
int fp_req_fail(struct fp_req *r, const char *code, int exit_status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
bool fp_req_cancelled(struct fp_req *r);

/* Routes the client's "input" frames for r to fn (NULL: drop them again). */
void fp_req_set_input(struct fp_req *r, fp_input_fn fn, void *ctx);

/*
 * The helper sessions of r's connection (daemon/agentlink.c): opened by its
 * first helper command, closed with the connection.  Only the request
 * running on the connection uses the list.
 */
struct fp_agent **fp_req_agents(struct fp_req *r);

/* A boolean argument of the request, false when absent. */
bool fp_req_flag(struct fp_req *r, const char *name);

/*
 * Checks that the requester may inspect req->pid (the kernel would let it
 * ptrace the process: daemon/auth.c) and finds its interpreter.  On failure the request has been
 * answered with an error (exit 3) and -1 is returned.
 */
int fp_req_python(struct fp_req *r, struct fp_python *py);

/* Same permission check without requiring Python; 0 or -1 (answered). */
int fp_req_authorize(struct fp_req *r);

/*
 * Asks the kernel again, now, whether the requester may still ptrace
 * r->pid (the same process: a reused pid fails).  0, or -1 with r answered.
 */
int fp_req_reauthorize(struct fp_req *r);

typedef int (*fp_cmd_fn)(struct fp_req *r);

struct fp_server_opts {
	const char *socket_path;
	/*
	 * Stop once no client is connected (after the first one has come and
	 * gone, or when none came within a few seconds): fpd as started by
	 * fpctl for the duration of a call.
	 */
	bool exit_when_idle;
};

/* Serves until SIGTERM/SIGINT; returns the exit status for main(). */
int fp_server_run(const struct fp_server_opts *o);

/* Facts for `fpctl status`. */
double fp_server_uptime(void);
int fp_server_clients(void);
const char *fp_server_socket(void);

#endif
