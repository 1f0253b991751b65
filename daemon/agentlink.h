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

/* Closes the sessions a connection opened (at its end). */
void fp_agent_close_all(struct fp_agent **list);

#endif
