/*
 * Frame codec of the fpd wire protocol (see include/fp/proto.h).
 */
#include "fp/proto.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		/* MSG_NOSIGNAL: a vanished peer must not kill the daemon with SIGPIPE. */
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return FP_FRAME_IO;
		}
		p += n;
		len -= (size_t)n;
	}
	return FP_FRAME_OK;
}

int fp_frame_send(int fd, const json_t *obj)
{
	char *payload = json_dumps(obj, JSON_COMPACT);
	if (!payload)
		return FP_FRAME_MALFORMED;
	size_t len = strlen(payload);
	if (len > FP_MAX_FRAME) {
		free(payload);
		return FP_FRAME_TOOBIG;
	}
	/* Header and payload in one buffer so a frame is one send() on the wire. */
	uint8_t *buf = malloc(4 + len);
	if (!buf) {
		free(payload);
		return FP_FRAME_IO;
	}
	buf[0] = (uint8_t)(len >> 24);
	buf[1] = (uint8_t)(len >> 16);
	buf[2] = (uint8_t)(len >> 8);
	buf[3] = (uint8_t)len;
	memcpy(buf + 4, payload, len);
	int rc = send_all(fd, buf, 4 + len);
	free(buf);
	free(payload);
	return rc;
}

/*
 * A frame being received: the deadline now in force (-1: none), and how long
 * the frame may take once its first byte is in (-1: no such bound).
 */
struct rx {
	int fd;
	int64_t deadline;
	int frame_ms;
	bool started;
};

/* Reads exactly len bytes before the deadline. */
static int rx_read(struct rx *x, void *buf, size_t len)
{
	char *p = buf;
	size_t got = 0;
	while (got < len) {
		if (x->deadline >= 0) {
			int64_t left = x->deadline - now_ms();
			if (left <= 0)
				return FP_FRAME_TIMEOUT;
			struct pollfd pfd = {.fd = x->fd, .events = POLLIN};
			int pr = poll(&pfd, 1, (int)left);
			if (pr < 0 && errno == EINTR)
				continue;
			if (pr < 0)
				return FP_FRAME_IO;
			if (pr == 0)
				return FP_FRAME_TIMEOUT;
		}
		ssize_t n = read(x->fd, p + got, len - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return FP_FRAME_IO;
		}
		if (n == 0)
			return x->started ? FP_FRAME_IO : FP_FRAME_EOF;
		if (!x->started) {
			x->started = true;
			/* From here on the peer owes us the rest: a trickle is no excuse. */
			if (x->frame_ms >= 0) {
				int64_t d = now_ms() + x->frame_ms;
				if (x->deadline < 0 || d < x->deadline)
					x->deadline = d;
			}
		}
		got += (size_t)n;
	}
	return FP_FRAME_OK;
}

int fp_frame_check(const json_t *obj)
{
	if (!json_is_object(obj) || !json_is_string(json_object_get(obj, "type")))
		return FP_FRAME_MALFORMED;
	return FP_FRAME_OK;
}

static int decode_payload(const char *payload, size_t len, json_t **out)
{
	json_error_t jerr;
	/* JSON_REJECT_DUPLICATES: an ambiguous object is as malformed as a broken one. */
	json_t *obj = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!obj)
		return FP_FRAME_MALFORMED;
	if (fp_frame_check(obj) != FP_FRAME_OK) {
		json_decref(obj);
		return FP_FRAME_MALFORMED;
	}
	*out = obj;
	return FP_FRAME_OK;
}

static uint32_t be32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

int fp_frame_recv_bounded(int fd, json_t **out, int wait_ms, int frame_ms, uint32_t max_len)
{
	struct rx x = {.fd = fd,
		       .deadline = wait_ms < 0 ? -1 : now_ms() + wait_ms,
		       .frame_ms = frame_ms,
		       .started = false};
	uint8_t hdr[4];
	*out = NULL;
	int rc = rx_read(&x, hdr, 4);
	if (rc != FP_FRAME_OK)
		return rc;
	uint32_t len = be32(hdr);
	if (len > max_len || len > FP_MAX_FRAME)
		return FP_FRAME_TOOBIG;
	if (len == 0)
		return FP_FRAME_MALFORMED;
	char *payload = malloc(len);
	if (!payload)
		return FP_FRAME_IO;
	rc = rx_read(&x, payload, len);
	if (rc == FP_FRAME_OK)
		rc = decode_payload(payload, len, out);
	free(payload);
	return rc;
}

int fp_frame_recv(int fd, json_t **out, int timeout_ms)
{
	return fp_frame_recv_bounded(fd, out, timeout_ms, -1, FP_MAX_FRAME);
}

int fp_frame_parse(const uint8_t *buf, size_t len, json_t **out, size_t *used)
{
	*out = NULL;
	*used = 0;
	if (len < 4)
		return FP_FRAME_EOF;
	uint32_t n = be32(buf);
	if (n > FP_MAX_FRAME)
		return FP_FRAME_TOOBIG;
	if (n == 0)
		return FP_FRAME_MALFORMED;
	if (len - 4 < n)
		return FP_FRAME_EOF;
	int rc = decode_payload((const char *)buf + 4, n, out);
	if (rc == FP_FRAME_OK)
		*used = 4 + (size_t)n;
	return rc;
}

const char *fp_frame_strerror(int status)
{
	switch (status) {
	case FP_FRAME_OK:
		return "ok";
	case FP_FRAME_EOF:
		return "connection closed";
	case FP_FRAME_IO:
		return "connection broken";
	case FP_FRAME_TOOBIG:
		return "frame larger than the protocol allows";
	case FP_FRAME_MALFORMED:
		return "malformed frame";
	case FP_FRAME_TIMEOUT:
		return "timed out";
	}
	return "unknown error";
}

json_t *fp_msg_error(json_int_t id, const char *code, int exit_status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return json_pack("{s:s, s:I, s:s, s:i, s:s}", "type", "error", "id", id, "code", code,
			 "exit", exit_status, "message", msg);
}

json_t *fp_msg_end(json_int_t id)
{
	return json_pack("{s:s, s:I}", "type", "end", "id", id);
}

json_t *fp_msg_event(json_int_t id, const char *event)
{
	return json_pack("{s:s, s:I, s:s}", "type", "event", "id", id, "event", event);
}
