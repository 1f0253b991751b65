/*
 * The Python (and, with --native, native) stacks of every thread of a target,
 * read from outside without stopping it.
 */
#ifndef FP_STACK_H
#define FP_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fp/proto.h"
#include "py/python.h"

enum fp_frame_kind {
	FP_FRAME_PY = 1,
	FP_FRAME_NATIVE,
};

struct fp_local {
	char *name;
	char *repr;
};

struct fp_frame {
	enum fp_frame_kind kind;
	char *file;    /* Python: co_filename; native: source file from DWARF, or NULL */
	char *func;    /* Python: co_qualname (3.11+) or co_name; native: symbol, or NULL */
	int line;      /* current line; 0 when unknown */
	char *library; /* native: basename of the mapped file */
	uint64_t pc;   /* native: program counter */
	uint64_t addr; /* Python: frame address in the target */
	/*
	 * Python: this frame was entered from C, i.e. it is the outermost Python
	 * frame run by one native _PyEval_EvalFrameDefault call.  Always true on
	 * <= 3.10 (one eval call per frame).  The --native merge uses it.
	 */
	bool entry;
	bool eval; /* native: a frame of the interpreter's eval loop */
	struct fp_local *locals;
	size_t nlocals;
};

struct fp_thread {
	pid_t tid;	/* host tid, 0 when unknown */
	pid_t nstid;	/* tid inside the target's pid namespace */
	uint64_t ident; /* threading.get_ident() */
	uint64_t tstate;
	char name[64]; /* Python thread name, or the kernel comm */
	bool named;    /* name is threading's (not the comm) */
	const char
	    *state; /* "running", "holding GIL", "waiting for GIL", "idle", "sleeping", "unknown" */
	struct fp_frame *frames; /* innermost first */
	size_t nframes;
	size_t truncated; /* frames beyond FP_STACK_MAX_FRAMES, not shown */
	char *error;	  /* this thread's stack could not be (fully) read: why */
};

struct fp_stack {
	struct fp_thread *threads;
	size_t nthreads;
	/*
	 * Threads could not all be read consistently, even after retries: what
	 * may be missing and why.  NULL when the dump is whole.
	 */
	char *note;
};

enum {
	FP_STACK_LOCALS = 1 << 0,
	FP_STACK_NATIVE = 1 << 1,
};

int fp_stack_read(const struct fp_python *py, const struct fp_mem *mem, unsigned flags,
		  struct fp_stack *out, char *err, size_t errlen);
void fp_stack_free(struct fp_stack *s);
void fp_frame_free(struct fp_frame *f);

#endif
