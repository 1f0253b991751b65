/*
 * libFuzzer: fpd reading the helper's link frames.  A target process is not
 * trusted (it may be the attacker), so whatever it writes to the session
 * socket must only ever produce an error.  The input is the byte stream the
 * helper would send, written into a socket pair before fpd's reader runs.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fp/agentlink.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	/* Stays below the socket buffer, so the whole stream is written at once. */
	if (size > 60000 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		return 0;
	if (size && write(sv[1], data, size) != (ssize_t)size)
		__builtin_trap();
	close(sv[1]);
	for (;;) {
		uint8_t op;
		uint32_t id;
		char *payload;
		size_t len;
		if (fp_al_recv(sv[0], &op, &id, &payload, &len, 0))
			break;
		if (payload[len] != '\0')
			__builtin_trap();
		json_decref(json_loads(payload, 0, NULL));
		free(payload);
	}
	close(sv[0]);
	return 0;
}
