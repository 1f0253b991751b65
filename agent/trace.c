/*
 * trace's hook: while one traced call runs, every Python and C call made
 * inside it (in the thread running it) is timed and folded into a call tree.
 *
 * Why a tree built while the calls happen rather than an event log: a
 * call-heavy method makes thousands of calls per call, mostly the same few
 * functions from the same places.  Folding each call into the node of its
 * path (parent node, function) costs one hash lookup and two clock reads,
 * keeps memory bounded by the number of distinct paths instead of calls, and
 * leaves almost nothing to do when the call ends.  Siblings that are the same
 * function become one node with a count: a loop calling f 1000 times is one
 * line with its total, which is what a user needs to see where time goes.
 *
 * Event sources:
 *   - legacy: PyEval_SetProfile on the calling thread only, from the traced
 *     call's start to its end (CPython 3.6-3.11, where it is per thread and
 *     costs other threads nothing).  The application's own profile function
 *     is kept: our hook is installed with the application's object (so
 *     sys.getprofile() still returns it) and calls the application's
 *     function after recording each event, so a cProfile running in that
 *     thread keeps seeing every call.  When the call ends the application's
 *     function and object are put back exactly; if the application itself
 *     changed the profiler during the call, its choice is left in place and
 *     the trace says it was cut short.
 *   - monitor: sys.monitoring events delivered to C callbacks (CPython
 *     3.12+).  There a PyEval_SetProfile hook is itself a sys.monitoring
 *     tool that turns on instrumentation for every thread, and it makes
 *     every Python call create a frame object; sys.monitoring hands the code
 *     object directly.  The events are global, so the callbacks filter on a
 *     thread-local pointer; agent/py/trace.py enables them only while some
 *     traced call runs.  The application's profilers are separate tools and
 *     are not touched at all.
 *
 * The traced function (the anchor) is recognised by its code object and,
 * once seen, its frame: a coroutine or generator re-enters the same frame
 * after every suspension, and calls that happen while it is suspended (the
 * event loop, other tasks) are not recorded.  The time it spent suspended is
 * added, as an [await] node, under the innermost call that was running when
 * it suspended, and to every node on the path to it, so that a parent always
 * costs at least as much as its children.
 *
 * Everything here runs with the GIL held.
 */
#include "trace.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define HAVE_TSC 1
#endif

#define NONE		      UINT32_MAX
#define MAX_NODES	      (1u << 17) /* distinct call paths per traced call */
#define MAX_STACK	      (1u << 20) /* nesting levels followed per traced call */
#define TPFLAGS_TYPE_SUBCLASS (1ul << 31)
/* CO_GENERATOR | CO_COROUTINE | CO_ITERABLE_COROUTINE | CO_ASYNC_GENERATOR */
#define CO_RESUMABLE 0x3a0

/* PyTrace_* (cpython/pystate.h): the profile events, stable since 2.x. */
enum {
	PYTRACE_CALL = 0,
	PYTRACE_RETURN = 3,
	PYTRACE_C_CALL = 4,
	PYTRACE_C_EXCEPTION = 5,
	PYTRACE_C_RETURN = 6
};

/*
 * Object layouts read directly, each the same in every CPython 3.6-3.14
 * release build (checked in the DWARF of pyenv's libpython 3.6-3.13):
 * ob_type, PyCFunctionObject's m_ml/m_self/m_module, PyMethodDescrObject's
 * d_type/d_method, and PyFrameObject's f_code up to 3.10 (3.9 and 3.10 have
 * PyFrame_GetCode too; the field spares a call and a reference per event).
 */
#define OB_TYPE(o)	 (*(PyObject **)((char *)(o) + 8))
#define CFUNC_ML(o)	 (*(struct PyMethodDef **)((char *)(o) + 16))
#define CFUNC_SELF(o)	 (*(PyObject **)((char *)(o) + 24))
#define CFUNC_MODULE(o)	 (*(PyObject **)((char *)(o) + 32))
#define DESCR_TYPE(o)	 (*(PyObject **)((char *)(o) + 16))
#define DESCR_METHOD(o)	 (*(struct PyMethodDef **)((char *)(o) + 40))
#define FRAME_CODE_36(f) (*(PyObject **)((char *)(f) + 32))

enum kind { K_PY, K_C, K_AWAIT };
enum mode { MODE_LEGACY, MODE_MONITOR };
enum state { S_WAIT, S_ACTIVE };

struct node {
	const void *a, *b; /* identity: code, or (PyMethodDef *, owner) */
	PyObject *ref;	   /* strong: the code, or what names the C function's owner */
	PyObject *name;	   /* strong, C functions: the name */
	uint64_t total;	   /* clock ticks (now_ticks) */
	uint32_t parent, count;
	uint8_t kind;
	bool resumable; /* a generator's or coroutine's code */
	bool hide;	/* the helper's own code: it and what it calls are left out */
	bool skip;	/* a trampoline of instrument.py: left out, its callees kept */
};

struct level {
	uint64_t start;
	uint32_t node;	/* NONE: deeper than -d or no room, not timed */
	uint32_t depth; /* in the tree: transparent levels do not count */
	uint8_t kind;
	bool hidden; /* the helper's own code, or called from it */
	bool skip;   /* a transparent frame: node is its parent's */
};

struct fp_trace {
	struct fp_trace *next; /* every live trace, to validate handles */
	int mode;
	int owners; /* the trace commands showing this call (see fp_trace_start) */
	bool installed, paused, stopped, orphan, interrupted;
	PyThreadState *ts; /* where it is installed */
	long tid;	   /* the kernel's id of that thread */
	Py_tracefunc old_func;
	PyObject *old_obj; /* strong */

	PyObject *anchor_code; /* strong */
	PyObject *transparent; /* strong: a tuple of codes to see through */
	const void *anchor_frame;
	int state;
	bool entered;
	uint64_t t_entered, t_left; /* the anchor's last entry and exit */
	uint32_t await_leaf, run_leaf;

	struct node *nodes;
	uint32_t nnodes, cap;
	uint32_t *slots; /* open addressing: (parent, a, b) -> node */
	uint32_t mask;
	uint64_t dropped; /* calls that found no room for a new node */

	struct level *stack;
	uint32_t depth, stack_cap, lost_depth, max_depth;
};

static const struct fp_pyapi *py;
static int py_minor;
#ifdef HAVE_TSC
static bool use_tsc;
static uint64_t tsc_base, mono_base;
#endif
static _Thread_local struct fp_trace *tl_trace;
static struct fp_trace *g_traces;

/* PyThreadState's c_profilefunc and c_profileobj, per minor version (DWARF). */
static const struct {
	int minor;
	size_t func, obj;
} tstate_offsets[] = {
    {6, 48, 64},  {7, 56, 72},	{8, 56, 72},  {9, 56, 72},
    {10, 56, 72}, {11, 64, 80}, {12, 64, 80}, {13, 80, 96},
};
static size_t off_func, off_obj;

static inline uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * The clock of the events: the TSC where the kernel keeps its own time with
 * it (so it is invariant and the same on every CPU), read in a third of the
 * time of a vDSO clock_gettime, which matters at two reads per call; else
 * CLOCK_MONOTONIC.  Durations are converted to ns against CLOCK_MONOTONIC
 * over the time since the first trace.
 */
static inline uint64_t now_ticks(void)
{
#ifdef HAVE_TSC
	if (use_tsc)
		return __rdtsc();
#endif
	return mono_ns();
}

static void clock_init(void)
{
#ifdef HAVE_TSC
	char buf[16] = "";
	FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "re");
	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = '\0';
		fclose(f);
	}
	use_tsc = strcmp(buf, "tsc\n") == 0;
	tsc_base = now_ticks();
	mono_base = mono_ns();
#endif
}

static double ns_per_tick(void)
{
#ifdef HAVE_TSC
	if (use_tsc) {
		uint64_t ticks = now_ticks(), ns = mono_ns();
		if (ticks > tsc_base && ns > mono_base)
			return (double)(ns - mono_base) / (double)(ticks - tsc_base);
	}
#endif
	return 1.0;
}

static PyObject *none(void)
{
	py->Py_IncRef(py->Py_None);
	return py->Py_None;
}

static int init(void)
{
	if (py)
		return 0;
	char why[200];
	const struct fp_pyapi *api = fp_pyapi_load(why, sizeof(why));
	if (!api)
		return -1;
	int major = 0, minor = 0;
	sscanf(api->Py_GetVersion(), "%d.%d", &major, &minor);
	for (size_t i = 0; i < sizeof(tstate_offsets) / sizeof(tstate_offsets[0]); i++)
		if (tstate_offsets[i].minor == minor) {
			off_func = tstate_offsets[i].func;
			off_obj = tstate_offsets[i].obj;
		}
	py_minor = major == 3 ? minor : 0;
	clock_init();
	py = api;
	return 0;
}

/* ---- the tree ---- */

static inline uint32_t slot_of(const struct fp_trace *t, uint32_t parent, const void *a,
			       const void *b)
{
	uint64_t h = (uint64_t)(uintptr_t)a * 0x9E3779B97F4A7C15ull ^
		     (uint64_t)(uintptr_t)b * 0xC2B2AE3D27D4EB4Full ^
		     (uint64_t)parent * 0x165667B19E3779F9ull;
	return (uint32_t)(h ^ h >> 29 ^ h >> 47) & t->mask;
}

static int grow_nodes(struct fp_trace *t)
{
	uint32_t cap = t->cap * 2;
	struct node *nodes = realloc(t->nodes, cap * sizeof(*nodes));
	if (!nodes)
		return -1;
	t->nodes = nodes;
	uint32_t *slots = malloc(2 * (size_t)cap * sizeof(*slots));
	if (!slots)
		return -1;
	t->cap = cap;
	free(t->slots);
	t->slots = slots;
	t->mask = 2 * cap - 1;
	memset(slots, 0xff, 2 * (size_t)cap * sizeof(*slots));
	for (uint32_t i = 1; i < t->nnodes; i++) {
		struct node *n = &t->nodes[i];
		uint32_t s = slot_of(t, n->parent, n->a, n->b);
		while (slots[s] != NONE)
			s = (s + 1) & t->mask;
		slots[s] = i;
	}
	return 0;
}

/* The strong reference that names a C function's owner: the type for a method
 * or a class's function, the module's name for a module function. */
static PyObject *cfunc_owner(PyObject *f)
{
	PyObject *self = CFUNC_SELF(f);
	if (!self)
		return CFUNC_MODULE(f);
	PyObject *type = OB_TYPE(self);
	if (py->PyType_GetFlags(type) & TPFLAGS_TYPE_SUBCLASS)
		return self;
	if (type == py->PyModule_Type || py->PyType_IsSubtype(type, py->PyModule_Type))
		return CFUNC_MODULE(f);
	return type;
}

/* An attribute of a code object, or NULL (no error left). */
static PyObject *code_attr(PyObject *code, const char *name)
{
	PyObject *v = py->PyObject_GetAttrString(code, name);
	if (!v)
		py->PyErr_Clear();
	return v;
}

/*
 * What a Python node is: a generator's, coroutine's or async generator's
 * code (it suspends); the helper's own Python (<fpagent>/..., the hooks
 * instrument.py calls in the traced thread), which is no part of the
 * application's call; or an instrument.py trampoline, through which a call
 * of an instrumented function goes on 3.6-3.11 (the function itself is
 * what the user knows).
 */
static void classify(struct fp_trace *t, struct node *n, PyObject *code)
{
	PyObject *flags = code_attr(code, "co_flags");
	long f = flags ? py->PyLong_AsLong(flags) : 0;
	if (flags)
		py->Py_DecRef(flags);
	if (f == -1 && py->PyErr_Occurred())
		py->PyErr_Clear();
	n->resumable = f > 0 && (f & CO_RESUMABLE);
	PyObject *file = code_attr(code, "co_filename");
	const char *path = file ? py->PyUnicode_AsUTF8(file) : NULL;
	if (!path && py->PyErr_Occurred())
		py->PyErr_Clear();
	n->hide = path && strncmp(path, "<fpagent>/", 10) == 0;
	if (file)
		py->Py_DecRef(file);
	for (Py_ssize_t i = 0; t->transparent && i < py->PyTuple_Size(t->transparent); i++)
		if (py->PyTuple_GetItem(t->transparent, i) == code)
			n->skip = true;
}

/*
 * The child of parent for (kind, a, b), created on first sight; src is what
 * it names (the code, the C function or the method descriptor).  NONE when
 * the tree is full.
 */
static uint32_t child(struct fp_trace *t, uint32_t parent, uint8_t kind, const void *a,
		      const void *b, PyObject *src)
{
	uint32_t s = slot_of(t, parent, a, b);
	for (uint32_t i; (i = t->slots[s]) != NONE; s = (s + 1) & t->mask) {
		const struct node *n = &t->nodes[i];
		if (n->a == a && n->b == b && n->parent == parent && n->kind == kind)
			return i;
	}
	if (t->nnodes == t->cap) {
		if (t->cap >= MAX_NODES || grow_nodes(t)) {
			t->dropped++;
			return NONE;
		}
		return child(t, parent, kind, a, b, src);
	}
	struct node *n = &t->nodes[t->nnodes];
	*n = (struct node){.a = a, .b = b, .parent = parent, .kind = kind};
	if (kind == K_PY) {
		n->ref = src;
		classify(t, n, src);
	} else if (kind == K_C) {
		const struct PyMethodDef *ml = a;
		n->ref =
		    OB_TYPE(src) == py->PyMethodDescr_Type ? DESCR_TYPE(src) : cfunc_owner(src);
		n->name = py->PyUnicode_FromString(ml->ml_name ? ml->ml_name : "?");
		if (!n->name)
			py->PyErr_Clear();
	}
	if (n->ref)
		py->Py_IncRef(n->ref);
	t->slots[s] = t->nnodes;
	return t->nnodes++;
}

static void push(struct fp_trace *t, uint8_t kind, const void *a, const void *b, PyObject *src)
{
	if (t->depth == t->stack_cap) {
		uint32_t cap = t->stack_cap * 2;
		struct level *st = cap <= MAX_STACK ? realloc(t->stack, cap * sizeof(*st)) : NULL;
		if (!st) {
			t->lost_depth++;
			return;
		}
		t->stack = st;
		t->stack_cap = cap;
	}
	const struct level *up = t->depth ? &t->stack[t->depth - 1] : NULL;
	uint32_t parent = up ? up->node : 0, depth = up ? up->depth : 0;
	struct level *l = &t->stack[t->depth++];
	*l = (struct level){
	    .node = NONE, .depth = depth + 1, .kind = kind, .hidden = up && up->hidden};
	t->run_leaf = NONE;
	if (l->hidden || parent == NONE || depth + 1 > t->max_depth)
		return;
	uint32_t n = child(t, parent, kind, a, b, src);
	if (n != NONE && t->nodes[n].hide) {
		l->hidden = true;
	} else if (n != NONE && t->nodes[n].skip) {
		l->skip = true;
		l->node = parent;
		l->depth = depth;
	} else if (n != NONE) {
		l->node = n;
		l->start = now_ticks();
	}
}

/* Adds ns to node n and every node above it. */
static void add_to_path(struct fp_trace *t, uint32_t n, uint64_t ns)
{
	for (; n != NONE; n = t->nodes[n].parent)
		t->nodes[n].total += ns;
}

static void anchor_enter(struct fp_trace *t, const void *frame)
{
	uint64_t now = now_ticks();
	if (t->entered && t->await_leaf != NONE) {
		uint32_t n = child(t, t->await_leaf, K_AWAIT, NULL, NULL, NULL);
		add_to_path(t, t->await_leaf, now - t->t_left);
		if (n != NONE) {
			t->nodes[n].total += now - t->t_left;
			t->nodes[n].count++;
		}
	}
	t->anchor_frame = frame;
	t->entered = true;
	t->state = S_ACTIVE;
	t->t_entered = now;
	t->run_leaf = NONE;
}

static void anchor_leave(struct fp_trace *t)
{
	uint64_t now = now_ticks();
	t->nodes[0].total += now - t->t_entered;
	t->nodes[0].count++;
	t->t_left = now;
	/* Where a suspension began: the innermost coroutine or generator of the
	 * chain that returned last (they all return when it suspends; the plain
	 * calls it made before are done already). */
	t->await_leaf = t->run_leaf != NONE ? t->run_leaf : 0;
	t->state = S_WAIT;
}

static void pop(struct fp_trace *t, uint8_t kind)
{
	if (t->lost_depth) {
		t->lost_depth--;
		return;
	}
	if (!t->depth) {
		if (kind == K_PY)
			anchor_leave(t);
		return;
	}
	/* A Python return above C levels means their returns were not reported
	 * (none known, but one lost event must not shift the rest of the tree). */
	if (t->stack[t->depth - 1].kind != kind && kind == K_C)
		return;
	uint64_t now = 0;
	for (;;) {
		struct level *l = &t->stack[--t->depth];
		if (l->node != NONE && !l->skip) {
			struct node *n = &t->nodes[l->node];
			if (!now)
				now = now_ticks();
			n->total += now - l->start;
			n->count++;
			if (t->run_leaf == NONE && n->resumable)
				t->run_leaf = l->node;
		}
		if (l->kind == kind || !t->depth)
			return;
	}
}

static void enter_py(struct fp_trace *t, PyObject *code, const void *frame, bool have_frame)
{
	if (code == t->anchor_code && (t->state != S_ACTIVE || !t->depth)) {
		if (!have_frame)
			frame = py->PyEval_GetFrame();
		if (t->state == S_ACTIVE) {
			/* Our own event for the anchor resuming, after the hook that
			 * reported the resumption (resume_inside) anchored it. */
			if (frame == t->anchor_frame)
				return;
		} else {
			/* Another activation of the same function is not ours. */
			if (!t->anchor_frame || frame == t->anchor_frame)
				anchor_enter(t, frame);
			return;
		}
	}
	if (t->state == S_ACTIVE)
		push(t, K_PY, code, NULL, code);
}

static void enter_cfunc(struct fp_trace *t, PyObject *f)
{
	PyObject *self = CFUNC_SELF(f);
	const void *b = NULL;
	if (self) {
		PyObject *type = OB_TYPE(self);
		b = py->PyType_GetFlags(type) & TPFLAGS_TYPE_SUBCLASS ? self : type;
	}
	push(t, K_C, CFUNC_ML(f), b, f);
}

static PyObject *frame_code(PyFrameObject *f)
{
	if (py_minor <= 10)
		return FRAME_CODE_36(f);
	/* The frame holds its code: the pointer outlives the reference we drop. */
	PyObject *code = py->PyFrame_GetCode(f);
	py->Py_DecRef(code);
	return code;
}

/* ---- installing, removing ---- */

static void trace_free(struct fp_trace *t)
{
	for (struct fp_trace **pp = &g_traces; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	for (uint32_t i = 0; i < t->nnodes; i++) {
		if (t->nodes[i].ref)
			py->Py_DecRef(t->nodes[i].ref);
		if (t->nodes[i].name)
			py->Py_DecRef(t->nodes[i].name);
	}
	if (t->anchor_code)
		py->Py_DecRef(t->anchor_code);
	if (t->transparent)
		py->Py_DecRef(t->transparent);
	free(t->nodes);
	free(t->slots);
	free(t->stack);
	free(t);
}

static int legacy_hook(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg);

static Py_tracefunc *tstate_func(PyThreadState *ts)
{
	return (Py_tracefunc *)((char *)ts + off_func);
}

static PyObject **tstate_obj(PyThreadState *ts)
{
	return (PyObject **)((char *)ts + off_obj);
}

static void install(struct fp_trace *t)
{
	t->ts = py->PyThreadState_Get();
	t->tid = syscall(SYS_gettid);
	if (t->mode == MODE_LEGACY) {
		t->old_func = *tstate_func(t->ts);
		/* Only a trace that was never removed could have left ours there:
		 * calling it from itself would never end. */
		if (t->old_func == legacy_hook)
			t->old_func = NULL;
		t->old_obj = *tstate_obj(t->ts);
		if (t->old_obj)
			py->Py_IncRef(t->old_obj);
		py->PyEval_SetProfile(legacy_hook, t->old_obj);
	}
	tl_trace = t;
	t->installed = true;
}

static void uninstall(struct fp_trace *t)
{
	if (t->mode == MODE_LEGACY) {
		if (*tstate_func(t->ts) == legacy_hook)
			py->PyEval_SetProfile(t->old_func, t->old_obj);
		else
			t->interrupted = true;
		if (t->old_obj)
			py->Py_DecRef(t->old_obj);
		t->old_obj = NULL;
	}
	tl_trace = NULL;
	t->installed = false;
}

/* A trace whose end was asked for on another thread: this one removes it. */
static void drop_orphan(struct fp_trace *t)
{
	uninstall(t);
	trace_free(t);
}

static int legacy_hook(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
{
	struct fp_trace *t = tl_trace;
	if (!t)
		return 0;
	Py_tracefunc chain = t->old_func;
	if (t->orphan) {
		drop_orphan(t);
		return chain ? chain(obj, frame, what, arg) : 0;
	}
	switch (what) {
	case PYTRACE_CALL:
		enter_py(t, frame_code(frame), frame, true);
		break;
	case PYTRACE_RETURN:
		if (t->state == S_ACTIVE)
			pop(t, K_PY);
		break;
	case PYTRACE_C_CALL:
		if (t->state == S_ACTIVE)
			enter_cfunc(t, arg);
		break;
	case PYTRACE_C_RETURN:
	case PYTRACE_C_EXCEPTION:
		if (t->state == S_ACTIVE)
			pop(t, K_C);
		break;
	default:
		break;
	}
	return chain ? chain(obj, frame, what, arg) : 0;
}

/* ---- sys.monitoring callbacks (3.12+): (code, offset, ...) ---- */

static struct fp_trace *mon_trace(void)
{
	struct fp_trace *t = tl_trace;
	if (t && t->orphan) {
		drop_orphan(t);
		return NULL;
	}
	return t;
}

/* PY_START, PY_RESUME, PY_THROW */
static PyObject *mon_py_enter(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	(void)self;
	struct fp_trace *t = mon_trace();
	if (t && n >= 1)
		enter_py(t, args[0], NULL, false);
	return none();
}

/* PY_RETURN, PY_YIELD, PY_UNWIND */
static PyObject *mon_py_leave(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	(void)self, (void)args, (void)n;
	struct fp_trace *t = mon_trace();
	if (t && t->state == S_ACTIVE)
		pop(t, K_PY);
	return none();
}

enum callable { NOT_C, C_FUNCTION, C_DESCRIPTOR };

/* Whether a callable is a C function (builtin, bound C method) or a method
 * descriptor of a C type: the calls legacy profiling reports as C calls. */
static enum callable c_callable(PyObject *f)
{
	PyObject *type = OB_TYPE(f);
	if (type == py->PyCFunction_Type || type == py->PyCMethod_Type)
		return C_FUNCTION;
	return type == py->PyMethodDescr_Type ? C_DESCRIPTOR : NOT_C;
}

/* CALL (code, offset, callable, arg0) */
static PyObject *mon_call(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	(void)self;
	struct fp_trace *t = mon_trace();
	if (t && t->state == S_ACTIVE && n >= 3) {
		PyObject *f = args[2];
		enum callable k = c_callable(f);
		if (k == C_FUNCTION)
			enter_cfunc(t, f);
		else if (k == C_DESCRIPTOR)
			push(t, K_C, DESCR_METHOD(f), DESCR_TYPE(f), f);
	}
	return none();
}

/* C_RETURN, C_RAISE (code, offset, callable, arg0) */
static PyObject *mon_c_leave(PyObject *self, PyObject *const *args, Py_ssize_t n)
{
	(void)self;
	struct fp_trace *t = mon_trace();
	if (t && t->state == S_ACTIVE && n >= 3 && c_callable(args[2]) != NOT_C)
		pop(t, K_C);
	return none();
}

#define FASTCALL(fn) ((PyCFunction)(void (*)(void))(fn))
static struct PyMethodDef mon_methods[] = {
    {"PY_START", FASTCALL(mon_py_enter), FP_METH_FASTCALL, NULL},
    {"PY_RESUME", FASTCALL(mon_py_enter), FP_METH_FASTCALL, NULL},
    {"PY_THROW", FASTCALL(mon_py_enter), FP_METH_FASTCALL, NULL},
    {"PY_RETURN", FASTCALL(mon_py_leave), FP_METH_FASTCALL, NULL},
    {"PY_YIELD", FASTCALL(mon_py_leave), FP_METH_FASTCALL, NULL},
    {"PY_UNWIND", FASTCALL(mon_py_leave), FP_METH_FASTCALL, NULL},
    {"CALL", FASTCALL(mon_call), FP_METH_FASTCALL, NULL},
    {"C_RETURN", FASTCALL(mon_c_leave), FP_METH_FASTCALL, NULL},
    {"C_RAISE", FASTCALL(mon_c_leave), FP_METH_FASTCALL, NULL},
};

/* ---- what the embedded Python calls ---- */

static struct fp_trace *lookup(PyObject *handle)
{
	void *p = py->PyLong_AsVoidPtr(handle);
	for (struct fp_trace *t = g_traces; p && t; t = t->next)
		if (t == p)
			return t;
	if (!py->PyErr_Occurred())
		py->PyErr_SetString(py->PyExc_RuntimeError, "trace: no such trace");
	return NULL;
}

/*
 * _fp_trace_monitor_callbacks() -> {event name: callback} for
 * sys.monitoring.register_callback.
 */
PyObject *fp_trace_monitor_callbacks(PyObject *self, PyObject *args)
{
	(void)self, (void)args;
	if (init())
		return NULL;
	PyObject *d = py->PyDict_New();
	for (size_t i = 0; d && i < sizeof(mon_methods) / sizeof(mon_methods[0]); i++) {
		PyObject *f = py->PyCFunction_NewEx(&mon_methods[i], NULL, NULL);
		if (!f || py->PyDict_SetItemString(d, mon_methods[i].ml_name, f)) {
			if (f)
				py->Py_DecRef(f);
			py->Py_DecRef(d);
			return NULL;
		}
		py->Py_DecRef(f);
	}
	return d;
}

static int noop_hook(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
{
	(void)obj, (void)frame, (void)what, (void)arg;
	return 0;
}

/*
 * _fp_trace_selftest() -> None, or why the legacy hook cannot run here: the
 * offsets of the thread state's profile function and object are checked by
 * setting a profile function on the calling (helper) thread and reading it
 * back, so that an interpreter whose layout differs is refused rather than
 * given a wrong "previous profiler" to restore.
 */
PyObject *fp_trace_selftest(PyObject *self, PyObject *args)
{
	(void)self, (void)args;
	if (init())
		return NULL;
	if (!off_func)
		return py->PyUnicode_FromString("no thread-state layout is known for this version");
	PyThreadState *ts = py->PyThreadState_Get();
	if (*tstate_func(ts) || *tstate_obj(ts))
		return py->PyUnicode_FromString("the helper thread unexpectedly has a profiler");
	py->PyEval_SetProfile(noop_hook, py->Py_None);
	bool ok = *tstate_func(ts) == noop_hook && *tstate_obj(ts) == py->Py_None;
	py->PyEval_SetProfile(NULL, NULL);
	if (!ok)
		return py->PyUnicode_FromString("the thread-state layout is not the expected one");
	return none();
}

/*
 * Whether the trace running in this thread is of the call whose start another
 * trace command reports now (two commands tracing one function see each of
 * its calls start in turn), rather than a call made inside it.
 */
static bool joinable(const struct fp_trace *t, PyObject *code, PyObject *frame, int monitor)
{
	if (t->anchor_code != code || t->mode != (monitor ? MODE_MONITOR : MODE_LEGACY) ||
	    t->nnodes != 1 || t->depth)
		return false;
	if (frame == py->Py_None)
		return !t->entered;
	return t->state == S_ACTIVE && t->anchor_frame == frame;
}

/*
 * _fp_trace_start(anchor_code, anchor_frame, monitor, max_depth, app_profile,
 *                 transparent) -> handle, or None when this thread runs a trace of
 *                 another call (this one is in its tree).
 * Starts following the calling thread.  anchor_frame: the traced call's
 * frame when it runs already (a sys.monitoring hook calls us from inside
 * it), else None: recording starts when anchor_code is next entered.
 * monitor: events come from sys.monitoring (trace.py enables them), else
 * from PyEval_SetProfile.  max_depth: levels below the anchor to record
 * (0: all).  app_profile: sys.getprofile() of this thread, checked against
 * what the thread state holds.  transparent: a tuple of code objects whose
 * frames are not nodes, their callees taking their place (instrument.py's
 * trampolines).  When another command traces the same call, its trace is
 * shared (the deepest -d of the two is recorded): each owner stops, collects
 * and releases it.
 */
PyObject *fp_trace_start(PyObject *self, PyObject *args)
{
	(void)self;
	PyObject *code, *frame, *app_profile, *transparent;
	int monitor;
	unsigned int max_depth;
	if (init())
		return NULL;
	if (!py->PyArg_ParseTuple(args, "OOpIOO", &code, &frame, &monitor, &max_depth, &app_profile,
				  &transparent))
		return NULL;
	if (OB_TYPE(code) != py->PyCode_Type) {
		py->PyErr_SetString(py->PyExc_RuntimeError,
				    "trace: the anchor is not a code object");
		return NULL;
	}
	if (tl_trace && tl_trace->orphan)
		drop_orphan(tl_trace);
	struct fp_trace *cur = tl_trace;
	if (cur) {
		if (!joinable(cur, code, frame, monitor))
			return none();
		cur->owners++;
		if (!max_depth || (cur->max_depth != UINT32_MAX && max_depth > cur->max_depth))
			cur->max_depth = max_depth ? max_depth : UINT32_MAX;
		return py->PyLong_FromVoidPtr(cur);
	}
	if (!monitor) {
		PyThreadState *ts = py->PyThreadState_Get();
		PyObject *obj = *tstate_obj(ts);
		if (!off_func || (app_profile == py->Py_None ? obj != NULL : obj != app_profile)) {
			py->PyErr_SetString(py->PyExc_RuntimeError,
					    "trace: the thread state does not hold the profiler "
					    "sys.getprofile() reports");
			return NULL;
		}
	}
	struct fp_trace *t = calloc(1, sizeof(*t));
	if (t) {
		t->cap = 256;
		t->stack_cap = 256;
		t->mask = 2 * t->cap - 1;
		t->nodes = malloc(t->cap * sizeof(*t->nodes));
		t->slots = malloc(2 * (size_t)t->cap * sizeof(*t->slots));
		t->stack = malloc(t->stack_cap * sizeof(*t->stack));
	}
	if (!t || !t->nodes || !t->slots || !t->stack) {
		if (t) {
			free(t->nodes);
			free(t->slots);
			free(t->stack);
			free(t);
		}
		return py->PyErr_NoMemory();
	}
	memset(t->slots, 0xff, 2 * (size_t)t->cap * sizeof(*t->slots));
	t->mode = monitor ? MODE_MONITOR : MODE_LEGACY;
	t->owners = 1;
	t->max_depth = max_depth ? max_depth : UINT32_MAX;
	py->Py_IncRef(code);
	t->anchor_code = code;
	if (transparent != py->Py_None && py->PyTuple_Size(transparent) > 0) {
		py->Py_IncRef(transparent);
		t->transparent = transparent;
	} else if (py->PyErr_Occurred()) {
		py->PyErr_Clear();
	}
	t->nodes[0] = (struct node){.a = code, .ref = code, .parent = NONE, .kind = K_PY};
	py->Py_IncRef(code);
	t->nnodes = 1;
	t->await_leaf = NONE;
	t->state = S_WAIT;
	t->next = g_traces;
	g_traces = t;
	install(t);
	if (frame != py->Py_None)
		anchor_enter(t, frame);
	return py->PyLong_FromVoidPtr(t);
}

/* The anchor's open levels, closed now: the call ended while they ran (a
 * hook that reports the end from inside the traced frame). */
static void close_open(struct fp_trace *t)
{
	while (t->depth || t->lost_depth)
		pop(t, t->depth ? t->stack[t->depth - 1].kind : K_PY);
	if (t->state == S_ACTIVE)
		anchor_leave(t);
}

/*
 * _fp_trace_stop(handle) -> True once the call's tree is complete, False when
 * called on another thread than the one traced.  Removes the hook (the
 * first owner to stop does); the tree stays for _fp_trace_collect.
 */
PyObject *fp_trace_stop(PyObject *self, PyObject *args)
{
	(void)self;
	PyObject *h;
	if (!py->PyArg_ParseTuple(args, "O", &h))
		return NULL;
	struct fp_trace *t = lookup(h);
	if (!t)
		return NULL;
	if (t->installed && py->PyThreadState_Get() != t->ts)
		return py->PyBool_FromLong(0);
	if (t->installed)
		uninstall(t);
	t->stopped = true;
	close_open(t);
	return py->PyBool_FromLong(1);
}

/*
 * _fp_trace_release(handle): an owner is done with the trace; the last one
 * frees it.  A trace still installed in another thread (a call that outlived
 * its trace command) is dropped by that thread at its next event.
 */
PyObject *fp_trace_release(PyObject *self, PyObject *args)
{
	(void)self;
	PyObject *h;
	if (!py->PyArg_ParseTuple(args, "O", &h))
		return NULL;
	struct fp_trace *t = lookup(h);
	if (!t)
		return NULL;
	if (--t->owners > 0)
		return none();
	if (t->installed && py->PyThreadState_Get() != t->ts) {
		t->orphan = true;
		for (struct fp_trace **pp = &g_traces; *pp; pp = &(*pp)->next)
			if (*pp == t) {
				*pp = t->next;
				break;
			}
		return none();
	}
	if (t->installed)
		uninstall(t);
	trace_free(t);
	return none();
}

/* _fp_trace_pause(handle): the traced coroutine is suspended; nothing of this
 * thread is recorded until _fp_trace_resume.  A sys.monitoring hook reports
 * the suspension before our own event for it may come: the anchor leaves
 * here then. */
PyObject *fp_trace_pause(PyObject *self, PyObject *args)
{
	(void)self;
	PyObject *h;
	if (!py->PyArg_ParseTuple(args, "O", &h))
		return NULL;
	struct fp_trace *t = lookup(h);
	if (!t)
		return NULL;
	if (t->installed && py->PyThreadState_Get() == t->ts) {
		uninstall(t);
		t->paused = true;
		close_open(t);
	}
	return none();
}

/* _fp_trace_resume(handle, inside) -> True, or False when this thread already
 * runs another trace: the coroutine goes on, maybe on another thread.
 * inside: the anchor runs again already (a sys.monitoring hook calls from
 * its frame), else it is recognised when it is next entered. */
PyObject *fp_trace_resume(PyObject *self, PyObject *args)
{
	(void)self;
	PyObject *h;
	int inside;
	if (!py->PyArg_ParseTuple(args, "Op", &h, &inside))
		return NULL;
	struct fp_trace *t = lookup(h);
	if (!t)
		return NULL;
	if (!t->paused || t->stopped)
		return py->PyBool_FromLong(1);
	if (tl_trace)
		return py->PyBool_FromLong(0);
	t->paused = false;
	install(t);
	if (inside && t->state == S_WAIT)
		anchor_enter(t, t->anchor_frame);
	return py->PyBool_FromLong(1);
}

/*
 * _fp_trace_collect(handle, min_ns, max_depth, max_nodes)
 *   -> (nodes, paths, dropped, hidden_calls, cut_nodes, interrupted, tid)
 * of a stopped trace.  nodes: the tree in pre-order as tuples (depth, kind,
 * ref, name, count, total_ns), kind 0 Python (ref: the code), 1 C (ref: the
 * owner type or module name, name: the function's), 2 [await]; the anchor
 * is the first, at depth 0.  A node cheaper than min_ns is left out with
 * its subtree (hidden_calls counts the calls left out that way), as is one
 * deeper than max_depth (0: any depth); cut_nodes counts those beyond
 * max_nodes.  paths: distinct call paths recorded; dropped: calls that found
 * the tree full.  interrupted: the application changed the profile function
 * during the call (the tree ends there).  tid: the kernel's id of the thread
 * that ran the call (the last one, for a coroutine).
 */
PyObject *fp_trace_collect(PyObject *self, PyObject *args)
{
	(void)self;
	PyObject *h;
	unsigned long long min_ns;
	unsigned int max_depth, max_nodes;
	if (!py->PyArg_ParseTuple(args, "OKII", &h, &min_ns, &max_depth, &max_nodes))
		return NULL;
	struct fp_trace *t = lookup(h);
	if (!t)
		return NULL;
	if (!t->stopped) {
		py->PyErr_SetString(py->PyExc_RuntimeError, "trace: collected before it stopped");
		return NULL;
	}
	uint32_t n = t->nnodes;
	uint32_t *first = malloc(n * sizeof(*first)), *next = malloc(n * sizeof(*next)),
		 *last = malloc(n * sizeof(*last));
	struct {
		uint32_t node, depth;
	} *todo = malloc(n * sizeof(*todo));
	PyObject *list = py->PyList_New(0);
	if (!first || !next || !last || !todo || !list) {
		free(first), free(next), free(last), free(todo);
		if (list)
			py->Py_DecRef(list);
		return py->PyErr_NoMemory();
	}
	memset(first, 0xff, n * sizeof(*first));
	memset(next, 0xff, n * sizeof(*next));
	/* Children in the order they were first called: a parent is always older. */
	for (uint32_t i = 1; i < n; i++) {
		uint32_t p = t->nodes[i].parent;
		if (first[p] == NONE)
			first[p] = i;
		else
			next[last[p]] = i;
		last[p] = i;
	}
	double scale = ns_per_tick();
	uint64_t min_ticks = (uint64_t)((double)min_ns / scale);
	unsigned long long hidden = 0, cut = 0;
	uint32_t sp = 0, out = 0;
	todo[sp].node = 0;
	todo[sp++].depth = 0;
	bool failed = false;
	while (sp && !failed) {
		uint32_t i = todo[--sp].node, depth = todo[sp].depth;
		const struct node *nd = &t->nodes[i];
		if (out == max_nodes) {
			cut++;
			continue;
		}
		out++;
		PyObject *ref = nd->ref ? nd->ref : py->Py_None,
			 *name = nd->name ? nd->name : py->Py_None;
		PyObject *tup = py->Py_BuildValue("(IiOOIK)", depth, (int)nd->kind, ref, name,
						  i ? nd->count : 1,
						  (unsigned long long)((double)nd->total * scale));
		failed = !tup || py->PyList_Append(list, tup);
		if (tup)
			py->Py_DecRef(tup);
		/* Pushed in reverse so that they come out in call order. */
		uint32_t base = sp;
		for (uint32_t c = first[i]; c != NONE; c = next[c]) {
			const struct node *cn = &t->nodes[c];
			if (cn->hide || cn->skip)
				continue;
			if ((max_depth && depth + 1 > max_depth) || cn->total < min_ticks) {
				hidden += cn->count;
				continue;
			}
			todo[sp].node = c;
			todo[sp++].depth = depth + 1;
		}
		for (uint32_t a = base, b = sp; b > a + 1; a++, b--) {
			uint32_t x = todo[a].node;
			todo[a].node = todo[b - 1].node;
			todo[b - 1].node = x;
		}
	}
	free(first), free(next), free(last), free(todo);
	unsigned long long paths = t->nnodes, dropped = t->dropped;
	int interrupted = t->interrupted;
	long tid = t->tid;
	if (failed) {
		py->Py_DecRef(list);
		return NULL;
	}
	return py->Py_BuildValue("(NKKKKil)", list, paths, dropped, hidden, cut, interrupted, tid);
}
