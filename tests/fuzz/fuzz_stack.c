/*
 * libFuzzer: the stack walker over a forged address space.  The input picks a
 * CPython version and then describes memory regions; _PyRuntime sits at a
 * fixed address so the fuzzer can grow interpreter, thread, frame and code
 * structures from there.  Whatever the bytes, the walker must stay in bounds
 * and terminate.
 *
 * Input: [version byte][flags byte] then regions: [addr u32][len u16][bytes].
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "daemon/stack.h"
#include "tests/fuzz/regions.h"

#define MAX_REGIONS 32

static const int versions[][2] = {{3, 6}, {3, 7}, {3, 8}, {3, 9}, {3, 10}, {3, 11}, {3, 12}};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	const int *v = versions[data[0] % (sizeof(versions) / sizeof(versions[0]))];
	unsigned flags = data[1] & (FP_STACK_LOCALS);
	data += 2;
	size -= 2;

	struct fp_mem_region regions[MAX_REGIONS];
	size_t n = fuzz_regions(data, size, regions, MAX_REGIONS);

	struct fp_python py;
	memset(&py, 0, sizeof(py));
	const struct fp_layout *l = fp_layout_for(v[0], v[1]);
	if (!l)
		return 0;
	py.layout = *l;
	py.major = v[0];
	py.minor = v[1];
	py.pid = 0; /* no /proc entry: thread states come from memory alone */
	py.runtime = 0x10000;
	py.gil = l->runtime_gil != FP_NO_FIELD ? py.runtime + (uint64_t)l->runtime_gil : 0;

	struct fp_mem_buf buf = {.regions = regions, .n = n};
	struct fp_mem mem;
	fp_mem_buf_init(&mem, &buf);
	struct fp_stack s;
	char err[256];
	if (fp_stack_read(&py, &mem, flags, &s, err, sizeof(err)) == 0)
		fp_stack_free(&s);
	return 0;
}
