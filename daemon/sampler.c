/*
 * The sampler behind `perf` and `top` (see sampler.h).
 *
 * On-CPU sampling: bpf/sampler.bpf.c runs in the scheduler tick, an
 * interrupt the kernel takes anyway, when the rate is at most the tick's
 * (CONFIG_HZ); above, every tick samples and a cpu-clock event per CPU adds
 * the rest, an interrupt per sample, which is what sampling costs a
 * virtual machine most (bench/RESULTS.md).  It sends (code address,
 * instruction position) pairs through a ring buffer
 * without waking us; fp_sampler_poll drains it on its own timer, resolves
 * each code object once (py/codecache.c, revalidated every poll) and its
 * current line every sample.
 *
 * The kernel side cannot map a tid to its PyThreadState on 3.10 and older
 * (no native_thread_id), so this side keeps the tid -> tstate map for every
 * version: it reads the thread list as `stack` does, every second and
 * whenever the kernel reports a tid it does not know.  The same read gives
 * the Python thread names.
 *
 * --idle samples off-CPU threads too, which no cpu-clock event does: a BPF
 * timer runs in softirq context, where bpf_probe_read_user reads whichever
 * process happens to be current, and reading another task's memory
 * (bpf_copy_from_user_task) needs a sleepable program such as a task
 * iterator, which user space must trigger on its own timer anyway.  So
 * --idle is a user-space timer that reads every thread's stack with
 * process_vm_readv, like `stack`, without stopping the target.
 *
 * --native: none of these interpreters keeps frame pointers, so each sample
 * carries the thread's user registers and up to 16 KiB of its stack from
 * the stack pointer (what `perf --call-graph dwarf` does); elfutils unwinds
 * that copy with the CFI of the target's files, and the Python frames
 * replace the eval-loop frames running them (fp_unwind_merge, as `stack
 * --native`).  A stack deeper than the copy ends where the copy ends.
 */
#include "sampler.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <linux/perf_event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "fp/sampler.h"
#include "proc.h"
#include "py/codecache.h"
#include "sampler.skel.h"
#include "unwind.h"

#define REFRESH_NS     1000000000LL /* thread map and names: every second */
#define MIN_REFRESH_NS 100000000LL  /* on an unknown tid, at most ten times a second */
#define MAX_POLL_MS    100

struct tinfo {
	pid_t tid; /* host tid */
	pid_t nstid;
	uint64_t tstate;
	char name[64];
};

struct fp_sampler {
	struct fp_python py;
	struct fp_sampler_opts o;
	struct fp_mem mem;
	struct fp_mem_proc mp;
	struct fp_codecache codes;

	struct sampler_bpf *skel;
	bool tick;	/* sample_tick runs (in the scheduler tick) */
	int event_rate; /* sample runs on cpu-clock events at this rate, 0: not */
	struct bpf_link **links;
	int nlinks;
	int ncpu; /* possible CPUs: the per-CPU counters' width */
	struct ring_buffer *rb;

	struct tinfo *threads;
	size_t nthreads;
	int64_t last_refresh;
	bool want_refresh;

	/* The poll in progress. */
	fp_sample_fn fn;
	void *arg;
	int delivered;
	struct fp_frame frames[FP_SAMPLER_MAX_FRAMES];

	int64_t next_tick; /* --idle */
	uint64_t samples, lost, faulted;

	/* --native: modules of the target, and the sample being unwound. */
	Dwfl *dwfl;
	int root; /* /proc/PID/root, where the target's ELF files are opened */
	const struct fp_sampler_event *cur;
	size_t cur_len; /* bytes of cur->stack actually received */
	struct symcache *syms;
};

static int report_modules(struct fp_sampler *s, char *err, size_t errlen);

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_ns(int64_t ns)
{
	if (ns <= 0)
		return;
	struct timespec ts = {.tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL};
	/* A signal ends the wait early: the caller checks for Ctrl-C between polls. */
	nanosleep(&ts, NULL);
}

static const struct tinfo *find_thread(const struct fp_sampler *s, pid_t tid)
{
	for (size_t i = 0; i < s->nthreads; i++)
		if (s->threads[i].tid == tid)
			return &s->threads[i];
	return NULL;
}

/*
 * Reads the thread list again and brings the kernel's tid map in line with
 * it.  Every task of the target is listed, those without a thread state
 * (threads Python does not know) with their comm, so that their samples do
 * not trigger another refresh.  A failed read keeps the previous list:
 * samples stay attributed.
 */
static void refresh_threads(struct fp_sampler *s)
{
	struct fp_stack st;
	char err[256];
	s->last_refresh = now_ns();
	s->want_refresh = false;
	struct fp_task *tasks = NULL;
	size_t ntasks = 0;
	if (fp_proc_tasks(s->py.pid, &tasks, &ntasks) != 0)
		return;
	if (fp_stack_read(&s->py, &s->mem, 0, &st, err, sizeof(err)) != 0) {
		free(tasks);
		return;
	}
	struct tinfo *nt = calloc(ntasks ? ntasks : 1, sizeof(*nt));
	if (!nt) {
		fp_stack_free(&st);
		free(tasks);
		return;
	}
	for (size_t i = 0; i < ntasks; i++) {
		nt[i].tid = tasks[i].tid;
		nt[i].nstid = tasks[i].nstid;
		snprintf(nt[i].name, sizeof(nt[i].name), "%s", tasks[i].comm);
		for (size_t j = 0; j < st.nthreads; j++) {
			const struct fp_thread *t = &st.threads[j];
			if (t->tid != tasks[i].tid)
				continue;
			nt[i].tstate = t->tstate;
			snprintf(nt[i].name, sizeof(nt[i].name), "%s", t->name);
		}
	}
	fp_stack_free(&st);
	free(tasks);
	if (s->skel) {
		int fd = bpf_map__fd(s->skel->maps.threads);
		for (size_t i = 0; i < s->nthreads; i++) {
			bool kept = false;
			for (size_t j = 0; j < ntasks && !kept; j++)
				kept = nt[j].tstate && nt[j].tid == s->threads[i].tid;
			if (!kept) {
				uint32_t key = (uint32_t)s->threads[i].tid;
				bpf_map_delete_elem(fd, &key);
			}
		}
		for (size_t j = 0; j < ntasks; j++) {
			if (!nt[j].tstate)
				continue;
			uint32_t key = (uint32_t)nt[j].tid;
			struct fp_sampler_thread v = {.tstate = nt[j].tstate,
						      .nstid = (uint32_t)nt[j].nstid};
			bpf_map_update_elem(fd, &key, &v, BPF_ANY);
		}
	}
	free(s->threads);
	s->threads = nt;
	s->nthreads = ntasks;
	if (s->dwfl) {
		char why[256];
		/* Should this fail, the modules known so far still unwind. */
		report_modules(s, why, sizeof(why));
	}
}

static void maybe_refresh(struct fp_sampler *s)
{
	int64_t since = now_ns() - s->last_refresh;
	if (since >= REFRESH_NS || (s->want_refresh && since >= MIN_REFRESH_NS))
		refresh_threads(s);
}

static const char *thread_name(struct fp_sampler *s, pid_t tid, char *buf, size_t cap)
{
	const struct tinfo *t = find_thread(s, tid);
	if (t)
		return t->name;
	s->want_refresh = true;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int)s->py.pid, (int)tid);
	FILE *f = fopen(path, "r");
	snprintf(buf, cap, "?");
	if (f) {
		if (fgets(buf, (int)cap, f))
			buf[strcspn(buf, "\n")] = 0;
		fclose(f);
	}
	return buf;
}

/* Byte offset of the frame's current instruction from what the kernel shipped. */
static int64_t frame_lasti(const struct fp_layout *l, const struct fp_sampler_frame *f)
{
	if (l->frame_model == FP_FRAMES_OBJECT) {
		int64_t lasti = (int64_t)f->pos;
		/* 3.10 counts f_lasti in code units, older versions in bytes. */
		return (l->linetable == FP_LINES_310 && lasti >= 0) ? lasti * 2 : lasti;
	}
	uint64_t start = f->code + (uint64_t)l->co_code_adaptive;
	return f->pos >= start ? (int64_t)(f->pos - start) : -1;
}

/* ---- --native: unwinding the copied user stack with elfutils ---- */

#define EVAL_FUNC	  "_PyEval_EvalFrameDefault"
#define MAX_NATIVE_FRAMES 128

/* Symbols by pc: a profile sees the same few hundred pcs over and over. */
struct sym {
	uint64_t pc; /* 0 marks an empty slot */
	char *func;
	const char *library; /* owned by the Dwfl module */
	bool eval;
};

struct symcache {
	struct sym *v;
	size_t cap, n;
};

static void symcache_free(struct symcache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->cap; i++)
		free(c->v[i].func);
	free(c->v);
	free(c);
}

/* The target's ELF files, opened inside its root as stack --native opens them. */
static int find_elf(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr base,
		    char **file_name, Elf **elfp)
{
	const struct fp_sampler *s = *userdata;
	return fp_unwind_find_elf(mod, userdata, name, base, file_name, elfp, s->root, s->py.pid);
}

static const Dwfl_Callbacks dwfl_callbacks = {
    .find_elf = find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
};

static int set_userdata(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr start,
			void *arg)
{
	(void)mod, (void)name, (void)start;
	*userdata = arg;
	return DWARF_CB_OK;
}

/* The thread being unwound is always the current sample's. */
static pid_t next_thread(Dwfl *dwfl, void *arg, void **thread_argp)
{
	(void)dwfl;
	struct fp_sampler *s = arg;
	if (*thread_argp)
		return 0;
	*thread_argp = s;
	return (pid_t)s->cur->tid;
}

static bool get_thread(Dwfl *dwfl, pid_t tid, void *arg, void **thread_argp)
{
	(void)dwfl, (void)tid;
	*thread_argp = arg;
	return true;
}

/*
 * Only the copy: the live stack has moved on since the sample, so a word
 * outside the copy ends the unwind rather than feeding it garbage.
 */
static bool memory_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result, void *arg)
{
	(void)dwfl;
	const struct fp_sampler *s = arg;
	uint64_t sp = s->cur->regs[FP_SAMPLER_REG_SP];
	if (addr < sp || addr - sp + sizeof(*result) > s->cur_len)
		return false;
	memcpy(result, s->cur->stack + (addr - sp), sizeof(*result));
	return true;
}

static bool set_initial_registers(Dwfl_Thread *thread, void *arg)
{
	const struct fp_sampler *s = arg;
	Dwarf_Word regs[FP_SAMPLER_NREGS];
	memcpy(regs, s->cur->regs, sizeof(regs));
	if (!dwfl_thread_state_registers(thread, 0, FP_SAMPLER_NREGS, regs))
		return false;
	dwfl_thread_state_register_pc(thread, regs[FP_SAMPLER_NREGS - 1]);
	return true;
}

static const Dwfl_Thread_Callbacks thread_callbacks = {
    .next_thread = next_thread,
    .get_thread = get_thread,
    .memory_read = memory_read,
    .set_initial_registers = set_initial_registers,
};

/* (Re)reads the target's mappings: libraries loaded since are unwound too. */
static int report_modules(struct fp_sampler *s, char *err, size_t errlen)
{
	dwfl_report_begin(s->dwfl);
	int rc = dwfl_linux_proc_report(s->dwfl, s->py.pid);
	if (dwfl_report_end(s->dwfl, NULL, NULL) != 0 || rc != 0) {
		snprintf(err, errlen, "reading the mappings of process %d for --native failed: %s",
			 (int)s->py.pid, rc > 0 ? strerror(rc) : dwfl_errmsg(-1));
		return -1;
	}
	dwfl_getmodules(s->dwfl, set_userdata, s, 0);
	return 0;
}

static int open_native(struct fp_sampler *s, char *err, size_t errlen)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/root", (int)s->py.pid);
	s->root = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s->root < 0) {
		snprintf(err, errlen, "opening %s for --native failed: %s", path, strerror(errno));
		return -1;
	}
	s->syms = calloc(1, sizeof(*s->syms));
	s->dwfl = dwfl_begin(&dwfl_callbacks);
	if (!s->syms || !s->dwfl) {
		snprintf(err, errlen, "setting up the --native unwinder failed: %s",
			 s->dwfl ? "out of memory" : dwfl_errmsg(-1));
		return -1;
	}
	if (report_modules(s, err, errlen) != 0)
		return -1;
	if (!dwfl_attach_state(s->dwfl, NULL, s->py.pid, &thread_callbacks, s)) {
		snprintf(err, errlen, "preparing the --native unwinder for process %d failed: %s",
			 (int)s->py.pid, dwfl_errmsg(-1));
		return -1;
	}
	return 0;
}

/* GCC's hot/cold splitting names the cold part "<name>.cold". */
static bool is_eval(const char *sym)
{
	size_t n = strlen(EVAL_FUNC);
	return sym && strncmp(sym, EVAL_FUNC, n) == 0 && (sym[n] == '\0' || sym[n] == '.');
}

static const struct sym *symbolize(struct fp_sampler *s, uint64_t pc, bool activation)
{
	struct symcache *c = s->syms;
	if (c->n * 2 >= c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 1024;
		struct sym *nv = calloc(ncap, sizeof(*nv));
		if (!nv)
			return NULL;
		for (size_t i = 0; i < c->cap; i++) {
			if (!c->v[i].pc)
				continue;
			size_t j = fp_hash64(c->v[i].pc) & (ncap - 1);
			while (nv[j].pc)
				j = (j + 1) & (ncap - 1);
			nv[j] = c->v[i];
		}
		free(c->v);
		c->v = nv;
		c->cap = ncap;
	}
	size_t j = fp_hash64(pc) & (c->cap - 1);
	while (c->v[j].pc && c->v[j].pc != pc)
		j = (j + 1) & (c->cap - 1);
	struct sym *e = &c->v[j];
	if (e->pc)
		return e;
	/* A caller's pc is the return address, which may already be the next function. */
	Dwarf_Addr at = activation ? pc : pc - 1;
	Dwfl_Module *mod = dwfl_addrmodule(s->dwfl, at);
	const char *func = NULL, *library = NULL;
	if (mod) {
		library = dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
		if (library && strrchr(library, '/'))
			library = strrchr(library, '/') + 1;
		GElf_Off off;
		GElf_Sym sym;
		func = dwfl_module_addrinfo(mod, at, &off, &sym, NULL, NULL, NULL);
	}
	e->pc = pc;
	/* "clock_nanosleep@GLIBC_2.2.5": the symbol version says nothing about the frame. */
	e->func = func ? strndup(func, strcspn(func, "@")) : NULL;
	e->library = library;
	e->eval = is_eval(e->func);
	c->n++;
	return e;
}

struct pcs {
	Dwarf_Addr pc[MAX_NATIVE_FRAMES];
	bool activation[MAX_NATIVE_FRAMES];
	size_t n;
};

static int frame_cb(Dwfl_Frame *state, void *arg)
{
	struct pcs *p = arg;
	if (p->n == MAX_NATIVE_FRAMES || !dwfl_frame_pc(state, &p->pc[p->n], &p->activation[p->n]))
		return DWARF_CB_ABORT;
	p->n++;
	return DWARF_CB_OK;
}

static void free_frames(struct fp_frame *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fp_frame_free(&v[i]);
	free(v);
}

/*
 * The sample's native frames, unwound from its copied stack, with the
 * Python frames py[0..npy) merged in place of the eval-loop frames running
 * them (as `stack --native` shows them).  *out is newly allocated and owns
 * its strings; -1 when out of memory.
 */
static int native_frames(struct fp_sampler *s, const struct fp_sampler_event *ev, size_t len,
			 const struct fp_frame *py, size_t npy, struct fp_frame **out, size_t *nout)
{
	struct pcs p = {.n = 0};
	s->cur = ev;
	s->cur_len = len;
	/* A stack whose outer end cannot be unwound still has its inner frames. */
	dwfl_getthread_frames(s->dwfl, (pid_t)ev->tid, frame_cb, &p);
	struct fp_frame *nat = calloc(p.n ? p.n : 1, sizeof(*nat));
	struct fp_frame *pyc = calloc(npy ? npy : 1, sizeof(*pyc));
	bool ok = nat && pyc;
	for (size_t i = 0; ok && i < p.n; i++) {
		const struct sym *sym = symbolize(s, p.pc[i], p.activation[i]);
		nat[i].kind = FP_FRAME_NATIVE;
		nat[i].pc = p.pc[i];
		if (sym) {
			nat[i].eval = sym->eval;
			nat[i].func = sym->func ? strdup(sym->func) : NULL;
			nat[i].library = sym->library ? strdup(sym->library) : NULL;
		}
	}
	for (size_t i = 0; ok && i < npy; i++) {
		pyc[i] = py[i];
		pyc[i].file = strdup(py[i].file);
		pyc[i].func = strdup(py[i].func);
		ok = pyc[i].file && pyc[i].func;
	}
	if (!ok || fp_unwind_merge(nat, p.n, pyc, npy, out, nout) != 0) {
		if (nat)
			free_frames(nat, p.n);
		if (pyc)
			free_frames(pyc, npy);
		return -1;
	}
	free(nat);
	free(pyc);
	return 0;
}

static int on_event(void *ctx, void *data, size_t size)
{
	struct fp_sampler *s = ctx;
	const struct fp_sampler_event *ev = data;
	size_t head = __builtin_offsetof(struct fp_sampler_event, frames);
	if (size < head || ev->nframes > FP_SAMPLER_MAX_FRAMES ||
	    size < FP_SAMPLER_EVENT_SIZE(ev->nframes))
		return 0;
	const struct tinfo *known = find_thread(s, (pid_t)ev->tid);
	/* A Python thread the map does not have yet, or a stale entry. */
	if ((ev->flags & FP_SAMPLE_NO_TSTATE) && known && known->tstate)
		s->want_refresh = true;
	for (uint32_t i = 0; i < ev->nframes; i++) {
		const struct fp_code_info *ci =
		    fp_codecache_get_checked(&s->codes, ev->frames[i].code);
		if (!ci) {
			/* The frame changed under the walk: its code pointer was torn. */
			s->faulted++;
			return 0;
		}
		struct fp_frame *f = &s->frames[i];
		memset(f, 0, sizeof(*f));
		f->kind = FP_FRAME_PY;
		/* Borrowed from the cache, which outlives the callback. */
		f->file = ci->file;
		f->func = ci->func;
		f->line =
		    fp_codecache_line(&s->codes, ci, frame_lasti(&s->py.layout, &ev->frames[i]));
		/* The outermost Python frame was necessarily entered from C. */
		f->entry = (ev->entry[i / 64] >> (i % 64) & 1) || i + 1 == ev->nframes;
	}
	char comm[64];
	struct fp_sample_info info = {
	    .tid = (pid_t)ev->tid,
	    .thread = thread_name(s, (pid_t)ev->tid, comm, sizeof(comm)),
	    .frames = s->frames,
	    .nframes = ev->nframes,
	    .truncated = (ev->flags & FP_SAMPLE_TRUNCATED) != 0,
	};
	struct fp_frame *merged = NULL;
	size_t nmerged = 0;
	if (s->o.native) {
		size_t stack_off = __builtin_offsetof(struct fp_sampler_event, stack);
		size_t len = size > stack_off ? size - stack_off : 0;
		if (len > ev->stack_len)
			len = ev->stack_len;
		if (native_frames(s, ev, len, s->frames, ev->nframes, &merged, &nmerged) != 0) {
			s->lost++;
			return 0;
		}
		info.frames = merged;
		info.nframes = nmerged;
	}
	s->samples++;
	s->delivered++;
	s->fn(s->arg, &info);
	if (merged)
		free_frames(merged, nmerged);
	return 0;
}

/* --idle: one read of every thread's stack per tick. */
static void idle_tick(struct fp_sampler *s)
{
	struct fp_stack st;
	char err[256];
	if (fp_stack_read(&s->py, &s->mem, 0, &st, err, sizeof(err)) != 0) {
		s->faulted++;
		return;
	}
	for (size_t i = 0; i < st.nthreads; i++) {
		const struct fp_thread *t = &st.threads[i];
		if (s->o.gil_only && strcmp(t->state, "holding GIL") != 0)
			continue;
		if (t->error) {
			s->faulted++;
			continue;
		}
		struct fp_sample_info info = {
		    .tid = t->tid ? t->tid : t->nstid,
		    .thread = t->name,
		    .frames = t->frames,
		    .nframes = t->nframes,
		    .truncated = t->truncated != 0,
		};
		s->samples++;
		s->delivered++;
		s->fn(s->arg, &info);
	}
	fp_stack_free(&st);
}

static int poll_idle(struct fp_sampler *s, int timeout_ms)
{
	int64_t period = 1000000000LL / s->o.rate_hz;
	int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000LL;
	do {
		int64_t now = now_ns();
		if (now < s->next_tick) {
			if (s->next_tick > deadline) {
				sleep_ns(deadline - now);
				break;
			}
			sleep_ns(s->next_tick - now);
		}
		idle_tick(s);
		s->next_tick += period;
		now = now_ns();
		if (s->next_tick < now) {
			/* Reads slower than the rate: the ticks missed are samples lost. */
			s->lost += (uint64_t)((now - s->next_tick) / period);
			s->next_tick = now + period;
		}
	} while (now_ns() < deadline);
	return 0;
}

/* A zombie its parent has not reaped yet is gone too: it runs no more code. */
static bool target_alive(const struct fp_sampler *s)
{
	struct fp_proc_info info;
	return fp_proc_info(s->py.pid, &info) == 0 && info.state != 'Z' && info.state != 'X';
}

int fp_sampler_poll(struct fp_sampler *s, int timeout_ms, fp_sample_fn fn, void *arg)
{
	s->fn = fn;
	s->arg = arg;
	s->delivered = 0;
	if (!target_alive(s)) {
		/* What the kernel sent before the end still counts. */
		if (s->rb)
			ring_buffer__consume(s->rb);
		if (s->delivered)
			return s->delivered;
		errno = ESRCH;
		return -1;
	}
	fp_codecache_new_epoch(&s->codes);
	maybe_refresh(s);
	if (s->o.idle) {
		poll_idle(s, timeout_ms);
		return s->delivered;
	}
	/* The program never wakes us (BPF_RB_NO_WAKEUP): drain, else wait, then drain. */
	int rc = ring_buffer__consume(s->rb);
	if (rc == 0) {
		sleep_ns((int64_t)(timeout_ms < MAX_POLL_MS ? timeout_ms : MAX_POLL_MS) *
			 1000000LL);
		rc = ring_buffer__consume(s->rb);
	}
	if (rc < 0) {
		errno = -rc;
		return -1;
	}
	return s->delivered;
}

static uint64_t kernel_counter(const struct fp_sampler *s, uint32_t idx)
{
	if (!s->skel)
		return 0;
	uint64_t *v = calloc((size_t)s->ncpu, sizeof(*v));
	uint64_t sum = 0;
	if (v && bpf_map_lookup_elem(bpf_map__fd(s->skel->maps.counters), &idx, v) == 0)
		for (int i = 0; i < s->ncpu; i++)
			sum += v[i];
	free(v);
	return sum;
}

void fp_sampler_stats(const struct fp_sampler *s, struct fp_sampler_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->samples = s->samples;
	out->lost = s->lost + kernel_counter(s, FP_SCNT_LOST);
	out->faulted = s->faulted + kernel_counter(s, FP_SCNT_FAULTED);
	if (s->o.idle) {
		out->trigger = "timer";
		return;
	}
	out->trigger = !s->event_rate ? "tick" : s->tick ? "tick+cpu-clock" : "cpu-clock";
	struct bpf_program *progs[] = {s->tick ? s->skel->progs.sample_tick : NULL,
				       s->event_rate ? s->skel->progs.sample : NULL};
	for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		struct bpf_prog_info info;
		uint32_t len = sizeof(info);
		memset(&info, 0, sizeof(info));
		if (progs[i] &&
		    bpf_obj_get_info_by_fd(bpf_program__fd(progs[i]), &info, &len) == 0) {
			out->kernel_runs += info.run_cnt;
			out->kernel_ns += info.run_time_ns;
			if (info.verified_insns > out->kernel_insns)
				out->kernel_insns = info.verified_insns;
		}
	}
}

static void stop_bpf(struct fp_sampler *s)
{
	for (int i = 0; i < s->nlinks; i++)
		bpf_link__destroy(s->links[i]);
	free(s->links);
	s->links = NULL;
	s->nlinks = 0;
	ring_buffer__free(s->rb);
	s->rb = NULL;
	sampler_bpf__destroy(s->skel);
	s->skel = NULL;
	s->tick = false;
	s->event_rate = 0;
}

void fp_sampler_close(struct fp_sampler *s)
{
	if (!s)
		return;
	stop_bpf(s);
	fp_codecache_free(&s->codes);
	fp_mem_proc_close(&s->mp);
	if (s->dwfl)
		dwfl_end(s->dwfl);
	symcache_free(s->syms);
	if (s->root >= 0)
		close(s->root);
	free(s->threads);
	free(s);
}

/* Where the GIL's locked and last_holder words are; -1 when unknown. */
static int gil_words(struct fp_sampler *s, uint64_t *locked, uint64_t *holder)
{
	const struct fp_layout *l = &s->py.layout;
	if (s->py.gil_last_holder) {
		/* 3.6: separate statics. */
		*locked = s->py.gil_locked;
		*holder = s->py.gil_last_holder;
		return 0;
	}
	uint64_t gil = s->py.gil;
	if (l->interp_gil_ptr != FP_NO_FIELD) {
		/* 3.12+: the main interpreter's GIL, which does not move once created. */
		uint64_t interp = 0;
		if (fp_mem_read_u64(&s->mem, s->py.runtime + (uint64_t)l->runtime_interpreters_head,
				    &interp) != 0 ||
		    fp_mem_read_u64(&s->mem, interp + (uint64_t)l->interp_gil_ptr, &gil) != 0)
			gil = 0;
	}
	if (!gil || l->gil_locked == FP_NO_FIELD || l->gil_last_holder == FP_NO_FIELD)
		return -1;
	*locked = gil + (uint64_t)l->gil_locked;
	*holder = gil + (uint64_t)l->gil_last_holder;
	return 0;
}

static int max4(int a, int b, int c, int d)
{
	int m = a > b ? a : b;
	m = m > c ? m : c;
	return m > d ? m : d;
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	(void)fmt;
	(void)ap;
	return 0;
}

static int loud(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	return vfprintf(stderr, fmt, ap);
}

/* What tick-driven sampling needs to know of the kernel; 0 where unknown. */
static struct {
	int hz;		  /* CONFIG_HZ */
	uint64_t handler; /* the tick hrtimer's function */
} ktick;
static pthread_once_t tick_once = PTHREAD_ONCE_INIT;

/*
 * CONFIG_HZ from the kernel's configuration (gzopen reads a plain file as
 * it is), and the tick's hrtimer function from kallsyms: tick_nohz_handler
 * since Linux 6.9, tick_sched_timer before, when every CPU runs its tick on
 * an hrtimer.
 */
static void find_tick(void)
{
	gzFile z = gzopen("/proc/config.gz", "rb");
	struct utsname u;
	if (!z && uname(&u) == 0) {
		char path[sizeof(u.release) + 16];
		snprintf(path, sizeof(path), "/boot/config-%s", u.release);
		z = gzopen(path, "rb");
	}
	char line[512];
	while (z && !ktick.hz && gzgets(z, line, sizeof(line)))
		if (sscanf(line, "CONFIG_HZ=%d", &ktick.hz) != 1 || ktick.hz <= 0)
			ktick.hz = 0;
	if (z)
		gzclose(z);
	/* Without high-resolution timers the tick is no hrtimer: nothing to trace. */
	FILE *f = fopen("/proc/timer_list", "r");
	bool hres = false;
	int active;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, " .hres_active : %d", &active) == 1) {
			hres = active == 1;
			if (!hres)
				break;
		}
	if (f)
		fclose(f);
	f = hres ? fopen("/proc/kallsyms", "r") : NULL;
	while (f && !ktick.handler && fgets(line, sizeof(line), f)) {
		unsigned long long addr;
		char type, name[128];
		if (sscanf(line, "%llx %c %127s", &addr, &type, name) == 3 &&
		    (type == 't' || type == 'T') &&
		    (strcmp(name, "tick_nohz_handler") == 0 ||
		     strcmp(name, "tick_sched_timer") == 0))
			ktick.handler = addr;
	}
	if (f)
		fclose(f);
}

/* One cpu-clock event per CPU at s->event_rate, each running the program. */
static int attach_perf_events(struct fp_sampler *s, char *err, size_t errlen)
{
	int attached = 0;
	for (int cpu = 0; cpu < s->ncpu; cpu++) {
		struct perf_event_attr a = {
		    .type = PERF_TYPE_SOFTWARE,
		    .size = sizeof(a),
		    .config = PERF_COUNT_SW_CPU_CLOCK,
		    .sample_period = 1000000000ULL / (uint64_t)s->event_rate,
		};
		/* All tasks on this CPU: the program keeps the target's (a per-task event
		 * would follow one thread only). */
		int fd = (int)syscall(SYS_perf_event_open, &a, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
		if (fd < 0) {
			if (errno == ENODEV)
				continue; /* a possible CPU that is offline */
			snprintf(err, errlen, "perf_event_open (cpu-clock) on CPU %d failed: %s",
				 cpu, strerror(errno));
			return -1;
		}
		struct bpf_link *link = bpf_program__attach_perf_event(s->skel->progs.sample, fd);
		if (!link) {
			int e = errno;
			close(fd);
			snprintf(err, errlen,
				 "attaching the sampler to the perf event of CPU %d failed: %s",
				 cpu, strerror(e));
			return -1;
		}
		s->links[s->nlinks++] = link;
		attached++;
	}
	if (!attached) {
		snprintf(err, errlen, "no online CPU to sample on");
		return -1;
	}
	return 0;
}

/*
 * Loads and starts the programs: sample_tick in the scheduler tick when
 * `tick`, sample on cpu-clock events at event_rate when not 0.
 */
static int start_bpf(struct fp_sampler *s, const struct fp_sampler_cfg *cfg, bool tick,
		     int event_rate, char *err, size_t errlen)
{
	s->skel = sampler_bpf__open();
	if (!s->skel) {
		snprintf(err, errlen, "opening the sampler's BPF object failed: %s",
			 strerror(errno));
		return -1;
	}
	memcpy((void *)&s->skel->rodata->cfg, cfg, sizeof(*cfg));
	s->tick = tick;
	s->event_rate = event_rate;
	bpf_program__set_autoload(s->skel->progs.sample_tick, tick);
	bpf_program__set_autoload(s->skel->progs.sample, event_rate > 0);
	int rc = sampler_bpf__load(s->skel);
	if (rc) {
		snprintf(err, errlen,
			 "loading the sampler's BPF program failed: %s (refused by the verifier, "
			 "or fpd lacks CAP_BPF and CAP_PERFMON)",
			 strerror(-rc));
		return -1;
	}
	s->rb = ring_buffer__new(bpf_map__fd(s->skel->maps.events), on_event, s, NULL);
	if (!s->rb) {
		snprintf(err, errlen, "creating the sampler's ring buffer reader failed: %s",
			 strerror(errno));
		return -1;
	}
	/* The tid map must be filled before the first sample arrives. */
	refresh_threads(s);
	s->ncpu = libbpf_num_possible_cpus();
	if (s->ncpu <= 0) {
		snprintf(err, errlen, "counting the CPUs failed: %s", strerror(-s->ncpu));
		return -1;
	}
	s->links = calloc((size_t)s->ncpu + 1, sizeof(*s->links));
	if (!s->links) {
		snprintf(err, errlen, "out of memory for the sampler's links");
		return -1;
	}
	if (tick) {
		s->links[0] = bpf_program__attach(s->skel->progs.sample_tick);
		if (!s->links[0]) {
			snprintf(err, errlen,
				 "attaching the sampler to the scheduler tick failed: %s",
				 strerror(errno));
			return -1;
		}
		s->nlinks = 1;
	}
	return event_rate ? attach_perf_events(s, err, errlen) : 0;
}

static int open_bpf(struct fp_sampler *s, char *err, size_t errlen)
{
	const struct fp_layout *l = &s->py.layout;
	struct fp_sampler_cfg cfg = {.tgid = (uint32_t)s->py.pid, .layout = *l};
	if (l->frame_model == FP_FRAMES_OBJECT)
		cfg.frame_read = (uint32_t)max4(l->fo_back, l->fo_code, l->fo_lasti, 0) + 8;
	else
		cfg.frame_read =
		    (uint32_t)max4(l->if_previous, l->if_code, l->if_instr, l->if_owner) + 8;
	if (cfg.frame_read > FP_SAMPLER_FRAME_READ_MAX) {
		snprintf(err, errlen, "the frame layout of Python %s is out of the sampler's range",
			 s->py.version);
		return -1;
	}
	if (s->o.gil_only) {
		if (gil_words(s, &cfg.gil_locked, &cfg.gil_holder) != 0) {
			snprintf(err, errlen,
				 "--gil: the GIL of Python %s in process %d could not "
				 "be located",
				 s->py.version, (int)s->py.pid);
			return -1;
		}
		cfg.flags |= FP_SAMPLER_GIL_ONLY;
	}
	if (s->o.native) {
		if (open_native(s, err, errlen) != 0)
			return -1;
		cfg.flags |= FP_SAMPLER_NATIVE;
	}

	pthread_once(&tick_once, find_tick);
	/* FPD_BPF_DEBUG=1: libbpf's log, the verifier's included, on stderr. */
	libbpf_set_print(getenv("FPD_BPF_DEBUG") ? loud : quiet);
	if (ktick.hz && ktick.handler) {
		/*
		 * Above the tick's rate every tick samples and cpu-clock events
		 * add the rest: HZ fewer interrupts than events alone.
		 */
		int events = s->o.rate_hz > ktick.hz ? s->o.rate_hz - ktick.hz : 0;
		cfg.tick_ns = 1000000000ULL / (uint64_t)ktick.hz;
		cfg.tick_fn = ktick.handler;
		cfg.period_ns = events ? cfg.tick_ns : 1000000000ULL / (uint64_t)s->o.rate_hz;
		if (start_bpf(s, &cfg, true, events, err, errlen) == 0)
			return 0;
		stop_bpf(s);
	}
	/*
	 * The tick unknown (no kernel configuration, kallsyms hidden) or not
	 * traceable (no BTF): cpu-clock events alone.
	 */
	return start_bpf(s, &cfg, false, s->o.rate_hz, err, errlen);
}

int fp_sampler_open(const struct fp_python *py, const struct fp_sampler_opts *o,
		    struct fp_sampler **out, char *err, size_t errlen)
{
	*out = NULL;
	if (o->rate_hz < 1 || o->rate_hz > 10000) {
		snprintf(err, errlen, "rate %d Hz is out of range (1..10000)", o->rate_hz);
		return -1;
	}
	if (o->native && o->idle) {
		snprintf(err, errlen, "--native cannot be combined with --idle yet");
		return -1;
	}
	struct fp_sampler *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory for the sampler");
		return -1;
	}
	s->py = *py;
	s->o = *o;
	s->root = -1;
	fp_mem_proc_init(&s->mem, &s->mp, py->pid);
	/* The cache points into s->py, which stays put: s is on the heap. */
	fp_codecache_init(&s->codes, &s->py, &s->mem, false);
	if (o->idle) {
		s->next_tick = now_ns();
		refresh_threads(s);
	} else if (open_bpf(s, err, errlen) != 0) {
		fp_sampler_close(s);
		return -1;
	}
	*out = s;
	return 0;
}
