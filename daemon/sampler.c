/*
 * The sampler behind `perf` and `top` (see sampler.h).
 *
 * On-CPU sampling: bpf/sampler.bpf.c runs on a cpu-clock event per CPU and
 * sends (code address, instruction position) pairs through a ring buffer
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
 */
#include "sampler.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fp/sampler.h"
#include "proc.h"
#include "py/codecache.h"
#include "sampler.skel.h"

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
	struct bpf_link **links;
	int ncpu;
	struct ring_buffer *rb;
	int stats_fd;

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
};

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

static int on_event(void *ctx, void *data, size_t size)
{
	struct fp_sampler *s = ctx;
	const struct fp_sampler_event *ev = data;
	if (size < FP_SAMPLER_EVENT_SIZE(0) || ev->nframes > FP_SAMPLER_MAX_FRAMES ||
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
	}
	char comm[64];
	struct fp_sample_info info = {
	    .tid = (pid_t)ev->tid,
	    .thread = thread_name(s, (pid_t)ev->tid, comm, sizeof(comm)),
	    .frames = s->frames,
	    .nframes = ev->nframes,
	    .truncated = (ev->flags & FP_SAMPLE_TRUNCATED) != 0,
	};
	s->samples++;
	s->delivered++;
	s->fn(s->arg, &info);
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

static bool target_alive(const struct fp_sampler *s)
{
	return kill(s->py.pid, 0) == 0 || errno != ESRCH;
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
	if (s->skel) {
		struct bpf_prog_info info;
		uint32_t len = sizeof(info);
		memset(&info, 0, sizeof(info));
		if (bpf_obj_get_info_by_fd(bpf_program__fd(s->skel->progs.sample), &info, &len) ==
		    0) {
			out->kernel_runs = info.run_cnt;
			out->kernel_ns = info.run_time_ns;
			out->kernel_insns = info.verified_insns;
		}
	}
}

void fp_sampler_close(struct fp_sampler *s)
{
	if (!s)
		return;
	for (int i = 0; s->links && i < s->ncpu; i++)
		bpf_link__destroy(s->links[i]);
	free(s->links);
	ring_buffer__free(s->rb);
	sampler_bpf__destroy(s->skel);
	if (s->stats_fd >= 0)
		close(s->stats_fd);
	fp_codecache_free(&s->codes);
	fp_mem_proc_close(&s->mp);
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

	/* FPD_BPF_DEBUG=1: libbpf's log, the verifier's included, on stderr. */
	libbpf_set_print(getenv("FPD_BPF_DEBUG") ? loud : quiet);
	s->skel = sampler_bpf__open();
	if (!s->skel) {
		snprintf(err, errlen, "opening the sampler's BPF object failed: %s",
			 strerror(errno));
		return -1;
	}
	memcpy((void *)&s->skel->rodata->cfg, &cfg, sizeof(cfg));
	int rc = sampler_bpf__load(s->skel);
	if (rc) {
		snprintf(err, errlen,
			 "loading the sampler's BPF program failed: %s (refused by the verifier, "
			 "or fpd lacks CAP_BPF and CAP_PERFMON)",
			 strerror(-rc));
		return -1;
	}
	if (s->o.kernel_stats) {
		s->stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
		if (s->stats_fd < 0) {
			snprintf(err, errlen, "enabling BPF run-time statistics failed: %s",
				 strerror(errno));
			return -1;
		}
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
	s->links = calloc((size_t)s->ncpu, sizeof(*s->links));
	if (!s->links) {
		snprintf(err, errlen, "out of memory for the sampler's perf events");
		return -1;
	}
	int attached = 0;
	for (int cpu = 0; cpu < s->ncpu; cpu++) {
		struct perf_event_attr a = {
		    .type = PERF_TYPE_SOFTWARE,
		    .size = sizeof(a),
		    .config = PERF_COUNT_SW_CPU_CLOCK,
		    .sample_period = 1000000000ULL / (uint64_t)s->o.rate_hz,
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
		s->links[cpu] = bpf_program__attach_perf_event(s->skel->progs.sample, fd);
		if (!s->links[cpu]) {
			int e = errno;
			close(fd);
			snprintf(err, errlen,
				 "attaching the sampler to the perf event of CPU %d failed: %s",
				 cpu, strerror(e));
			return -1;
		}
		attached++;
	}
	if (!attached) {
		snprintf(err, errlen, "no online CPU to sample on");
		return -1;
	}
	return 0;
}

int fp_sampler_open(const struct fp_python *py, const struct fp_sampler_opts *o,
		    struct fp_sampler **out, char *err, size_t errlen)
{
	*out = NULL;
	if (o->rate_hz < 1 || o->rate_hz > 10000) {
		snprintf(err, errlen, "rate %d Hz is out of range (1..10000)", o->rate_hz);
		return -1;
	}
	if (o->native) {
		snprintf(err, errlen, "--native sampling is not available yet");
		return -1;
	}
	struct fp_sampler *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory for the sampler");
		return -1;
	}
	s->py = *py;
	s->o = *o;
	s->stats_fd = -1;
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
