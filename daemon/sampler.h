/*
 * The BPF stack sampler behind `perf` and `top`: a perf_event program per
 * CPU walks the Python frames of the target's running thread in the kernel
 * (bpf/sampler.bpf.c); user space resolves code objects to names and current
 * lines, cached per code object, and hands out one resolved sample at a time.
 * The target is never stopped.
 */
#ifndef FP_SAMPLER_H
#define FP_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "py/python.h"
#include "stack.h"

struct fp_sampler_opts {
	int rate_hz;   /* samples per second per CPU (1..10000) */
	bool native;   /* merge native frames (user stack copied into each sample) */
	bool gil_only; /* keep only samples of the thread holding the GIL */
	bool idle;     /* also sample threads that are off-CPU */
};

/* One resolved sample, valid only during the callback. */
struct fp_sample_info {
	pid_t tid;		       /* host tid */
	const char *thread;	       /* Python thread name, else comm */
	const struct fp_frame *frames; /* innermost first, as in struct fp_thread */
	size_t nframes;
	bool truncated; /* the walk hit its depth limit */
};

typedef void (*fp_sample_fn)(void *arg, const struct fp_sample_info *s);

struct fp_sampler_stats {
	uint64_t samples; /* delivered */
	uint64_t lost;	  /* dropped by the kernel side (ring buffer full, ...) */
	uint64_t faulted; /* walks cut by a fault reading target memory */
	/*
	 * What takes the samples: "tick" (the scheduler tick, rates up to
	 * CONFIG_HZ), "tick+cpu-clock" (above: each tick, and perf events for
	 * the rest), "cpu-clock" (perf events alone: the tick could not be
	 * traced) or "timer" (--idle: a user-space timer).
	 */
	const char *trigger;
	/*
	 * The program's BPF run-time statistics (0 unless kernel.bpf_stats_enabled
	 * is set): runs, for every task on every CPU since it filters, and their time.
	 */
	uint64_t kernel_runs;
	uint64_t kernel_ns;
	uint32_t kernel_insns; /* instructions the verifier processed to load the program */
};

struct fp_sampler;

/* Loads and attaches the programs for py's process; err says which step failed. */
int fp_sampler_open(const struct fp_python *py, const struct fp_sampler_opts *o,
		    struct fp_sampler **out, char *err, size_t errlen);
/*
 * Waits up to timeout_ms for samples and calls fn for each one.  Returns the
 * number delivered, or -1 with errno (ESRCH once the target has exited).
 */
int fp_sampler_poll(struct fp_sampler *s, int timeout_ms, fp_sample_fn fn, void *arg);
void fp_sampler_stats(const struct fp_sampler *s, struct fp_sampler_stats *out);
/* Detaches everything; safe on a half-opened sampler. */
void fp_sampler_close(struct fp_sampler *s);

#endif
