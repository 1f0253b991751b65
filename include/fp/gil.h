/*
 * What bpf/gil.bpf.c and daemon/gil.c share: the per-thread GIL counters
 * kept in a BPF hash map and the warning records sent through a ring buffer.
 * Plain fixed-width types only: this header is compiled for BPF too.
 */
#ifndef FP_GIL_H
#define FP_GIL_H

/* Per thread (key: host tid).  Counters only grow; user space takes deltas. */
struct fp_gil_stat {
	unsigned long long takes;      /* take_gil returned */
	unsigned long long wait_ns;    /* summed take_gil entry -> return */
	unsigned long long drops;      /* drop_gil entered */
	unsigned long long holds;      /* drops that closed a hold seen from its take */
	unsigned long long hold_ns;    /* summed take_gil return -> drop_gil entry */
	unsigned long long unseen;     /* releases the drop probes missed (see gil.bpf.c) */
	unsigned long long take_start; /* scratch: take_gil entered at, 0 when not in it */
	unsigned long long hold_start; /* scratch: GIL taken at, 0 when not holding */
};

enum fp_gil_kind {
	FP_GIL_WAIT = 1,
	FP_GIL_HOLD = 2,
};

/* One wait or hold above its threshold. */
struct fp_gil_warning {
	unsigned int tid;
	unsigned int kind;	     /* enum fp_gil_kind */
	unsigned long long start_ns; /* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	unsigned long long end_ns;
};

#endif
