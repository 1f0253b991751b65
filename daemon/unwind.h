/*
 * Native stacks for `stack --native`: stop the threads for a moment
 * (PTRACE_SEIZE + PTRACE_INTERRUPT), unwind each with elfutils (CFI from
 * .eh_frame/.debug_frame, no frame pointers needed), resume them on every
 * path, then merge the Python frames in place of the interpreter's
 * eval-loop frames.
 */
#ifndef FP_UNWIND_H
#define FP_UNWIND_H

#include <stddef.h>
#include <sys/types.h>

#include "stack.h"

/* Native frames per thread at most. */
#define FP_UNWIND_MAX_FRAMES 512

/*
 * Unwinds every thread of s (by fp_thread.tid) in process pid, innermost
 * first, and replaces each thread's frames by the merged list.  A thread that
 * cannot be unwound keeps its Python frames and gets an error note.
 * Returns 0, or -1 with err set when the process could not be stopped at all.
 */
int fp_unwind_stack(pid_t pid, struct fp_stack *s, char *err, size_t errlen);

/*
 * The merge itself, pure: native frames (innermost first) and Python frames
 * (innermost first) -> one list, each eval frame replaced by the Python
 * frames it was running (up to and including the next `entry` frame).
 * Python frames left over are appended at the outer end.  Takes ownership of
 * both arrays' contents; *out is newly allocated.
 */
int fp_unwind_merge(struct fp_frame *native, size_t nnative, struct fp_frame *py, size_t npy,
		    struct fp_frame **out, size_t *nout);

#endif
