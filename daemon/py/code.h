/*
 * Code objects: names, and the line number of an instruction.
 */
#ifndef FP_PY_CODE_H
#define FP_PY_CODE_H

#include <stddef.h>
#include <stdint.h>

#include "fp/layout.h"

/*
 * Line of the instruction starting at byte offset addr of the code's
 * bytecode, decoded from co_lnotab (<= 3.9), co_linetable (3.10, PEP 626) or
 * the location table (3.11+).  Returns the line, or -1 when the instruction
 * has no line (or the table is malformed).  Pure and bounded: the fuzzer's entry.
 *
 * addr is always in bytes: callers convert 3.10's f_lasti (code units) and
 * 3.11+'s instruction pointers (pointer minus co_code_adaptive) first.
 */
int fp_code_line(enum fp_linetable_kind kind, const uint8_t *table, size_t len, int firstlineno,
		 int addr);

#endif
