// SPDX-License-Identifier: GPL-2.0
/*
 * gilstat: per-thread GIL wait and hold times of one CPython process.
 *
 * take_gil entry and return bound a wait; take_gil return and the next drop
 * bound a hold.  The probes are bound to the target, but a child it forks
 * inherits the breakpoints for a while, so each program first checks the
 * thread group.  Counters are
 * summed in a hash map that user space reads each interval; only the rare
 * waits or holds above a threshold go through the ring buffer.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "fp/gil.h"

const volatile __u32 target_tgid = 0;
const volatile __u64 wait_warn_ns = 0; /* 0: no wait warnings */
const volatile __u64 hold_warn_ns = 0; /* 0: no hold warnings */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct fp_gil_stat);
} gil_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} gil_warnings SEC(".maps");

/* Warnings the ring buffer had no room for: reported, never silently lost. */
__u64 warnings_lost = 0;

static const struct fp_gil_stat zero;

static __always_inline struct fp_gil_stat *thread_stat(void)
{
	__u64 id = bpf_get_current_pid_tgid();
	if ((__u32)(id >> 32) != target_tgid)
		return 0;
	__u32 tid = (__u32)id;
	struct fp_gil_stat *s = bpf_map_lookup_elem(&gil_stats, &tid);
	if (s)
		return s;
	bpf_map_update_elem(&gil_stats, &tid, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&gil_stats, &tid);
}

static __always_inline void warn(__u32 kind, __u64 start, __u64 end)
{
	struct fp_gil_warning *w = bpf_ringbuf_reserve(&gil_warnings, sizeof(*w), 0);
	if (!w) {
		__sync_fetch_and_add(&warnings_lost, 1);
		return;
	}
	w->tid = (__u32)bpf_get_current_pid_tgid();
	w->kind = kind;
	w->start_ns = start;
	w->end_ns = end;
	bpf_ringbuf_submit(w, 0);
}

SEC("uprobe")
int BPF_KPROBE(gil_take_enter)
{
	struct fp_gil_stat *s = thread_stat();
	if (!s)
		return 0;
	/*
	 * Nobody enters take_gil holding the GIL: a hold still open here ended
	 * in a release no drop probe sits on (a drop_gil copy the stripped-binary
	 * heuristic did not find).  Its end is unknown, so it is counted apart,
	 * not as a hold.
	 */
	if (s->hold_start) {
		s->unseen++;
		s->hold_start = 0;
	}
	s->take_start = bpf_ktime_get_ns();
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(gil_take_return)
{
	struct fp_gil_stat *s = thread_stat();
	/* A take_gil entered before the probes were attached has no start: skip it. */
	if (!s || !s->take_start)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	__u64 d = now - s->take_start;
	s->takes++;
	s->wait_ns += d;
	if (wait_warn_ns && d > wait_warn_ns)
		warn(FP_GIL_WAIT, s->take_start, now);
	s->take_start = 0;
	s->hold_start = now;
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(gil_drop_enter)
{
	struct fp_gil_stat *s = thread_stat();
	if (!s)
		return 0;
	s->drops++;
	if (!s->hold_start)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	__u64 d = now - s->hold_start;
	s->holds++;
	s->hold_ns += d;
	if (hold_warn_ns && d > hold_warn_ns)
		warn(FP_GIL_HOLD, s->hold_start, now);
	s->hold_start = 0;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
