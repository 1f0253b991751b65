/*
 * `stack`: every thread's Python stack, read from outside with
 * process_vm_readv while the target keeps running.
 *
 * The target changes under us, so every walk is bounded, every frame's code
 * object is checked to really be a code object, a frame seen twice ends the
 * walk as a cycle, and a walk that fails is read again from the thread's
 * current top frame rather than followed into garbage; the thread list, the
 * threads' identities and names are checked and read again the same way (see
 * "Consistent reads" below), and what stays torn is said in the output.
 *
 * Events (frames outermost first, as a traceback prints them):
 *   {"event":"process","pid":P,"version":"3.11.7","exe":"...","binary":"...",
 *    "note":null}
 *   {"event":"thread","tid":T,"name":"MainThread","state":"holding GIL",
 *    "truncated":0,"error":null,"frames":[
 *      {"kind":"python","file":"/x.py","line":12,"func":"main","source":"f()",
 *       "locals":[{"name":"x","repr":"1"}]},
 *      {"kind":"native","file":null,"line":0,"func":"take_gil",
 *       "library":"libpython3.11.so.1.0","pc":"0x7f..."}]}
 */
#include "stack.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>

#include "agentlink.h"
#include "commands.h"
#include "proc.h"
#include "py/codecache.h"
#include "py/object.h"
#include "source.h"
#include "unwind.h"

#define MAX_INTERPRETERS 64
#define MAX_THREADS	 4096
/* Frames counted (not decoded) past the limit, to say how much was cut. */
#define MAX_COUNTED_FRAMES 1000000
#define MAX_LOCALS	   256

/*
 * co_flags of code that can suspend (CO_GENERATOR, CO_COROUTINE,
 * CO_ITERABLE_COROUTINE, CO_ASYNC_GENERATOR): the same values in 3.6-3.13.
 */
#define CO_SUSPENDABLE (0x20 | 0x80 | 0x100 | 0x200)

/* CO_FAST_* kinds of co_localspluskinds (3.11+). */
#define CO_FAST_CELL 0x40
#define CO_FAST_FREE 0x80

struct walker {
	const struct fp_python *py;
	const struct fp_layout *l;
	const struct fp_mem *mem; /* through the page cache */
	struct fp_mem_cache *cache;
	struct fp_pyctx ctx;
	unsigned flags;
	struct fp_codecache codes;
};

/* Small set of frame addresses: a frame seen twice means a cycle. */
struct addr_set {
	uint64_t *v;
	size_t cap, n;
};

static bool set_add(struct addr_set *s, uint64_t a)
{
	if (s->n * 2 >= s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 128;
		uint64_t *nv = calloc(ncap, sizeof(*nv));
		if (!nv)
			return false;
		for (size_t i = 0; i < s->cap; i++) {
			if (!s->v[i])
				continue;
			size_t j = fp_hash64(s->v[i]) & (ncap - 1);
			while (nv[j])
				j = (j + 1) & (ncap - 1);
			nv[j] = s->v[i];
		}
		free(s->v);
		s->v = nv;
		s->cap = ncap;
	}
	size_t j = fp_hash64(a) & (s->cap - 1);
	while (s->v[j]) {
		if (s->v[j] == a)
			return false;
		j = (j + 1) & (s->cap - 1);
	}
	s->v[j] = a;
	s->n++;
	return true;
}

void fp_frame_free(struct fp_frame *f)
{
	free(f->file);
	free(f->func);
	free(f->library);
	for (size_t i = 0; i < f->nlocals; i++) {
		free(f->locals[i].name);
		free(f->locals[i].repr);
	}
	free(f->locals);
	memset(f, 0, sizeof(*f));
}

static void thread_clear_frames(struct fp_thread *t)
{
	for (size_t i = 0; i < t->nframes; i++)
		fp_frame_free(&t->frames[i]);
	free(t->frames);
	t->frames = NULL;
	t->nframes = 0;
	t->truncated = 0;
}

static void read_locals(struct walker *w, const struct fp_code_info *ci, uint64_t base,
			struct fp_frame *f)
{
	size_t n = ci->nnames;
	if (!n)
		return;
	uint64_t vals[MAX_LOCALS];
	if (fp_mem_read(w->mem, base, vals, n * sizeof(uint64_t)) != 0)
		return;
	f->locals = calloc(n, sizeof(*f->locals));
	if (!f->locals)
		return;
	for (size_t i = 0; i < n; i++) {
		uint64_t v = vals[i];
		if (!v)
			continue; /* unbound */
		bool cell = ci->kinds ? (ci->kinds[i] & (CO_FAST_CELL | CO_FAST_FREE)) != 0
				      : i >= ci->ncells;
		if (cell) {
			/* A cell holds the variable; MAKE_CELL may not have run yet. */
			char tn[16];
			uint64_t inner;
			if (fp_py_type_name(&w->ctx, v, tn, sizeof(tn)) == 0 &&
			    strcmp(tn, "cell") == 0) {
				if (fp_mem_read_u64(w->mem, v + 16, &inner) != 0 || !inner)
					continue;
				v = inner;
			}
		}
		char repr[128];
		if (fp_py_repr(&w->ctx, v, repr, sizeof(repr)) < 0)
			snprintf(repr, sizeof(repr), "<unreadable at 0x%llx>",
				 (unsigned long long)v);
		f->locals[f->nlocals].name = strdup(ci->names[i]);
		f->locals[f->nlocals].repr = strdup(repr);
		f->nlocals++;
	}
}

/* One frame of the chain, decoded from its fixed part. */
struct raw_frame {
	uint64_t code;
	uint64_t next;
	int64_t lasti; /* byte offset of the current instruction, < 0 before the first */
	uint64_t locals;
	bool entry;
	bool shim;	/* 3.12+: the C-stack marker frame pushed by each eval-loop entry */
	bool generator; /* 3.11+: owned by a generator or coroutine */
};

static int read_raw_frame(struct walker *w, uint64_t addr, struct raw_frame *rf)
{
	const struct fp_layout *l = w->l;
	uint8_t blob[256];
	memset(rf, 0, sizeof(*rf));
	if (l->frame_model == FP_FRAMES_OBJECT) {
		int32_t m = l->fo_back > l->fo_code ? l->fo_back : l->fo_code;
		size_t sz = (size_t)(m > l->fo_lasti ? m : l->fo_lasti) + 8;
		if (sz > sizeof(blob) || fp_mem_read(w->mem, addr, blob, sz) != 0)
			return -1;
		rf->next = fp_blob_u64(blob, l->fo_back);
		rf->code = fp_blob_u64(blob, l->fo_code);
		int64_t lasti = fp_blob_i32(blob, l->fo_lasti);
		/* 3.10 counts f_lasti in code units, older versions in bytes. */
		rf->lasti = (l->linetable == FP_LINES_310 && lasti >= 0) ? lasti * 2 : lasti;
		rf->locals = addr + (uint64_t)l->fo_localsplus;
		rf->entry = true;
		return 0;
	}
	size_t sz = (size_t)l->if_size;
	if (sz > sizeof(blob) || fp_mem_read(w->mem, addr, blob, sz) != 0)
		return -1;
	rf->next = fp_blob_u64(blob, l->if_previous);
	rf->code = fp_blob_u64(blob, l->if_code);
	if (l->owner_cstack != FP_NO_FIELD && blob[l->if_owner] == (uint8_t)l->owner_cstack) {
		rf->shim = true;
		return 0;
	}
	if (l->if_is_entry != FP_NO_FIELD)
		rf->entry = blob[l->if_is_entry] != 0;
	if (l->owner_generator != FP_NO_FIELD && l->if_owner != FP_NO_FIELD)
		rf->generator = blob[l->if_owner] == (uint8_t)l->owner_generator;
	uint64_t instr = fp_blob_u64(blob, l->if_instr);
	uint64_t start = rf->code + (uint64_t)l->co_code_adaptive;
	rf->lasti = instr >= start ? (int64_t)(instr - start) : -1;
	rf->locals = addr + (uint64_t)l->if_localsplus;
	return 0;
}

static uint64_t top_frame(struct walker *w, const uint8_t *ts)
{
	const struct fp_layout *l = w->l;
	uint64_t f = 0;
	switch (l->frame_model) {
	case FP_FRAMES_OBJECT:
		f = fp_blob_u64(ts, l->ts_frame);
		break;
	case FP_FRAMES_CFRAME: {
		uint64_t cframe = fp_blob_u64(ts, l->ts_cframe);
		if (!cframe ||
		    fp_mem_read_u64(w->mem, cframe + (uint64_t)l->cframe_current_frame, &f) != 0)
			f = 0;
		break;
	}
	case FP_FRAMES_CURRENT:
		f = fp_blob_u64(ts, l->ts_current_frame);
		break;
	}
	return f;
}

/*
 * 3.11, 3.12: a thread inside the eval loop (its cframe is not the root one)
 * whose current frame reads NULL is between two frames: an entry into the
 * eval loop that has pushed its cframe but not yet set its frame, or a
 * return that has not yet popped it.  Read now, it would show no Python
 * frame at all.
 */
static bool between_frames(struct walker *w, uint64_t tstate, const uint8_t *ts)
{
	const struct fp_layout *l = w->l;
	if (l->frame_model != FP_FRAMES_CFRAME || l->ts_root_cframe == FP_NO_FIELD)
		return false;
	uint64_t cframe = fp_blob_u64(ts, l->ts_cframe);
	return cframe && cframe != tstate + (uint64_t)l->ts_root_cframe && !top_frame(w, ts);
}

static int append_frame(struct fp_thread *t, size_t *cap, struct fp_frame *f)
{
	if (t->nframes == *cap) {
		size_t ncap = *cap ? *cap * 2 : 32;
		struct fp_frame *nv = realloc(t->frames, ncap * sizeof(*nv));
		if (!nv)
			return -1;
		t->frames = nv;
		*cap = ncap;
	}
	t->frames[t->nframes++] = *f;
	return 0;
}

/*
 * Walks one thread's frames from the top.  Returns 0 when the chain ended
 * cleanly, -1 when it was torn (a failed read, a non-code object, a cycle).
 */
static int walk_frames(struct walker *w, uint64_t frame, struct fp_thread *t)
{
	struct addr_set seen = {0};
	size_t cap = 0;
	int rc = 0;
	struct fp_frame *last_py = NULL;
	bool last_generator = false;
	size_t count = 0;
	while (frame && count < MAX_COUNTED_FRAMES) {
		if (!set_add(&seen, frame)) {
			rc = -1;
			break;
		}
		struct raw_frame rf;
		if (read_raw_frame(w, frame, &rf) != 0) {
			rc = -1;
			break;
		}
		if (rf.shim) {
			/* The frame above a shim was entered from C. */
			if (last_py)
				last_py->entry = true;
			frame = rf.next;
			continue;
		}
		count++;
		if (t->nframes >= FP_STACK_MAX_FRAMES) {
			t->truncated++;
			frame = rf.next;
			continue;
		}
		const struct fp_code_info *ci = fp_codecache_get(&w->codes, rf.code);
		if (!ci) {
			rc = -1;
			break;
		}
		struct fp_frame f = {.kind = FP_FRAME_PY, .addr = frame, .entry = rf.entry};
		f.file = strdup(ci->file);
		f.func = strdup(ci->func);
		f.line = fp_codecache_line(&w->codes, ci, rf.lasti);
		if (w->flags & FP_STACK_LOCALS)
			read_locals(w, ci, rf.locals, &f);
		if (append_frame(t, &cap, &f) != 0) {
			fp_frame_free(&f);
			rc = -1;
			break;
		}
		last_py = &t->frames[t->nframes - 1];
		last_generator = rf.generator || (ci->flags & CO_SUSPENDABLE) != 0;
		frame = rf.next;
	}
	/*
	 * A generator or coroutine frame always has its caller below it while it
	 * runs, and loses the link when it suspends: a walk that ends there read
	 * it just as it suspended, and the thread's outer frames are missing.
	 */
	if (rc == 0 && last_generator && frame == 0)
		rc = -1;
	/* The outermost Python frame was necessarily entered from C. */
	if (last_py)
		last_py->entry = true;
	free(seen.v);
	return rc;
}

struct gil_info {
	uint64_t holder; /* tstate holding the GIL, 0 when free or unknown */
	uint64_t lo, hi; /* futex words of the GIL's mutex and condition variables */
};

static void read_gil(struct walker *w, uint64_t interp, struct gil_info *g)
{
	const struct fp_layout *l = w->l;
	const struct fp_python *py = w->py;
	memset(g, 0, sizeof(*g));
	uint64_t gil = py->gil, holder = 0;
	int32_t locked = 0;
	if (py->gil_last_holder) {
		/* 3.6: separate statics. */
		if (fp_mem_read_u64(w->mem, py->gil_last_holder, &holder) == 0 &&
		    fp_mem_read_i32(w->mem, py->gil_locked, &locked) == 0 && locked)
			g->holder = holder;
	} else {
		if (l->interp_gil_ptr != FP_NO_FIELD &&
		    fp_mem_read_u64(w->mem, interp + (uint64_t)l->interp_gil_ptr, &gil) != 0)
			gil = 0;
		if (gil &&
		    fp_mem_read_u64(w->mem, gil + (uint64_t)l->gil_last_holder, &holder) == 0 &&
		    fp_mem_read_i32(w->mem, gil + (uint64_t)l->gil_locked, &locked) == 0 && locked)
			g->holder = holder;
	}
	if (gil && l->gil_size > 0) {
		g->lo = gil;
		g->hi = gil + (uint64_t)l->gil_size;
	}
}

static const char *thread_state(pid_t pid, const struct fp_task *task, bool holds_gil,
				const struct gil_info *g)
{
	if (holds_gil)
		return "holding GIL";
	if (!task)
		return "unknown";
	struct fp_syscall sc;
	if (fp_proc_syscall(pid, task->tid, &sc) == 0) {
		if (sc.nr == -1)
			return "running";
		/*
		 * A timed futex wait interrupted by a ptrace stop (stack --native) resumes
		 * as restart_syscall with its registers, so its first argument is still
		 * the futex word.
		 */
		if ((sc.nr == SYS_futex || sc.nr == SYS_restart_syscall) && sc.args[0] >= g->lo &&
		    sc.args[0] < g->hi)
			return "waiting for GIL";
		switch (sc.nr) {
		case SYS_nanosleep:
		case SYS_clock_nanosleep:
		case SYS_select:
		case SYS_pselect6:
			return "sleeping";
		}
		if (sc.nr >= 0)
			return "idle";
	}
	return task->state == 'R' ? "running" : "idle";
}

/*
 * Consistent reads of a target that keeps changing: one mechanism for the
 * whole dump.
 *
 * A dump is read in rounds, at most SNAPSHOT_TRIES.  Each round walks the
 * interpreters' thread lists afresh, then lists the process's tasks, reads
 * the thread names and identifies every thread state; what it reads gets a
 * verdict:
 *   - the list walk: torn when a thread state cannot be read, comes twice,
 *     or does not link back (its prev is not the state we came from, or its
 *     interp is not the interpreter): the memory of a state freed meanwhile,
 *     or a state unlinked while we stood on it.  A walk whose every state
 *     links back has visited every thread that lived all along: threads are
 *     only ever inserted at the head and a next pointer never skips a live
 *     state.
 *   - each thread's identity: its kernel tid must be one of the process's
 *     tasks (listed after the walk, so a thread seen on the list and alive
 *     throughout is among them) and unique within its interpreter; a tid of
 *     0, negative, or of no task is a thread being born or dying.
 *   - each thread's frames: the walk must end cleanly (walk_frames).
 *   - the names: threading's dicts must have been read whole.
 * Anything torn makes another round, after a pause that doubles each time
 * (the change under way gets time to finish).  What a round read cleanly is
 * kept: a thread whose identity and frames were clean carries its frames into
 * the next round if it is still there, so only the torn parts are read again.
 * Whatever is still torn after the last round is said, never hidden: a thread
 * whose frames stayed torn gets its `error`, threads that could not be
 * identified are left out and counted in the dump's `note`, and so is a list
 * that never read whole.
 */
#define SNAPSHOT_TRIES	8
#define RETRY_PAUSE_US	50
#define MAX_THREAD_NAME 64

/* Python thread names of one interpreter (fp_py_threads). */
struct name_map {
	struct {
		uint64_t ident;
		int64_t native_id;
		char name[MAX_THREAD_NAME];
	} * v;
	size_t n, cap;
};

static void collect_name(void *arg, uint64_t ident, int64_t native_id, const char *name)
{
	struct name_map *m = arg;
	if (m->n == m->cap) {
		size_t ncap = m->cap ? m->cap * 2 : 32;
		void *nv = realloc(m->v, ncap * sizeof(*m->v));
		if (!nv)
			return;
		m->v = nv;
		m->cap = ncap;
	}
	m->v[m->n].ident = ident;
	m->v[m->n].native_id = native_id;
	snprintf(m->v[m->n].name, sizeof(m->v[0].name), "%s", name);
	m->n++;
}

/*
 * The name threading gives the thread, or NULL.  An entry for the same ident
 * whose thread recorded another kernel tid belongs to an earlier thread whose
 * pthread_t this one reuses (threading never removes a _DummyThread).  _active
 * comes after _limbo, so the last match is the current one.
 */
static const char *name_of(const struct name_map *m, uint64_t ident, pid_t nstid)
{
	const char *found = NULL;
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].ident == ident && (!m->v[i].native_id || m->v[i].native_id == nstid))
			found = m->v[i].name;
	return found;
}

static const struct fp_task *find_task(const struct fp_task *tasks, size_t ntasks, pid_t nstid)
{
	for (size_t i = 0; i < ntasks; i++)
		if (tasks[i].nstid == nstid)
			return &tasks[i];
	return NULL;
}

/* One thread state as the walk found it. */
struct tsref {
	uint64_t addr;
	uint32_t in; /* index of its interpreter in round.interps */
	/*
	 * <= 3.10: the tid in the struct pthread of its thread_id, read right
	 * after the state itself: a struct pthread is reused by the next thread
	 * as soon as its thread exits, which under churn is soon.
	 */
	int32_t pthread_tid;
};

/* The thread states of one round, copied out as the lists were walked. */
struct round {
	uint64_t interps[MAX_INTERPRETERS];
	size_t ninterps;
	struct tsref *ts; /* oldest first per interpreter */
	uint8_t *blobs;	  /* each one's first tsz bytes */
	size_t n, cap;
	const char *torn; /* why the walk cannot be trusted; NULL when it can */
	bool capped;	  /* MAX_THREADS reached */
	struct addr_set seen;
};

static void round_free(struct round *rd)
{
	free(rd->ts);
	free(rd->blobs);
	free(rd->seen.v);
}

static int round_grow(struct round *rd, size_t tsz)
{
	if (rd->n < rd->cap)
		return 0;
	size_t ncap = rd->cap ? rd->cap * 2 : 32;
	struct tsref *ts = realloc(rd->ts, ncap * sizeof(*ts));
	if (!ts)
		return -1;
	rd->ts = ts;
	uint8_t *blobs = realloc(rd->blobs, ncap * tsz);
	if (!blobs)
		return -1;
	rd->blobs = blobs;
	rd->cap = ncap;
	return 0;
}

/*
 * struct _ts has begun with `prev, next` in every version fpd reads (3.6 to
 * 3.13), so prev is the pointer before next.
 */
static int32_t ts_prev(const struct fp_layout *l)
{
	return l->ts_next - (int32_t)sizeof(uint64_t);
}

/*
 * Walks every interpreter's thread list (newest first in memory) into rd,
 * each state read straight from the target, not through the page cache, so
 * that its links are those of one moment.  -1 only when the first pointer,
 * the runtime's interpreter list, cannot be read: the process is gone.
 */
static int walk_lists(struct walker *w, const struct fp_mem *raw, size_t tsz, struct round *rd,
		      char *err, size_t errlen)
{
	const struct fp_layout *l = w->l;
	rd->ninterps = rd->n = 0;
	rd->torn = NULL;
	rd->capped = false;
	if (rd->seen.v)
		memset(rd->seen.v, 0, rd->seen.cap * sizeof(*rd->seen.v));
	rd->seen.n = 0;
	uint64_t interp = 0;
	if (fp_mem_read_u64(raw, w->py->runtime + (uint64_t)l->runtime_interpreters_head,
			    &interp)) {
		snprintf(err, errlen, "reading the interpreter list of process %d failed",
			 (int)w->py->pid);
		return -1;
	}
	while (interp && rd->ninterps < MAX_INTERPRETERS && !rd->torn && !rd->capped) {
		uint32_t idx = (uint32_t)rd->ninterps;
		rd->interps[rd->ninterps++] = interp;
		size_t first = rd->n;
		uint64_t ts = 0, prev = 0;
		if (fp_mem_read_u64(raw, interp + (uint64_t)l->interp_threads_head, &ts) != 0)
			rd->torn = "an interpreter could not be read";
		while (ts && !rd->torn) {
			if (rd->n == MAX_THREADS) {
				rd->capped = true;
				break;
			}
			if (round_grow(rd, tsz) != 0) {
				rd->torn = "out of memory";
				break;
			}
			uint8_t *blob = rd->blobs + rd->n * tsz;
			if (!set_add(&rd->seen, ts))
				rd->torn = "a thread state came twice";
			else if (fp_mem_read(raw, ts, blob, tsz) != 0)
				rd->torn = "a thread state could not be read";
			else if (fp_blob_u64(blob, ts_prev(l)) != prev ||
				 fp_blob_u64(blob, l->ts_interp) != interp)
				rd->torn = "a thread state was unlinked or freed as it was read";
			if (rd->torn)
				break;
			struct tsref *ref = &rd->ts[rd->n++];
			*ref = (struct tsref){.addr = ts, .in = idx};
			uint64_t ident = fp_blob_u64(blob, l->ts_thread_id);
			if (l->ts_native_thread_id == FP_NO_FIELD && w->py->pthread_tid_off &&
			    ident &&
			    fp_mem_read_i32(raw, ident + w->py->pthread_tid_off,
					    &ref->pthread_tid) != 0)
				ref->pthread_tid = 0;
			prev = ts;
			ts = fp_blob_u64(blob, l->ts_next);
		}
		/* A traceback reader expects the main thread, the oldest, first. */
		for (size_t i = first, j = rd->n; i + 1 < j; i++, j--) {
			struct tsref a = rd->ts[i];
			rd->ts[i] = rd->ts[j - 1];
			rd->ts[j - 1] = a;
			uint8_t tmp[1024];
			memcpy(tmp, rd->blobs + i * tsz, tsz);
			memcpy(rd->blobs + i * tsz, rd->blobs + (j - 1) * tsz, tsz);
			memcpy(rd->blobs + (j - 1) * tsz, tmp, tsz);
		}
		if (!rd->torn && !rd->capped &&
		    fp_mem_read_u64(raw, interp + (uint64_t)l->interp_next, &interp) != 0)
			rd->torn = "the interpreter list could not be read";
	}
	return 0;
}

enum identity {
	ID_OK,
	ID_NOT_STARTED, /* 3.12+: a state made for a thread that has not run yet (no ident) */
	ID_UNKNOWN,	/* being born or dying: no tid of a live task yet or any more */
};

/* The process's tasks; not listed when /proc could not tell. */
struct tasks {
	struct fp_task *v;
	size_t n;
	bool listed;
};

/* Who the thread of a state is: ident, tids, and its task in tasks. */

static enum identity identify(struct walker *w, const uint8_t *blob, int32_t pthread_tid,
			      const struct tasks *tasks, struct fp_thread *t,
			      const struct fp_task **task)
{
	const struct fp_layout *l = w->l;
	*task = NULL;
	t->ident = fp_blob_u64(blob, l->ts_thread_id);
	if (!t->ident)
		return top_frame(w, blob) ? ID_UNKNOWN : ID_NOT_STARTED;
	if (l->ts_native_thread_id != FP_NO_FIELD) {
		t->nstid = (pid_t)fp_blob_i64(blob, l->ts_native_thread_id);
	} else if (w->py->pthread_tid_off) {
		t->nstid = pthread_tid;
	} else {
		return ID_OK; /* no way to the tid: the dump's note says so */
	}
	if (t->nstid <= 0)
		return ID_UNKNOWN;
	if (!tasks->listed) {
		t->tid = t->nstid; /* unchecked: the dump's note says so */
		return ID_OK;
	}
	if (!(*task = find_task(tasks->v, tasks->n, t->nstid)))
		return ID_UNKNOWN;
	t->tid = (*task)->tid;
	return ID_OK;
}

/* What a dump read so far holds, across rounds. */
struct dump {
	struct fp_stack st;
	size_t cap;
	size_t unknown;	  /* thread states left out: no live task could be tied to them */
	bool unlisted;	  /* the process's tasks could not be listed: tids unchecked */
	const char *torn; /* the list walk of the round it comes from was torn */
	bool capped;
	size_t unnamed; /* threads shown by their kernel name: threading's could not be read */
};

static int add_thread(struct fp_stack *s, size_t *cap)
{
	if (s->nthreads == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct fp_thread *nv = realloc(s->threads, ncap * sizeof(*nv));
		if (!nv)
			return -1;
		s->threads = nv;
		*cap = ncap;
	}
	memset(&s->threads[s->nthreads++], 0, sizeof(struct fp_thread));
	return 0;
}

/*
 * The name threading gave the same thread (same state, ident and tid) in an
 * earlier round, for a round whose read of threading's registry was torn:
 * a thread keeps its name, and under churn the registry may be changing at
 * every round.
 */
static const char *earlier_name(const struct dump *old, const struct fp_thread *t)
{
	for (size_t i = 0; i < old->st.nthreads; i++) {
		const struct fp_thread *o = &old->st.threads[i];
		if (o->named && o->tstate == t->tstate && o->ident == t->ident &&
		    o->nstid == t->nstid)
			return o->name;
	}
	return NULL;
}

/*
 * Takes the frames of the same thread from the previous round when they were
 * read cleanly there: same state, same thread, and no error.
 */
static bool carry_frames(struct dump *old, struct fp_thread *t)
{
	for (size_t i = 0; i < old->st.nthreads; i++) {
		struct fp_thread *o = &old->st.threads[i];
		if (o->tstate != t->tstate || o->ident != t->ident || o->nstid != t->nstid ||
		    o->error)
			continue;
		t->frames = o->frames;
		t->nframes = o->nframes;
		t->truncated = o->truncated;
		o->frames = NULL;
		o->nframes = 0;
		return true;
	}
	return false;
}

/*
 * The thread already read in this interpreter with the same tid as t, or
 * SIZE_MAX.  Another interpreter may hold a state of the same thread, but
 * within one a tid twice is either a thread not started yet or a dead
 * thread's state: up to 3.11 the thread that starts another makes the new
 * thread's state itself (_PyThreadState_Prealloc), under its own ident and
 * tid, and the new thread takes it over only once it runs.  Such a state has
 * no frame; the starting thread, in Thread.start(), has some.
 */
static size_t twin_of(const struct fp_stack *s, size_t first, const struct fp_thread *t)
{
	for (size_t j = first; t->nstid && j < s->nthreads; j++)
		if (s->threads[j].nstid == t->nstid)
			return j;
	return SIZE_MAX;
}

/*
 * One round: the threads of rd, identified against the tasks listed now,
 * named, and with their frames (carried from old or walked).  Returns true
 * when everything in it was clean.
 */
static bool read_round(struct walker *w, const struct round *rd, size_t tsz, struct dump *old,
		       struct dump *out)
{
	bool clean = !rd->torn;
	struct name_map names[MAX_INTERPRETERS];
	struct gil_info gils[MAX_INTERPRETERS];
	bool names_torn[MAX_INTERPRETERS] = {false};
	memset(names, 0, sizeof(names));
	for (size_t i = 0; i < rd->ninterps; i++) {
		read_gil(w, rd->interps[i], &gils[i]);
		int r = fp_py_threads(&w->ctx, rd->interps[i], collect_name, &names[i]);
		if (r < 0 && r != -ENOTSUP) {
			clean = false;
			names_torn[i] = true;
		}
	}
	/*
	 * The tasks after the names: a thread still alive now was alive when its
	 * name was read, so its pthread_t was not yet reused by a thread that
	 * found its name there (name_of).
	 */
	struct tasks tasks = {0};
	tasks.listed = fp_proc_tasks(w->py->pid, &tasks.v, &tasks.n) == 0;
	out->unlisted = !tasks.listed;
	size_t first_of_interp = 0;
	for (size_t i = 0; i < rd->n; i++) {
		const uint8_t *blob = rd->blobs + i * tsz;
		uint32_t in = rd->ts[i].in;
		if (i == 0 || rd->ts[i - 1].in != in)
			first_of_interp = out->st.nthreads;
		struct fp_thread t = {.tstate = rd->ts[i].addr};
		const struct fp_task *task;
		enum identity id = identify(w, blob, rd->ts[i].pthread_tid, &tasks, &t, &task);
		if (id == ID_NOT_STARTED)
			continue;
		size_t twin = twin_of(&out->st, first_of_interp, &t);
		if (id == ID_OK && twin < out->st.nthreads) {
			struct fp_thread *o = &out->st.threads[twin];
			if (!top_frame(w, blob))
				continue;
			if (o->nframes || o->error) {
				id = ID_UNKNOWN;
			} else {
				thread_clear_frames(o);
				memmove(o, o + 1, (out->st.nthreads - twin - 1) * sizeof(*o));
				out->st.nthreads--;
			}
		}
		if (id != ID_OK || add_thread(&out->st, &out->cap) != 0) {
			out->unknown++;
			clean = false;
			continue;
		}
		const char *name = name_of(&names[in], t.ident, t.nstid);
		if (!name && names_torn[in]) {
			name = earlier_name(old, &t);
			if (!name)
				out->unnamed++;
		}
		t.named = name != NULL;
		snprintf(t.name, sizeof(t.name), "%s", name ? name : task ? task->comm : "?");
		t.state = thread_state(w->py->pid, task, gils[in].holder == t.tstate, &gils[in]);
		if (!carry_frames(old, &t)) {
			fp_mem_cache_reset(w->cache);
			if (between_frames(w, t.tstate, blob) ||
			    walk_frames(w, top_frame(w, blob), &t) != 0) {
				char msg[128];
				snprintf(msg, sizeof(msg),
					 "the stack kept changing while it was read; showing the "
					 "%zu innermost frames read",
					 t.nframes);
				t.error = strdup(msg);
				clean = false;
			}
		}
		out->st.threads[out->st.nthreads - 1] = t;
	}
	for (size_t i = 0; i < rd->ninterps; i++)
		free(names[i].v);
	free(tasks.v);
	out->torn = rd->torn;
	out->capped = rd->capped;
	return clean;
}

static void dump_note(struct fp_stack *s, const struct dump *d, bool tids_known)
{
	char note[512] = "";
	size_t n = 0;
	if (d->torn)
		n += (size_t)snprintf(note + n, sizeof(note) - n,
				      "%sthe thread list kept changing while it was read (%s, %d "
				      "tries): threads older than the ones shown may be missing",
				      n ? "; " : "", d->torn, SNAPSHOT_TRIES);
	if (d->unknown && n < sizeof(note))
		n += (size_t)snprintf(note + n, sizeof(note) - n,
				      "%s%zu thread state%s could not be tied to a live thread of "
				      "the process (%d tries: a thread starting or ending, or a "
				      "state left by one that ended) and %s not shown",
				      n ? "; " : "", d->unknown, d->unknown == 1 ? "" : "s",
				      SNAPSHOT_TRIES, d->unknown == 1 ? "is" : "are");
	if (d->unnamed && n < sizeof(note))
		n +=
		    (size_t)snprintf(note + n, sizeof(note) - n,
				     "%sthreading's names kept changing while they were read (%d "
				     "tries): %zu thread%s shown by %s kernel name",
				     n ? "; " : "", SNAPSHOT_TRIES, d->unnamed,
				     d->unnamed == 1 ? "" : "s", d->unnamed == 1 ? "its" : "their");
	if (d->capped && n < sizeof(note))
		n += (size_t)snprintf(note + n, sizeof(note) - n,
				      "%smore than %d threads: only the first %d are shown",
				      n ? "; " : "", MAX_THREADS, MAX_THREADS);
	if (d->unlisted && n < sizeof(note))
		n +=
		    (size_t)snprintf(note + n, sizeof(note) - n,
				     "%sthe threads of the process could not be listed: thread ids "
				     "are the interpreter's, unchecked",
				     n ? "; " : "");
	if (!tids_known && n < sizeof(note))
		n += (size_t)snprintf(note + n, sizeof(note) - n,
				      "%sthe kernel thread ids cannot be found in this process (no "
				      "glibc thread descriptor): they show as 0",
				      n ? "; " : "");
	if (n)
		s->note = strdup(note);
}

static int ts_blob_size(const struct fp_layout *l)
{
	int32_t offs[] = {l->ts_next,	       l->ts_interp,	l->ts_frame,	       l->ts_cframe,
			  l->ts_current_frame, l->ts_thread_id, l->ts_native_thread_id};
	int32_t m = 0;
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++)
		if (offs[i] > m)
			m = offs[i];
	return m + 8;
}

static void pause_before(int attempt)
{
	struct timespec ts = {0, (long)RETRY_PAUSE_US * 1000L << (attempt - 1)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int fp_stack_read(const struct fp_python *py, const struct fp_mem *mem, unsigned flags,
		  struct fp_stack *out, char *err, size_t errlen)
{
	struct fp_mem_cache cache;
	struct fp_mem cached;
	memset(out, 0, sizeof(*out));
	const struct fp_layout *l = &py->layout;
	int tsz = ts_blob_size(l);
	if (tsz > 1024 || ts_prev(l) < 0) {
		snprintf(err, errlen, "thread state layout out of range");
		return -1;
	}
	if (fp_mem_cache_init(&cached, &cache, mem) != 0) {
		snprintf(err, errlen, "out of memory for the page cache");
		return -1;
	}
	struct walker w = {.py = py, .l = l, .mem = &cached, .cache = &cache, .flags = flags};
	w.ctx.mem = &cached;
	w.ctx.l = l;
	fp_codecache_init(&w.codes, py, &cached, (flags & FP_STACK_LOCALS) != 0);

	struct round rd = {0};
	struct dump best = {0};
	bool have = false;
	int rc = 0;
	/* A memory image (no pid: tests, fuzzers) reads the same every time. */
	int tries = py->pid > 0 ? SNAPSHOT_TRIES : 1;
	for (int attempt = 0; attempt < tries; attempt++) {
		bool last = attempt + 1 == tries;
		if (attempt)
			pause_before(attempt);
		fp_mem_cache_reset(&cache);
		if (walk_lists(&w, mem, (size_t)tsz, &rd, err, errlen) != 0) {
			rc = -1;
			break;
		}
		/* A torn list is read again; a dump from a whole one is kept over it. */
		if (rd.torn && (have || !last))
			continue;
		struct dump next = {0};
		bool clean = read_round(&w, &rd, (size_t)tsz, &best, &next);
		fp_stack_free(&best.st);
		best = next;
		have = true;
		if (clean)
			break;
	}
	round_free(&rd);
	fp_codecache_free(&w.codes);
	fp_mem_cache_free(&cache);
	if (rc) {
		fp_stack_free(&best.st);
		return rc;
	}
	*out = best.st;
	dump_note(out, &best, l->ts_native_thread_id != FP_NO_FIELD || py->pthread_tid_off);
	return 0;
}

void fp_stack_free(struct fp_stack *s)
{
	for (size_t i = 0; i < s->nthreads; i++) {
		thread_clear_frames(&s->threads[i]);
		free(s->threads[i].error);
	}
	free(s->threads);
	free(s->note);
	memset(s, 0, sizeof(*s));
}

/*
 * A JSON string for text from the target or its files, which need not be
 * UTF-8 (a source file in Latin-1, say): invalid bytes become '?' rather
 * than the whole frame being lost.  NULL gives null.
 */
static json_t *jtext(const char *s)
{
	if (!s)
		return json_null();
	json_t *j = json_string(s);
	if (j)
		return j;
	char *copy = strdup(s);
	if (!copy)
		return json_null();
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j ? j : json_null();
}

/* Built field by field: json_pack's format parsing shows in the profile of a large dump. */
static json_t *frame_json(const struct fp_frame *f, struct fp_sources *src)
{
	json_t *j = json_object();
	if (!j)
		return NULL;
	bool native = f->kind == FP_FRAME_NATIVE;
	json_object_set_new_nocheck(j, "kind", json_string_nocheck(native ? "native" : "python"));
	json_object_set_new_nocheck(j, "file", jtext(f->file));
	json_object_set_new_nocheck(j, "line", json_integer(f->line));
	json_object_set_new_nocheck(j, "func", jtext(f->func));
	if (native) {
		char pc[32];
		snprintf(pc, sizeof(pc), "0x%llx", (unsigned long long)f->pc);
		json_object_set_new_nocheck(j, "library", jtext(f->library));
		json_object_set_new_nocheck(j, "pc", json_string_nocheck(pc));
		return j;
	}
	json_object_set_new_nocheck(j, "source", jtext(fp_sources_line(src, f->file, f->line)));
	if (f->locals) {
		json_t *locals = json_array();
		for (size_t i = 0; i < f->nlocals; i++) {
			json_t *l = json_object();
			json_object_set_new_nocheck(l, "name", jtext(f->locals[i].name));
			json_object_set_new_nocheck(l, "repr", jtext(f->locals[i].repr));
			json_array_append_new(locals, l);
		}
		json_object_set_new_nocheck(j, "locals", locals);
	}
	return j;
}

static json_t *thread_json(struct fp_req *r, const struct fp_thread *t, struct fp_sources *src)
{
	json_t *ev = fp_msg_event(r->id, "thread");
	json_object_set_new(ev, "tid", json_integer(t->tid));
	json_object_set_new(ev, "name", jtext(t->name));
	json_object_set_new(ev, "state", json_string(t->state));
	json_object_set_new(ev, "truncated", json_integer((json_int_t)t->truncated));
	json_object_set_new(ev, "error", t->error ? json_string(t->error) : json_null());
	json_t *frames = json_array();
	for (size_t i = t->nframes; i-- > 0;)
		json_array_append_new(frames, frame_json(&t->frames[i], src));
	json_object_set_new(ev, "frames", frames);
	return ev;
}

struct reread {
	const struct fp_python *py;
	const struct fp_mem *mem;
	unsigned flags;
	struct fp_stack *s;
};

static void reread_stopped(void *arg)
{
	struct reread *re = arg;
	struct fp_stack fresh;
	char err[256];
	/* Should this read fail, the first one stands: still a useful answer. */
	if (fp_stack_read(re->py, re->mem, re->flags, &fresh, err, sizeof(err)) != 0)
		return;
	fp_stack_free(re->s);
	*re->s = fresh;
}

int fp_cmd_stack(struct fp_req *r)
{
	/* Tasks are Python objects best walked by the interpreter itself: the helper does it. */
	if (fp_req_flag(r, "async"))
		return fp_agent_forward(r, "stack_async");
	struct fp_python py;
	if (fp_req_python(r, &py))
		return -1;
	unsigned flags = 0;
	if (fp_req_flag(r, "locals"))
		flags |= FP_STACK_LOCALS;
	if (fp_req_flag(r, "native"))
		flags |= FP_STACK_NATIVE;

	struct fp_mem_proc mp;
	struct fp_mem mem;
	fp_mem_proc_init(&mem, &mp, r->pid);
	struct fp_stack s;
	char err[512] = "";
	int rc = fp_stack_read(&py, &mem, flags, &s, err, sizeof(err));
	if (rc == 0 && (flags & FP_STACK_NATIVE)) {
		/* The first read names the threads to stop; the second is taken while they are. */
		struct reread re = {.py = &py, .mem = &mem, .flags = flags, .s = &s};
		fp_ptrace_lock();
		rc = fp_unwind_stack(r->pid, &s, reread_stopped, &re, err, sizeof(err));
		fp_ptrace_unlock();
		if (rc)
			fp_stack_free(&s);
	}
	fp_mem_proc_close(&mp);
	if (rc)
		return fp_req_fail(r, "read", FP_EXIT_CMD, "%s", err);

	struct fp_proc_info info;
	fp_proc_info(r->pid, &info);
	json_t *ev = fp_msg_event(r->id, "process");
	json_object_set_new(ev, "pid", json_integer(r->pid));
	json_object_set_new(ev, "version", json_string(py.version));
	json_object_set_new(ev, "exe", json_string(info.exe));
	json_object_set_new(ev, "binary", json_string(py.binary));
	json_object_set_new(ev, "note", s.note ? json_string(s.note) : json_null());
	rc = fp_req_emit(r, ev);
	struct fp_sources *src = fp_sources_new(r->pid, r->uid, r->gid);
	for (size_t i = 0; i < s.nthreads && rc == 0; i++)
		rc = fp_req_emit(r, thread_json(r, &s.threads[i], src));
	fp_sources_free(src);
	fp_stack_free(&s);
	return rc;
}
