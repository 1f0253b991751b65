// SPDX-License-Identifier: GPL-2.0
/*
 * The stack sampler: on each CPU, at the requested rate, a program walks
 * the Python frames of the thread running there when it belongs to the
 * target (filtered here by tgid: a per-task event would follow one thread
 * only), and sends code addresses and instruction positions to user space.
 * Names and lines are resolved there, once per code object.  The scheduler
 * tick drives it up to the tick's rate; cpu-clock perf events add the
 * samples above (sample_tick, sample).
 *
 * The verifier recipe of ../shared/research/bpf-notes.md: offsets come from
 * frozen .rodata (the verifier sees constants and prunes every other
 * layout's branch), one bpf_loop() callback per frame (verified once instead
 * of once per iteration), one read of a frame's fixed part per frame, and
 * errors accumulated without branching.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

/*
 * vmlinux.h defines the fixed-width types fp/layout.h uses; the host's
 * <stdint.h> would pull glibc's 32-bit stubs under -target bpf.
 */
#define __CLANG_STDINT_H

#include "fp/sampler.h"

const volatile struct fp_sampler_cfg cfg = {};

/* host tid -> thread state, kept by user space (3.10 and older cannot map a tid in here) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, uint32_t);
	__type(value, struct fp_sampler_thread);
} threads SEC(".maps");

/* The event is built here: it is far larger than the 512-byte BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, uint32_t);
	__type(value, struct fp_sampler_event);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FP_SCNT_NR);
	__type(key, uint32_t);
	__type(value, uint64_t);
} counters SEC(".maps");

static __always_inline void count(uint32_t i)
{
	uint64_t *v = bpf_map_lookup_elem(&counters, &i);
	if (v)
		(*v)++;
}

static __always_inline uint64_t at(const uint8_t *hdr, int32_t off)
{
	uint64_t v;
	__builtin_memcpy(&v, hdr + off, sizeof(v));
	return v;
}

struct walk {
	struct fp_sampler_event *ev;
	uint64_t frame;
	long err;
};

/* One frame per call. Returns 1 to stop the loop. */
static long walk_one(uint32_t i, struct walk *w)
{
	const volatile struct fp_layout *l = &cfg.layout;
	uint8_t hdr[FP_SAMPLER_FRAME_READ_MAX];
	uint32_t sz = cfg.frame_read;
	uint64_t code, next, pos;
	int entry = 0;
	(void)i;

	if (!w->frame || sz > sizeof(hdr))
		return 1;
	w->err |= bpf_probe_read_user(hdr, sz, (void *)w->frame);
	if (w->err)
		return 1;
	if (l->frame_model == FP_FRAMES_OBJECT) {
		if (l->fo_back < 0 || l->fo_back > FP_SAMPLER_FRAME_READ_MAX - 8 ||
		    l->fo_code < 0 || l->fo_code > FP_SAMPLER_FRAME_READ_MAX - 8 ||
		    l->fo_lasti < 0 || l->fo_lasti > FP_SAMPLER_FRAME_READ_MAX - 8)
			return 1;
		next = at(hdr, l->fo_back);
		code = at(hdr, l->fo_code);
		pos = (uint64_t)(int64_t)(int32_t)at(hdr, l->fo_lasti);
		w->frame = next;
		entry = 1; /* one eval-loop call per frame */
	} else {
		if (l->if_previous < 0 || l->if_previous > FP_SAMPLER_FRAME_READ_MAX - 8 ||
		    l->if_code < 0 || l->if_code > FP_SAMPLER_FRAME_READ_MAX - 8 ||
		    l->if_instr < 0 || l->if_instr > FP_SAMPLER_FRAME_READ_MAX - 8 ||
		    l->if_owner < 0 || l->if_owner > FP_SAMPLER_FRAME_READ_MAX - 1)
			return 1;
		next = at(hdr, l->if_previous);
		code = at(hdr, l->if_code);
		pos = at(hdr, l->if_instr);
		w->frame = next;
		/*
		 * 3.12+: the marker frame each C-to-Python entry pushes has no code of
		 * its own; the frame above it was entered from C.
		 */
		if (l->owner_cstack >= 0 && hdr[l->if_owner] == (uint8_t)l->owner_cstack) {
			uint32_t above = w->ev->nframes - 1;
			if (w->ev->nframes)
				w->ev->entry[(above >> 6) & 1] |= 1ULL << (above & 63);
			return 0;
		}
		if (l->if_is_entry >= 0 && l->if_is_entry < FP_SAMPLER_FRAME_READ_MAX)
			entry = hdr[l->if_is_entry] != 0;
	}
	/*
	 * The count lives in the map value, not on the stack: the verifier does not
	 * track it from one iteration to the next, so the callback's states
	 * converge instead of being explored once per possible count.
	 */
	uint32_t n = w->ev->nframes;
	if (n >= FP_SAMPLER_MAX_FRAMES) {
		w->ev->flags |= FP_SAMPLE_TRUNCATED;
		return 1;
	}
	w->ev->frames[n & (FP_SAMPLER_MAX_FRAMES - 1)].code = code;
	w->ev->frames[n & (FP_SAMPLER_MAX_FRAMES - 1)].pos = pos;
	if (entry)
		w->ev->entry[(n >> 6) & 1] |= 1ULL << (n & 63);
	w->ev->nframes = n + 1;
	return 0;
}

static __always_inline uint64_t read_u64(uint64_t addr, long *err)
{
	uint64_t v = 0;
	*err |= bpf_probe_read_user(&v, sizeof(v), (void *)addr);
	return v;
}

/* The thread's innermost frame, or 0. */
static __always_inline uint64_t top_frame(uint64_t ts, long *err)
{
	const volatile struct fp_layout *l = &cfg.layout;
	switch (l->frame_model) {
	case FP_FRAMES_OBJECT:
		return read_u64(ts + l->ts_frame, err);
	case FP_FRAMES_CFRAME: {
		uint64_t cf = read_u64(ts + l->ts_cframe, err);
		return cf ? read_u64(cf + l->cframe_current_frame, err) : 0;
	}
	default:
		return read_u64(ts + l->ts_current_frame, err);
	}
}

/*
 * --native: the registers user space was interrupted in (the task's saved
 * user registers, also when the sample hit a system call) and as much of
 * the stack above the stack pointer as is mapped, up to
 * FP_SAMPLER_STACK_MAX.  Returns the bytes copied.
 */
static __always_inline uint32_t copy_user_stack(struct fp_sampler_event *ev)
{
	struct pt_regs *r = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	uint64_t *g = ev->regs;
	g[0] = r->ax;
	g[1] = r->dx;
	g[2] = r->cx;
	g[3] = r->bx;
	g[4] = r->si;
	g[5] = r->di;
	g[6] = r->bp;
	g[7] = r->sp;
	g[8] = r->r8;
	g[9] = r->r9;
	g[10] = r->r10;
	g[11] = r->r11;
	g[12] = r->r12;
	g[13] = r->r13;
	g[14] = r->r14;
	g[15] = r->r15;
	g[16] = r->ip;
	/* A read that crosses the top of the stack fails whole: try smaller ones. */
	void *sp = (void *)r->sp;
	uint32_t len = 0;
	if (!bpf_probe_read_user(ev->stack, FP_SAMPLER_STACK_MAX, sp))
		len = FP_SAMPLER_STACK_MAX;
	else if (!bpf_probe_read_user(ev->stack, FP_SAMPLER_STACK_MAX / 2, sp))
		len = FP_SAMPLER_STACK_MAX / 2;
	else if (!bpf_probe_read_user(ev->stack, FP_SAMPLER_STACK_MAX / 4, sp))
		len = FP_SAMPLER_STACK_MAX / 4;
	else if (!bpf_probe_read_user(ev->stack, FP_SAMPLER_STACK_MAX / 8, sp))
		len = FP_SAMPLER_STACK_MAX / 8;
	ev->stack_len = len;
	return len;
}

/* One sample of whatever runs on this CPU, kept when it is the target. */
static __always_inline int take_sample(void)
{
	const volatile struct fp_layout *l = &cfg.layout;
	uint64_t id = bpf_get_current_pid_tgid();
	uint32_t tid = (uint32_t)id, zero = 0;
	struct walk w = {};

	if ((id >> 32) != cfg.tgid)
		return 0;
	w.ev = bpf_map_lookup_elem(&scratch, &zero);
	if (!w.ev)
		return 0;
	w.ev->tid = tid;
	w.ev->flags = 0;
	w.ev->nframes = 0;
	w.ev->stack_len = 0;
	w.ev->tstate = 0;
	w.ev->entry[0] = w.ev->entry[1] = 0;

	struct fp_sampler_thread *t = bpf_map_lookup_elem(&threads, &tid);
	uint64_t ts = t ? t->tstate : 0;
	/* A tid reused by a new thread keeps a stale entry until user space refreshes it. */
	if (ts && l->ts_native_thread_id >= 0) {
		int32_t native = 0;
		w.err |= bpf_probe_read_user(&native, sizeof(native),
					     (void *)(ts + l->ts_native_thread_id));
		if (w.err || (uint32_t)native != t->nstid)
			ts = 0;
		w.err = 0;
	}
	if (cfg.flags & FP_SAMPLER_GIL_ONLY) {
		int32_t locked = 0;
		uint64_t holder = 0;
		long gerr = bpf_probe_read_user(&locked, sizeof(locked), (void *)cfg.gil_locked);
		gerr |= bpf_probe_read_user(&holder, sizeof(holder), (void *)cfg.gil_holder);
		if (gerr || !ts || !locked || holder != ts) {
			count(FP_SCNT_NOT_GIL);
			return 0;
		}
	}
	if (!ts) {
		/* Sent all the same: user space refreshes its map when it sees one. */
		w.ev->flags |= FP_SAMPLE_NO_TSTATE;
	} else {
		w.ev->tstate = ts;
		w.frame = top_frame(ts, &w.err);
		if (!w.err)
			bpf_loop(FP_SAMPLER_MAX_FRAMES + 32, walk_one, &w, 0);
		if (w.err) {
			count(FP_SCNT_FAULTED);
			return 0;
		}
		if (w.frame)
			w.ev->flags |= FP_SAMPLE_TRUNCATED;
	}
	uint32_t n = w.ev->nframes;
	if (n > FP_SAMPLER_MAX_FRAMES)
		n = FP_SAMPLER_MAX_FRAMES;
	uint64_t size = FP_SAMPLER_EVENT_SIZE(n);
	if (cfg.flags & FP_SAMPLER_NATIVE)
		size = __builtin_offsetof(struct fp_sampler_event, stack) + copy_user_stack(w.ev);
	/* No wakeup per sample: user space polls the ring on a timer. */
	if (bpf_ringbuf_output(&events, w.ev, size, BPF_RB_NO_WAKEUP))
		count(FP_SCNT_LOST);
	else
		count(FP_SCNT_SENT);
	return 0;
}

/*
 * A cpu-clock event per CPU: the samples above the tick's rate, or all of
 * them where the tick cannot be traced.
 */
SEC("perf_event")
int sample(struct bpf_perf_event_data *ctx)
{
	(void)ctx;
	return take_sample();
}

/* Per CPU: tick time not yet turned into a sample (ns). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, uint32_t);
	__type(value, uint64_t);
} tick_credit SEC(".maps");

/*
 * Up to the tick's rate: the scheduler tick takes the sample when one is
 * due, so sampling adds no interrupt of its own (a cpu-clock event is an
 * interrupt per sample, which costs a virtual machine about 18 us each:
 * bench/RESULTS.md).  Each tick stands for 1/HZ s of the CPU's time,
 * as the kernel's own CPU-time accounting has it: a sample is taken each
 * time the ticks seen on this CPU add up to another period, of whatever
 * runs there, like the cpu-clock event does.  A BTF tracepoint on the
 * tick's hrtimer, because fentry programs are refused on some kernels (this
 * project's VM) and kprobes compiled out of others; it fires in the timer
 * interrupt, on the interrupted task.
 */
SEC("tp_btf/hrtimer_expire_entry")
int BPF_PROG(sample_tick, struct hrtimer *timer)
{
	uint32_t zero = 0;
	if ((uint64_t)timer->function != cfg.tick_fn)
		return 0;
	uint64_t *credit = bpf_map_lookup_elem(&tick_credit, &zero);
	if (!credit)
		return 0;
	*credit += cfg.tick_ns;
	if (*credit < cfg.period_ns)
		return 0;
	*credit -= cfg.period_ns;
	return take_sample();
}

char LICENSE[] SEC("license") = "GPL";
