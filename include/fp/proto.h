/*
 * Wire protocol between fpctl and fpd (and, later, between fpd and the agent).
 *
 * A connection carries frames: a 4-byte big-endian length N, then N bytes of
 * UTF-8 JSON holding exactly one object.  N is at most FP_MAX_FRAME; a frame
 * that is larger, not JSON, not an object, or lacks "type" is malformed and
 * the receiver closes that connection (and nothing else).
 *
 * Every frame has "type" and, except "hello", "id" (the request it belongs to):
 *
 *   {"type":"hello","v":1,"client":"fpctl"}            first frame of a client
 *   {"type":"hello","v":1,"server":"fpd","pid":N}      fpd's answer
 *   {"type":"request","id":1,"cmd":"stack","pid":123,"args":{...}}
 *   {"type":"event","id":1,"event":"thread",...}       zero or more per request
 *   {"type":"end","id":1}                               success, stream over
 *   {"type":"error","id":1,"code":"no_such_process","exit":3,"message":"..."}
 *   {"type":"cancel","id":1}                            client -> fpd: stop request 1
 *   {"type":"input","id":1,...}                         client -> fpd: data for request 1
 *                                                       (console lines), forwarded to the helper
 *
 * A request's stream always ends with exactly one "end" or "error" frame.
 * "exit" in an error is the exit status fpctl uses (SPEC §1): 1 command
 * error, 2 usage error, 3 target cannot be attached.  "message" is one line
 * saying what is wrong and what to do.
 *
 * The event schemas of each command are documented next to the daemon code
 * that emits them (daemon/stack.c, daemon/ps.c, ...); the renderers in cli/
 * are their only other users.
 */
#ifndef FP_PROTO_H
#define FP_PROTO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define FP_PROTO_VERSION 1
/* Large enough for a stack dump of thousands of threads with locals. */
#define FP_MAX_FRAME (16u << 20)
/*
 * What fpd takes from a client (requests, cancels, console lines): far less,
 * so that the frames a user's connections have in flight cost fpd little.
 */
#define FP_MAX_CLIENT_FRAME (1u << 20)
#define FP_DEFAULT_SOCKET   "/run/fpd/fpd.sock"

/* Python frames `stack` reads per thread; deeper stacks are cut and the cut reported. */
#define FP_STACK_MAX_FRAMES 4096

/* Exit statuses of fpctl, carried in error frames. */
enum fp_exit {
	FP_EXIT_OK = 0,
	FP_EXIT_CMD = 1,
	FP_EXIT_USAGE = 2,
	FP_EXIT_ATTACH = 3,
};

enum fp_frame_status {
	FP_FRAME_OK = 0,
	FP_FRAME_EOF = -1,	 /* peer closed cleanly between frames */
	FP_FRAME_IO = -2,	 /* read/write failed or connection cut mid-frame */
	FP_FRAME_TOOBIG = -3,	 /* length above FP_MAX_FRAME */
	FP_FRAME_MALFORMED = -4, /* not a JSON object with a string "type" */
	FP_FRAME_TIMEOUT = -5,	 /* no complete frame before the deadline */
};

/* Sends one frame.  Does not take ownership of obj.  Never raises SIGPIPE. */
int fp_frame_send(int fd, const json_t *obj);

/*
 * Receives one frame into *out (a new reference).  timeout_ms < 0 waits
 * forever; otherwise it bounds the wait for the whole frame.
 */
int fp_frame_recv(int fd, json_t **out, int timeout_ms);

/*
 * The same from a peer that is not trusted to finish what it starts.
 * wait_ms bounds the whole call (< 0: none), as timeout_ms above; frame_ms
 * bounds the time from the frame's first byte to its last (< 0: none), so
 * that a peer that sends half a frame, or one byte a second, gets
 * FP_FRAME_TIMEOUT however long it waited before starting.  A length above
 * max_len is FP_FRAME_TOOBIG, refused before anything of it is read.
 */
int fp_frame_recv_bounded(int fd, json_t **out, int wait_ms, int frame_ms, uint32_t max_len);

/*
 * Parses one frame from a buffer: the 4-byte header and the payload.  On
 * success *used is the number of bytes consumed.  FP_FRAME_EOF means the
 * buffer holds no complete frame yet.  Pure function: the fuzzer's entry.
 */
int fp_frame_parse(const uint8_t *buf, size_t len, json_t **out, size_t *used);

/* Validates a decoded payload (object with a string "type"). */
int fp_frame_check(const json_t *obj);

const char *fp_frame_strerror(int status);

/* Helpers that build the common frames; each returns a new reference. */
json_t *fp_msg_error(json_int_t id, const char *code, int exit_status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
json_t *fp_msg_end(json_int_t id);
json_t *fp_msg_event(json_int_t id, const char *event);

#endif
