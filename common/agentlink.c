/*
 * Frame codec of the fpd <-> helper link (include/fp/agentlink.h).  Also
 * compiled into libfpagent.so, so it uses nothing but libc.
 */
#include "fp/agentlink.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int send_all(int fd, const void *buf, size_t len, int flags)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = send(fd, p, len, flags | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fp_al_send(int fd, uint8_t op, uint32_t id, const char *payload, size_t len, int flags)
{
	if (len > FP_AL_MAX_FRAME - FP_AL_HDR) {
		errno = EMSGSIZE;
		return -1;
	}
	uint32_t total = (uint32_t)(FP_AL_HDR + len);
	/* One buffer for small frames: header and payload leave in one segment. */
	uint8_t hdr[4 + FP_AL_HDR + 256];
	hdr[0] = total >> 24, hdr[1] = total >> 16, hdr[2] = total >> 8, hdr[3] = total;
	hdr[4] = op;
	hdr[5] = id >> 24, hdr[6] = id >> 16, hdr[7] = id >> 8, hdr[8] = id;
	if (len <= 256) {
		if (len)
			memcpy(hdr + 9, payload, len);
		return send_all(fd, hdr, 9 + len, flags);
	}
	/* A large frame is written whole even with MSG_DONTWAIT: a half frame would desync. */
	if (send_all(fd, hdr, 9, flags))
		return -1;
	return send_all(fd, payload, len, flags & ~MSG_DONTWAIT);
}

static int recv_all(int fd, void *buf, size_t len, int64_t deadline)
{
	char *p = buf;
	while (len > 0) {
		if (deadline >= 0) {
			int64_t left = deadline - mono_ms();
			struct pollfd pfd = {.fd = fd, .events = POLLIN};
			int r = poll(&pfd, 1, left > 0 ? (int)left : 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				errno = r == 0 ? ETIMEDOUT : errno;
				return -1;
			}
		}
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = 0;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fp_al_recv(int fd, uint8_t *op, uint32_t *id, char **payload, size_t *len, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms;
	uint8_t hdr[4 + FP_AL_HDR];
	if (recv_all(fd, hdr, sizeof(hdr), deadline))
		return -1;
	uint32_t total =
	    (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	if (total < FP_AL_HDR || total > FP_AL_MAX_FRAME) {
		errno = EMSGSIZE;
		return -1;
	}
	size_t n = total - FP_AL_HDR;
	char *buf = malloc(n + 1);
	if (!buf)
		return -1;
	if (n && recv_all(fd, buf, n, deadline)) {
		int e = errno;
		free(buf);
		errno = e;
		return -1;
	}
	buf[n] = '\0';
	*op = hdr[4];
	*id = (uint32_t)hdr[5] << 24 | (uint32_t)hdr[6] << 16 | (uint32_t)hdr[7] << 8 | hdr[8];
	*payload = buf;
	*len = n;
	return 0;
}
