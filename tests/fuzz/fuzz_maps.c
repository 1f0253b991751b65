/* libFuzzer: the /proc/PID/maps parser. */
#include <stddef.h>
#include <stdint.h>

#include "daemon/proc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fp_maps m;
	if (fp_maps_parse((const char *)data, size, &m) != 0)
		return 0;
	for (size_t i = 0; i < m.n; i++)
		if (m.v[i].end <= m.v[i].start)
			__builtin_trap();
	fp_maps_free(&m);
	return 0;
}
