/*
 * Line numbers from the three encodings CPython has used since 3.6.  Each
 * decoder follows the interpreter's own reader of its version
 * (PyCode_Addr2Line), checked against it by tests/unit/test_linetable.c on
 * tables produced by every interpreter on the machine; on top of that, every
 * read is bounded by the table and every sum is checked, because the table
 * comes from another process's memory.
 */
#include "code.h"

#include <limits.h>
#include <stdbool.h>

/* Reached for a line that no real table produces. */
static int checked_line(long long line)
{
	return line < 0 || line > INT_MAX ? -1 : (int)line;
}

/*
 * 3.6-3.9 co_lnotab: (address increment, line increment) byte pairs, the
 * line increment signed since 3.6.  An instruction belongs to the line in
 * force after the last pair whose address is at or before it.
 */
static int lnotab_line(const uint8_t *t, size_t len, long long line, long long addr)
{
	long long at = 0;
	if (len % 2)
		return -1;
	for (size_t i = 0; i < len; i += 2) {
		at += t[i];
		if (at > addr)
			break;
		line += (int8_t)t[i + 1];
	}
	return checked_line(line);
}

/*
 * 3.10 co_linetable (PEP 626): (byte length, line delta) pairs, each a range
 * of bytecode; a delta of -128 means the range has no line, and zero-length
 * ranges only carry line deltas larger than a byte.
 */
static int linetable310_line(const uint8_t *t, size_t len, long long line, long long addr)
{
	long long end = 0;
	if (len % 2)
		return -1;
	for (size_t i = 0; i < len; i += 2) {
		long long start = end;
		int8_t delta = (int8_t)t[i + 1];
		end += t[i];
		bool none = delta == -128;
		if (!none)
			line += delta;
		if (addr >= start && addr < end)
			return none ? -1 : checked_line(line);
	}
	return -1;
}

/* Unsigned varint of the 3.11 location table: 6-bit chunks, low first, 0x40 = more. */
static bool read_varint(const uint8_t **p, const uint8_t *end, unsigned long long *v)
{
	unsigned long long val = 0;
	for (unsigned shift = 0; *p < end && shift < 36; shift += 6) {
		uint8_t b = *(*p)++;
		val |= (unsigned long long)(b & 63) << shift;
		if (!(b & 64)) {
			*v = val;
			return true;
		}
	}
	return false;
}

static bool read_svarint(const uint8_t **p, const uint8_t *end, long long *v)
{
	unsigned long long u;
	if (!read_varint(p, end, &u))
		return false;
	*v = (u & 1) ? -(long long)(u >> 1) : (long long)(u >> 1);
	return true;
}

enum {
	LOC_ONE_LINE0 = 10, /* 10-12: same line + 0..2, start and end column bytes */
	LOC_NO_COLUMNS = 13,
	LOC_LONG = 14,
	LOC_NONE = 15,
};

/*
 * 3.11+ location table (Objects/locations.md): entries starting with a byte
 * 1cccclll, covering lll+1 code units, whose code cccc says how the line
 * changes; the bytes after the first never have the top bit set.
 */
static int linetable311_line(const uint8_t *t, size_t len, long long line, long long addr)
{
	const uint8_t *p = t, *end = t + len;
	long long stop = 0;
	while (p < end) {
		uint8_t first = *p;
		if (!(first & 0x80))
			return -1;
		int code = (first >> 3) & 15;
		long long delta = 0;
		const uint8_t *q = p + 1;
		if (code == LOC_NO_COLUMNS || code == LOC_LONG) {
			if (!read_svarint(&q, end, &delta))
				return -1;
		} else if (code >= LOC_ONE_LINE0 && code < LOC_NO_COLUMNS) {
			delta = code - LOC_ONE_LINE0;
		}
		line += delta;
		if (line < INT_MIN || line > INT_MAX)
			return -1;
		long long start = stop;
		stop += ((first & 7) + 1) * 2;
		if (addr >= start && addr < stop)
			return code == LOC_NONE ? -1 : checked_line(line);
		for (p++; p < end && !(*p & 0x80); p++)
			;
	}
	return -1;
}

int fp_code_line(enum fp_linetable_kind kind, const uint8_t *table, size_t len, int firstlineno,
		 int addr)
{
	if (!table && len)
		return -1;
	/* As PyCode_Addr2Line: before the first instruction (a frame not yet started). */
	if (addr < 0)
		return firstlineno;
	switch (kind) {
	case FP_LINES_LNOTAB:
		return lnotab_line(table, len, firstlineno, addr);
	case FP_LINES_310:
		return linetable310_line(table, len, firstlineno, addr);
	case FP_LINES_311:
		return linetable311_line(table, len, firstlineno, addr);
	}
	return -1;
}
