/*
 * The forged address space of the fuzzers that walk target memory
 * (fuzz_object, fuzz_stack): the rest of the input is a list of regions,
 * each [addr u32][len u16][bytes].  Addresses are multiples of 16 above
 * 0x10000, so that pointers the fuzzer writes into one region can hit
 * another.
 */
#ifndef FP_TESTS_FUZZ_REGIONS_H
#define FP_TESTS_FUZZ_REGIONS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "daemon/mem.h"

/* Fills out[] with at most max regions read from data; their count. */
static inline size_t fuzz_regions(const uint8_t *data, size_t size, struct fp_mem_region *out,
				  size_t max)
{
	size_t n = 0;
	while (size >= 6 && n < max) {
		uint32_t addr;
		uint16_t len;
		memcpy(&addr, data, 4);
		memcpy(&len, data + 4, 2);
		data += 6;
		size -= 6;
		if (len > size)
			len = (uint16_t)size;
		out[n].addr = 0x10000 + ((uint64_t)addr & 0xffff0);
		out[n].data = data;
		out[n].len = len;
		n++;
		data += len;
		size -= len;
	}
	return n;
}

#endif
