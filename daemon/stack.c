/*
 * `stack`: every thread's Python stack, read from outside with
 * process_vm_readv while the target keeps running.
 *
 * The target changes under us, so every walk is bounded, every frame's code
 * object is checked to really be a code object, a frame seen twice ends the
 * walk as a cycle, and a walk that fails is retried from the thread's current
 * top frame rather than followed into garbage.
 *
 * Events (frames outermost first, as a traceback prints them):
 *   {"event":"process","pid":P,"version":"3.11.7","exe":"...","binary":"..."}
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

#include "agentlink.h"
#include "commands.h"
#include "proc.h"
#include "py/codecache.h"
#include "py/object.h"
#include "source.h"
#include "unwind.h"

#define MAX_INTERPRETERS 64
#define MAX_THREADS	 4096
#define WALK_RETRIES	 3
/* Frames counted (not decoded) past the limit, to say how much was cut. */
#define MAX_COUNTED_FRAMES 1000000
#define MAX_LOCALS	   256

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
	bool shim; /* 3.12+: the C-stack marker frame pushed by each eval-loop entry */
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
		frame = rf.next;
	}
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

struct name_map {
	uint64_t *idents;
	char (*names)[64];
	size_t n, cap;
};

static void collect_name(void *arg, uint64_t ident, const char *name)
{
	struct name_map *m = arg;
	if (m->n == m->cap) {
		size_t ncap = m->cap ? m->cap * 2 : 32;
		uint64_t *ni = realloc(m->idents, ncap * sizeof(*ni));
		if (!ni)
			return;
		m->idents = ni;
		char(*nn)[64] = realloc(m->names, ncap * sizeof(*nn));
		if (!nn)
			return;
		m->names = nn;
		m->cap = ncap;
	}
	m->idents[m->n] = ident;
	snprintf(m->names[m->n], sizeof(m->names[0]), "%s", name);
	m->n++;
}

static const struct fp_task *find_task(const struct fp_task *tasks, size_t ntasks, pid_t nstid)
{
	for (size_t i = 0; i < ntasks; i++)
		if (tasks[i].nstid == nstid)
			return &tasks[i];
	return NULL;
}

/* Reads one thread: identity, state and frames (retrying a torn walk). */
static void read_thread(struct walker *w, uint64_t tstate, const uint8_t *ts,
			const struct gil_info *g, const struct name_map *names,
			const struct fp_task *tasks, size_t ntasks, struct fp_thread *t)
{
	const struct fp_layout *l = w->l;
	t->tstate = tstate;
	t->ident = fp_blob_u64(ts, l->ts_thread_id);
	if (l->ts_native_thread_id != FP_NO_FIELD) {
		t->nstid = (pid_t)fp_blob_u64(ts, l->ts_native_thread_id);
	} else if (w->py->pthread_tid_off) {
		/* 3.6/3.7: the kernel tid lives in glibc's struct pthread, which ident points to.
		 */
		int32_t tid = 0;
		if (fp_mem_read_i32(w->mem, t->ident + w->py->pthread_tid_off, &tid) == 0)
			t->nstid = tid;
	}
	const struct fp_task *task = t->nstid ? find_task(tasks, ntasks, t->nstid) : NULL;
	t->tid = task ? task->tid : 0;
	for (size_t i = 0; i < names->n; i++)
		if (names->idents[i] == t->ident)
			snprintf(t->name, sizeof(t->name), "%s", names->names[i]);
	if (!t->name[0])
		snprintf(t->name, sizeof(t->name), "%s", task ? task->comm : "?");
	t->state = thread_state(w->py->pid, task, g->holder == tstate, g);

	for (int attempt = 0; attempt < WALK_RETRIES; attempt++) {
		thread_clear_frames(t);
		/* Each walk reads the thread afresh, and a retry from its current top frame. */
		fp_mem_cache_reset(w->cache);
		uint8_t fresh[1024];
		const uint8_t *cur = ts;
		if (attempt > 0 && fp_mem_read(w->mem, tstate, fresh, sizeof(fresh)) == 0)
			cur = fresh;
		if (walk_frames(w, top_frame(w, cur), t) == 0)
			return;
	}
	char msg[128];
	snprintf(msg, sizeof(msg),
		 "the stack kept changing while it was read; showing the %zu innermost frames "
		 "read",
		 t->nframes);
	t->error = strdup(msg);
}

static int ts_blob_size(const struct fp_layout *l)
{
	int32_t offs[] = {l->ts_next,	       l->ts_frame,	l->ts_cframe,
			  l->ts_current_frame, l->ts_thread_id, l->ts_native_thread_id};
	int32_t m = 0;
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++)
		if (offs[i] > m)
			m = offs[i];
	return m + 8;
}

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

int fp_stack_read(const struct fp_python *py, const struct fp_mem *mem, unsigned flags,
		  struct fp_stack *out, char *err, size_t errlen)
{
	struct fp_mem_cache cache;
	struct fp_mem cached;
	memset(out, 0, sizeof(*out));
	if (fp_mem_cache_init(&cached, &cache, mem) != 0) {
		snprintf(err, errlen, "out of memory for the page cache");
		return -1;
	}
	mem = &cached;
	struct walker w = {.py = py, .l = &py->layout, .mem = mem, .cache = &cache, .flags = flags};
	w.ctx.mem = mem;
	w.ctx.l = &py->layout;
	fp_codecache_init(&w.codes, py, mem, (flags & FP_STACK_LOCALS) != 0);
	const struct fp_layout *l = w.l;
	int tsz = ts_blob_size(l);
	if (tsz > 1024) {
		snprintf(err, errlen, "thread state layout out of range");
		return -1;
	}
	struct fp_task *tasks = NULL;
	size_t ntasks = 0;
	fp_proc_tasks(py->pid, &tasks, &ntasks);

	uint64_t interp = 0;
	if (fp_mem_read_u64(mem, py->runtime + (uint64_t)l->runtime_interpreters_head, &interp)) {
		snprintf(err, errlen, "reading the interpreter list of process %d failed",
			 (int)py->pid);
		free(tasks);
		fp_mem_cache_free(&cache);
		return -1;
	}
	size_t cap = 0;
	struct addr_set seen = {0};
	for (int ni = 0; interp && ni < MAX_INTERPRETERS; ni++) {
		struct gil_info g;
		read_gil(&w, interp, &g);
		struct name_map names = {0};
		fp_py_thread_names(&w.ctx, interp, collect_name, &names);

		/* The list is newest first; a traceback reader expects the main thread first. */
		uint64_t tstates[MAX_THREADS];
		size_t nts = 0;
		uint64_t ts = 0;
		fp_mem_read_u64(mem, interp + (uint64_t)l->interp_threads_head, &ts);
		while (ts && nts < MAX_THREADS && set_add(&seen, ts)) {
			tstates[nts++] = ts;
			if (fp_mem_read_u64(mem, ts + (uint64_t)l->ts_next, &ts) != 0)
				break;
		}
		for (size_t i = nts; i-- > 0;) {
			uint8_t blob[1024];
			if (fp_mem_read(mem, tstates[i], blob, (size_t)tsz) != 0)
				continue; /* the thread exited meanwhile */
			if (add_thread(out, &cap) != 0)
				break;
			read_thread(&w, tstates[i], blob, &g, &names, tasks, ntasks,
				    &out->threads[out->nthreads - 1]);
		}
		free(names.idents);
		free(names.names);
		if (fp_mem_read_u64(mem, interp + (uint64_t)l->interp_next, &interp) != 0)
			break;
	}
	free(seen.v);
	free(tasks);
	fp_codecache_free(&w.codes);
	fp_mem_cache_free(&cache);
	return 0;
}

void fp_stack_free(struct fp_stack *s)
{
	for (size_t i = 0; i < s->nthreads; i++) {
		thread_clear_frames(&s->threads[i]);
		free(s->threads[i].error);
	}
	free(s->threads);
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
	json_object_set_new(ev, "tid", json_integer(t->tid ? t->tid : t->nstid));
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
	rc = fp_req_emit(r, ev);
	struct fp_sources *src = fp_sources_new(r->pid, r->uid, r->gid);
	for (size_t i = 0; i < s.nthreads && rc == 0; i++)
		rc = fp_req_emit(r, thread_json(r, &s.threads[i], src));
	fp_sources_free(src);
	fp_stack_free(&s);
	return rc;
}
