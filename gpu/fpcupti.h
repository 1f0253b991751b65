/*
 * libfpcupti.so: CUPTI tracing for `fpctl attach PID gpu`.  A library of its
 * own, linked against libcupti, so that libfpagent.so stays libc-only: the
 * helper's Python (agent/py/gpu.py) loads it with ctypes only once it has
 * seen, in /proc/self/maps, that the target already runs CUDA with a context.
 *
 * Also a CUDA injection library: CUDA_INJECTION64_PATH=.../libfpcupti.so
 * makes the driver call InitializeInjection() when the process creates its
 * first context, which starts tracing from the very first launch and writes
 * the trace at exit to $FPCUPTI_TRACE when it is set (else it only stays
 * loaded, and `gpu` later finds CUPTI loaded since the start).
 *
 * The calls that touch Python objects (fpcupti_start's callbacks capture the
 * launching thread's Python stack; fpcupti_frame, fpcupti_reset) need the
 * GIL: gpu.py calls them through ctypes.PyDLL.
 */
#ifndef FP_GPU_FPCUPTI_H
#define FP_GPU_FPCUPTI_H

#include <stddef.h>
#include <stdint.h>

/* Python frames kept per launch, innermost first. */
#define FPCUPTI_MAX_FRAMES 64

/* Subscribes to CUPTI and enables the activity kinds; 0, or -1 with msg filled. */
int fpcupti_start(char *msg, int len);
/* Flushes the activity buffers, disables everything and unsubscribes. */
void fpcupti_stop(void);
/* The CUPTI timestamp fpcupti_start took: the trace's time zero. */
uint64_t fpcupti_t0(void);
/* Records that did not fit in the caps (launches, activities). */
uint64_t fpcupti_dropped(void);

/* GPU activity since start, as "[event, ...]" (gpu_trace.h); free with fpcupti_free. */
char *fpcupti_gpu_json(void);
void fpcupti_free(void *p);

/* Launch records: API callbacks with the launching thread's Python stack. */
size_t fpcupti_launch_count(void);
/* Launch i: thread id, enter/exit timestamps, correlation id, API name, frame count. */
int fpcupti_launch(size_t i, uint64_t *tid, uint64_t *start, uint64_t *end, uint32_t *corr,
		   const char **api, int *nframes);
/* Frame j of launch i (0 innermost): a borrowed code object pointer, line number. */
int fpcupti_frame(size_t i, int j, void **code, int *line);
/* Drops every record and the code object references they hold (GIL held). */
void fpcupti_reset(void);

/* CUDA's injection entry point (CUDA_INJECTION64_PATH). */
int InitializeInjection(void);

#endif
