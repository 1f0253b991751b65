/*
 * fpd's side of the helper sessions: for each client connection and target,
 * one link to libfpagent.so inside the target (include/fp/agentlink.h).  A
 * link is opened by the first helper command of a connection (injecting the
 * helper, or re-triggering it when already loaded), reused by the next ones,
 * and closed with the connection, by `fpctl detach`, or when the target
 * exits; closing it makes the helper undo the session's instrumentation.
 */
#ifndef FP_AGENTLINK_H_DAEMON
#define FP_AGENTLINK_H_DAEMON

#include <stdbool.h>
#include <sys/types.h>

#include "server.h"

struct fp_agent;

/*
 * A session's private directory inside a target, made by fpd: owned by fpd's
 * user (root), mode 0711, in the target's /tmp, /var/tmp or /dev/shm as
 * resolved inside the target's root.  The helper (the target's uid) may only
 * search it, so nobody but fpd can change what is in it; fpd reaches it only
 * through these fds, never through a path the target's user could redirect.
 */
struct fp_session_dir {
	int base;	 /* the target's /tmp (or /var/tmp, /dev/shm), O_PATH */
	int fd;		 /* the session directory */
	char name[24];	 /* its name in base: .fpd-XXXXXXXXXXXX */
	char target[48]; /* as the target names it: /tmp/.fpd-XXXXXXXXXXXX */
};

/* 0, or -1 with err = one line naming the step that failed in each place tried. */
int fp_session_dir_make(pid_t pid, struct fp_session_dir *d, char *err, size_t errlen);

/* Removes what is in it and it, and closes its fds (again: nothing). */
void fp_session_dir_remove(struct fp_session_dir *d);

/* Where fpd finds libfpagent.so; set by `fpd --agent PATH`, else found next to fpd. */
void fp_agent_set_path(const char *path);

/*
 * The command handler of every helper command (getglobal, vmtool, ...):
 * forwards r->cmd and r->args to the target's helper (the session of this
 * connection, opened on first use) and relays its events to the client.
 */
int fp_cmd_agent(struct fp_req *r);

/* The same, under another name: `stack -a` runs as the helper's "stack_async". */
int fp_agent_forward(struct fp_req *r, const char *cmd);

/* `fpctl detach PID`: closes every session on a process (any connection's). */
int fp_cmd_detach(struct fp_req *r);

/*
 * The live helper sessions on the processes c could ptrace, one string each:
 * "PID (Python 3.11.7)" (for `fpctl status`).
 */
json_t *fp_agent_sessions_json(const struct fp_cred *c);

/* Closes the sessions a connection opened (at its end). */
void fp_agent_close_all(struct fp_agent **list);

#endif
