/*
 * What bpf/sampler.bpf.c and daemon/sampler.c share: the configuration the
 * loader freezes into the program's .rodata, the event one sample sends
 * through the ring buffer, and the counters the program keeps.
 */
#ifndef FP_SAMPLER_EVENT_H
#define FP_SAMPLER_EVENT_H

#include "fp/layout.h"

/* Deepest Python stack walked in the kernel; deeper samples are marked truncated. */
#define FP_SAMPLER_MAX_FRAMES 128

/* Bytes of a frame's fixed part read in one go (covers every layout's fields). */
#define FP_SAMPLER_FRAME_READ_MAX 160

/* Bytes of user stack copied from the stack pointer for --native (less near the stack's top). */
#define FP_SAMPLER_STACK_MAX 16384

/* DWARF register numbers of x86-64 0-15, then the instruction pointer. */
#define FP_SAMPLER_NREGS  17
#define FP_SAMPLER_REG_SP 7

enum {
	FP_SAMPLER_GIL_ONLY = 1 << 0, /* drop samples of threads not holding the GIL */
	FP_SAMPLER_NATIVE = 1 << 1,   /* copy registers and the user stack into each sample */
};

struct fp_sampler_cfg {
	uint32_t tgid;	     /* host tgid of the target */
	uint32_t flags;	     /* FP_SAMPLER_* */
	uint32_t frame_read; /* bytes read per frame, <= FP_SAMPLER_FRAME_READ_MAX */
	uint32_t pad;
	uint64_t gil_locked; /* address of the GIL's locked word, 0 when unknown */
	uint64_t gil_holder; /* address of the GIL's last_holder word */
	uint64_t period_ns;  /* the tick samples once per period_ns of tick time */
	uint64_t tick_ns;    /* the kernel's tick, 1 s / CONFIG_HZ */
	uint64_t tick_fn;    /* the tick hrtimer's function (kallsyms) */
	struct fp_layout layout;
};

/* The per-thread entry user space keeps in the tid map (key: host tid). */
struct fp_sampler_thread {
	uint64_t tstate;
	uint32_t nstid; /* tid inside the target's namespace: what native_thread_id holds */
	uint32_t pad;
};

/* One frame: the code object and where in it the frame is. */
struct fp_sampler_frame {
	uint64_t code;
	/*
	 * <= 3.10: f_lasti (sign-extended int); 3.11+: the instruction pointer.
	 * User space turns it into a byte offset for its layout.
	 */
	uint64_t pos;
};

enum {
	FP_SAMPLE_TRUNCATED = 1 << 0, /* deeper than FP_SAMPLER_MAX_FRAMES */
	FP_SAMPLE_NO_TSTATE = 1 << 1, /* the tid is not (or no longer) in the tid map */
};

struct fp_sampler_event {
	uint32_t tid; /* host tid */
	uint32_t flags;
	uint32_t nframes;
	uint32_t stack_len; /* bytes of stack[] (--native) */
	uint64_t tstate;
	/*
	 * Bit n: frame n was entered from C (the outermost Python frame of one
	 * native eval-loop call), which the --native merge needs.
	 */
	uint64_t entry[FP_SAMPLER_MAX_FRAMES / 64];
	uint64_t regs[FP_SAMPLER_NREGS]; /* --native: user registers, DWARF order */
	struct fp_sampler_frame frames[FP_SAMPLER_MAX_FRAMES]; /* innermost first */
	uint8_t stack[FP_SAMPLER_STACK_MAX]; /* --native: user stack from regs[SP] */
};

/* Bytes of an event carrying n frames and no stack: only those are sent. */
#define FP_SAMPLER_EVENT_SIZE(n)                                                                   \
	(__builtin_offsetof(struct fp_sampler_event, frames) +                                     \
	 sizeof(struct fp_sampler_frame) * (n))

/* Indexes of the per-CPU counter array. */
enum {
	FP_SCNT_SENT,	 /* events written to the ring buffer */
	FP_SCNT_LOST,	 /* events the ring buffer had no room for */
	FP_SCNT_FAULTED, /* walks cut by a failed read of target memory */
	FP_SCNT_NOT_GIL, /* --gil: samples of threads not holding the GIL */
	FP_SCNT_NR,
};

#endif
