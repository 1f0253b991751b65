/*
 * libFuzzer: line-table decoding for each format.  The first byte picks the
 * format, the next two the instruction offset; the rest is the table.
 */
#include <stddef.h>
#include <stdint.h>

#include "daemon/py/code.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	static const enum fp_linetable_kind kinds[] = {FP_LINES_LNOTAB, FP_LINES_310, FP_LINES_311};
	enum fp_linetable_kind kind = kinds[data[0] % 3];
	int addr = (int)(data[1] | data[2] << 8) - 2;
	fp_code_line(kind, data + 3, size - 3, 1 + data[1], addr);
	return 0;
}
