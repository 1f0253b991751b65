/*
 * The link between fpd and the helper inside a target (libfpagent.so).
 *
 * fpd makes a listening Unix socket for each session, in a fresh directory
 * inside the target's mount namespace; the injected helper connects out to
 * it (it never listens) and fpd accepts only a peer whose SO_PEERCRED pid is
 * the target's.  One socket = one session: closing it ends the session and
 * the helper removes every instrumentation the session made.
 *
 * Frames are binary-headed so that the helper's C side routes them without
 * a JSON parser (a JSON library linked into the helper would have to be
 * position-independent and private; Debian's libjansson.a is neither):
 *
 *   u32 length (big-endian) of what follows: FP_AL_HDR + payload bytes
 *   u8  op
 *   u32 id (big-endian): the request the frame belongs to, 0 for none
 *   payload: UTF-8 JSON (an object), possibly empty
 *
 * fpd -> helper
 *   REQUEST  {"cmd":"getglobal","args":{...}}   a new request with a fresh id
 *   CANCEL   (empty)                            stop request id
 *   INPUT    {...}                              data for a running request (console lines)
 *   PING     (empty)                            answered by PONG without the GIL
 *
 * helper -> fpd
 *   HELLO    {"pid":N,"python":"3.11.7","agent":"<fp version>"}  first frame, sent without the GIL
 *   EVENT    {"event":"value",...}              zero or more per request
 *   END      (empty)                            request done
 *   ERROR    {"code":"...","exit":1,"message":"..."}  request failed
 *   PONG     {"pid":N,"python":"...","sessions":N,"requests":N}
 *   RUNNING  (empty)                            request id holds the GIL and runs; until
 *                                              then it waits for the GIL (fpd tells the user)
 *
 * Every REQUEST gets exactly one END or ERROR.  A CANCEL for an id that is
 * not running is ignored.
 */
#ifndef FP_AGENTLINK_H
#define FP_AGENTLINK_H

#include <stddef.h>
#include <stdint.h>

#define FP_AL_HDR	5u
#define FP_AL_MAX_FRAME (16u << 20)

enum fp_al_op {
	FP_AL_REQUEST = 1,
	FP_AL_CANCEL = 2,
	FP_AL_INPUT = 3,
	FP_AL_PING = 4,

	FP_AL_HELLO = 16,
	FP_AL_EVENT = 17,
	FP_AL_END = 18,
	FP_AL_ERROR = 19,
	FP_AL_PONG = 20,
	FP_AL_RUNNING = 21,
};

/* The helper's entry point, called by the injector on the hijacked thread
 * (see daemon/inject.h): copies sock_path, starts one detached thread with
 * every signal blocked that connects to it, and returns 0 (or -errno).  It
 * must not take locks the interrupted thread could hold, so it does only that. */
#define FP_AGENT_ENTRY	 "fpagent_start"
#define FP_AGENT_LIBNAME "libfpagent.so"

/*
 * Frame codec (common/agentlink.c), used by fpd and by the helper: no
 * allocation but the payload, no JSON, no signals (MSG_NOSIGNAL).
 * fp_al_send: 0 or -1 (errno set).  flags are send(2) flags (MSG_DONTWAIT).
 */
int fp_al_send(int fd, uint8_t op, uint32_t id, const char *payload, size_t len, int flags);
/*
 * Reads one frame; *payload is malloc'ed and NUL-terminated (free it), *len
 * its length.  timeout_ms < 0 waits forever.  0, or -1: EOF (errno 0),
 * error, oversized frame (EMSGSIZE) or timeout (ETIMEDOUT).
 */
int fp_al_recv(int fd, uint8_t *op, uint32_t *id, char **payload, size_t *len, int timeout_ms);

#endif
