/*
 * Limits that keep one local user from exhausting fpd for the others:
 * connections per uid, connections of all users but root together, and the
 * deadlines a connection's frames must meet.
 *
 * Root (uid 0 by SO_PEERCRED) is always admitted and never counted against
 * the global cap: the administrator can always reach fpd, whatever every
 * other user holds.
 *
 * Requests need no cap of their own: a connection runs its requests one
 * after the other (the next starts once the previous one ended), so the
 * requests a uid has running are bounded by its connections.
 */
#ifndef FP_LIMITS_H
#define FP_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* fpctl keeps one connection per call or shell; 16 covers a user's busy terminal set. */
#define FP_LIMIT_PER_USER_DEFAULT 16
/* Each connection costs a thread (two while a request runs). */
#define FP_LIMIT_GLOBAL_DEFAULT 256

/*
 * fpctl sends hello right after connect, and every frame with one send():
 * only a stalled or hostile peer takes seconds.  Short deadlines return a
 * flooding user's half-open connections to its quota quickly.
 */
#define FP_HELLO_DEADLINE_MS 5000
#define FP_FRAME_DEADLINE_MS 5000

/* Sets the caps (0 keeps the current one); before the server starts. */
void fp_limits_set(unsigned per_user, unsigned global);

/*
 * Counts a new connection of uid.  0: admitted, release it with
 * fp_limits_release(uid) when it closes.  -1: refused, msg holds the one
 * line for the client (which limit, what to do).
 */
int fp_limits_admit(uid_t uid, char *msg, size_t msglen);
void fp_limits_release(uid_t uid);

/*
 * Whether a refusal should be logged now: the first one, then at most one
 * every few seconds, so that a flood cannot flood the journal too.
 * *suppressed is the number of refusals not logged since the last logged one.
 */
bool fp_limits_log_due(unsigned long *suppressed);

struct fp_limits_state {
	unsigned per_user, global;
	unsigned clients; /* connections of users other than root */
	unsigned root_clients;
	unsigned long refused; /* since start */
};

void fp_limits_get(struct fp_limits_state *s);

#endif
