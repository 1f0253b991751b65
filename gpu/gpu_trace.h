/*
 * One GPU activity record (kernel, copy, memset, synchronization) as
 * Chrome/Perfetto trace events.  Pure, so that the unit tests can check the
 * JSON without CUPTI or a GPU; libfpcupti.so fills the records from CUPTI's
 * activity buffers.
 */
#ifndef FP_GPU_TRACE_H
#define FP_GPU_TRACE_H

#include <stddef.h>
#include <stdint.h>

enum fpgpu_kind {
	FPGPU_KERNEL,
	FPGPU_MEMCPY,
	FPGPU_MEMSET,
	FPGPU_SYNC,
};

/*
 * GPU tracks live in their own trace "processes", numbered above any Linux
 * pid (pid_max is at most 2^22) so that they never merge with the target's.
 */
#define FPGPU_TRACE_PID_BASE 100000000u
/* Synchronization records carry no stream of their own worth a track. */
#define FPGPU_SYNC_TID 0xffffffu

struct fpgpu_act {
	enum fpgpu_kind kind;
	const char *name;    /* kernel name; NULL for the other kinds */
	uint64_t start, end; /* ns, CUPTI's clock */
	uint32_t device, context, stream, corr;
	uint64_t bytes;	 /* memcpy, memset */
	uint32_t detail; /* memcpy: CUpti_ActivityMemcpyKind; sync: its type */
	int32_t grid[3], block[3];
};

/*
 * Writes a's events into buf, NUL-terminated, as a comma-separated list of
 * JSON objects (no brackets): the "X" slice, then the "f" flow end that binds
 * it to the launch with the same correlation id.  Times are in microseconds
 * from t0.  Returns the length, or -1 when buf is too small.
 */
int fpgpu_event_json(const struct fpgpu_act *a, uint64_t t0, char *buf, size_t len);

#endif
