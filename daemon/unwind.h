/*
 * Native stacks for `stack --native`: stop the threads for a moment
 * (PTRACE_SEIZE + PTRACE_INTERRUPT), unwind each with elfutils (CFI from
 * .eh_frame/.debug_frame, no frame pointers needed), resume them on every
 * path, then merge the Python frames in place of the interpreter's
 * eval-loop frames.
 */
#ifndef FP_UNWIND_H
#define FP_UNWIND_H

#include <elfutils/libdwfl.h>
#include <stddef.h>
#include <sys/types.h>

#include "stack.h"

/* Native frames per thread at most. */
#define FP_UNWIND_MAX_FRAMES 512

/*
 * Unwinds every thread of s (by fp_thread.tid, a host tid) in process pid,
 * innermost first, and replaces each thread's frames by the merged list.
 * The threads are stopped together for the unwind only (a thread that does
 * not stop within 1 s is given up) and run again before this returns, on
 * every path.  while_stopped (may be NULL) runs once all threads are stopped,
 * so the caller can read the Python stacks again at the very instant the
 * native stacks are taken: a busy thread moves between two reads, and the
 * merge is only right when both come from the same instant.  It runs on a
 * thread with every signal blocked and may rewrite s.  A thread that cannot
 * be unwound keeps its Python frames and gets an error note.  Returns 0, or
 * -1 with err set when no thread could be stopped at all.
 */
int fp_unwind_stack(pid_t pid, struct fp_stack *s, void (*while_stopped)(void *arg), void *arg,
		    char *err, size_t errlen);

/*
 * A thread has one tracer at a time, so two ptrace users on one target would
 * see each other as "already traced": `stack --native` and the injector take
 * this lock around their ptrace work.  Both take milliseconds, so one at a
 * time for the whole daemon is simplest.  exit() waits for it: a tracer
 * ended mid-way would leave a hijacked thread to the kernel's detach.
 */
void fp_ptrace_lock(void);
void fp_ptrace_unlock(void);

/*
 * The merge itself, pure: native frames (innermost first) and Python frames
 * (innermost first) -> one list, innermost first, each eval frame replaced by
 * the Python frames it was running (up to and including the next `entry`
 * frame).  An eval frame with no Python frame left stays as it is; Python
 * frames left over are appended at the outer end.  On success it owns both
 * arrays' contents (the eval frames it drops are freed; the caller frees only
 * the two arrays themselves) and *out is newly allocated.  Returns -1 when
 * out of memory, having taken nothing.
 */
int fp_unwind_merge(struct fp_frame *native, size_t nnative, struct fp_frame *py, size_t npy,
		    struct fp_frame **out, size_t *nout);

/*
 * libdwfl's find_elf for a target whose root directory is open as root (an
 * O_PATH fd of /proc/PID/root): files are opened inside the target's mount
 * namespace, never fpd's; the sampler's unwinder uses it too.
 */
int fp_unwind_find_elf(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr base,
		       char **file_name, Elf **elfp, int root, pid_t pid);

#endif
