/*
 * libfpagent.so: the helper fpd injects into a CPython process.
 *
 * Threads and the GIL:
 *   - fpagent_start() runs on the thread the injector hijacked, at a safe
 *     point but in the middle of whatever it was doing: it only copies the
 *     socket path and starts a session thread.  There is deliberately no
 *     constructor: a second session must not load the library again (that
 *     would duplicate every static), so the injector calls this entry point
 *     each time and dlopen only the first time.
 *   - The session thread never takes the GIL while the link is open: it reads
 *     frames, answers PING itself, queues INPUT/CANCEL, and starts one worker
 *     thread per REQUEST.  So fpd always gets an answer, even while the
 *     application holds the GIL for minutes.
 *   - A worker takes the GIL like any other thread (PyGILState_Ensure), runs
 *     the request in the embedded Python (agent/py/, executed once in a
 *     private dict), and releases the GIL around every write to fpd.
 * All helper threads block every signal: Python expects signals on its main
 * thread, and a helper thread must not be the one a process-directed signal
 * interrupts.
 *
 * When the link closes (detach, client gone, fpd gone), the session cancels
 * its requests, waits for its workers, and calls _fp_session_end under the
 * GIL so that the session's instrumentation is removed; then its thread ends.
 * An idle helper has no thread at all.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent_py.h"
#include "fp/agentlink.h"
#include "fp/version.h"
#include "pyapi.h"
#include "instrument.h"
#include "trace.h"

#define EXPORT __attribute__((visibility("default")))

struct inmsg {
	bool cancel;
	char *payload;
	struct inmsg *next;
};

struct request {
	uint32_t id;
	struct session *s;
	char *payload;
	bool cancelled;		   /* under s->lock */
	struct inmsg *head, *tail; /* INPUT/CANCEL not yet taken, under s->lock */
	pthread_cond_t cond;	   /* inbox changed */
	int refs;		   /* under s->lock */
	struct request *next;
};

struct session {
	unsigned no; /* the high half of the keys the Python side uses */
	int fd;
	pthread_mutex_t lock; /* requests, inboxes, refs, closed */
	pthread_mutex_t send_lock;
	pthread_cond_t idle; /* a worker ended */
	struct request *reqs;
	int workers;
	int refs; /* the session thread, workers, Python calls in flight */
	bool closed;
	struct session *next;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct session *g_sessions;
static unsigned g_next_session = 1;
static const struct fp_pyapi *py;
static PyObject *g_ns; /* the embedded Python's namespace, under the GIL */

/* ---- sessions and requests ---- */

static struct session *session_get(unsigned no)
{
	pthread_mutex_lock(&g_lock);
	struct session *s = g_sessions;
	while (s && s->no != no)
		s = s->next;
	if (s) {
		pthread_mutex_lock(&s->lock);
		s->refs++;
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&g_lock);
	return s;
}

static void session_put(struct session *s)
{
	pthread_mutex_lock(&g_lock);
	pthread_mutex_lock(&s->lock);
	bool last = --s->refs == 0;
	pthread_mutex_unlock(&s->lock);
	if (last) {
		struct session **pp = &g_sessions;
		while (*pp && *pp != s)
			pp = &(*pp)->next;
		if (*pp)
			*pp = s->next;
	}
	pthread_mutex_unlock(&g_lock);
	if (!last)
		return;
	close(s->fd);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->send_lock);
	pthread_cond_destroy(&s->idle);
	free(s);
}

/* The request id of session s, with a reference; call under s->lock. */
static struct request *request_find_locked(struct session *s, uint32_t id)
{
	for (struct request *r = s->reqs; r; r = r->next)
		if (r->id == id) {
			r->refs++;
			return r;
		}
	return NULL;
}

static void request_put_locked(struct request *r)
{
	if (--r->refs)
		return;
	struct request **pp = &r->s->reqs;
	while (*pp && *pp != r)
		pp = &(*pp)->next;
	if (*pp)
		*pp = r->next;
	while (r->head) {
		struct inmsg *m = r->head;
		r->head = m->next;
		free(m->payload);
		free(m);
	}
	pthread_cond_destroy(&r->cond);
	free(r->payload);
	free(r);
}

static void request_push_locked(struct request *r, bool cancel, char *payload)
{
	struct inmsg *m = calloc(1, sizeof(*m));
	if (!m) {
		free(payload);
		return;
	}
	m->cancel = cancel;
	m->payload = payload;
	if (r->tail)
		r->tail->next = m;
	else
		r->head = m;
	r->tail = m;
	if (cancel)
		r->cancelled = true;
	pthread_cond_broadcast(&r->cond);
}

static int session_send(struct session *s, uint8_t op, uint32_t id, const char *payload)
{
	pthread_mutex_lock(&s->send_lock);
	int rc = fp_al_send(s->fd, op, id, payload, payload ? strlen(payload) : 0, 0);
	pthread_mutex_unlock(&s->send_lock);
	return rc;
}

/* ---- functions the embedded Python calls (its key = session << 32 | request id) ---- */

static PyObject *none(void)
{
	py->Py_IncRef(py->Py_None);
	return py->Py_None;
}

static PyObject *fn_send(PyObject *self, PyObject *args)
{
	(void)self;
	unsigned int op;
	unsigned long long key;
	const char *payload;
	if (!py->PyArg_ParseTuple(args, "IKs", &op, &key, &payload))
		return NULL;
	struct session *s = session_get((unsigned)(key >> 32));
	if (!s) {
		py->PyErr_SetString(py->PyExc_OSError, "the fpd session has ended");
		return NULL;
	}
	/* Never hold the GIL while fpd may be slow to read. */
	PyThreadState *ts = py->PyEval_SaveThread();
	int rc = session_send(s, (uint8_t)op, (uint32_t)key, payload);
	int err = errno;
	py->PyEval_RestoreThread(ts);
	session_put(s);
	if (rc) {
		char msg[128];
		snprintf(msg, sizeof(msg), "writing to fpd failed: %s", strerror(err));
		py->PyErr_SetString(py->PyExc_OSError, msg);
		return NULL;
	}
	return none();
}

static PyObject *fn_recv(PyObject *self, PyObject *args)
{
	(void)self;
	unsigned long long key;
	double timeout;
	if (!py->PyArg_ParseTuple(args, "Kd", &key, &timeout))
		return NULL;
	struct session *s = session_get((unsigned)(key >> 32));
	if (!s)
		return py->Py_BuildValue("(ss)", "cancel", "");
	PyThreadState *ts = py->PyEval_SaveThread();
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	if (timeout > 0) {
		long long ns = until.tv_nsec + (long long)(timeout * 1e9);
		until.tv_sec += ns / 1000000000;
		until.tv_nsec = ns % 1000000000;
	}
	struct inmsg *m = NULL;
	bool gone = false;
	pthread_mutex_lock(&s->lock);
	struct request *r = request_find_locked(s, (uint32_t)key);
	if (!r) {
		gone = true;
	} else {
		while (!r->head && !s->closed && timeout > 0)
			if (pthread_cond_timedwait(&r->cond, &s->lock, &until) == ETIMEDOUT)
				break;
		m = r->head;
		if (m) {
			r->head = m->next;
			if (!r->head)
				r->tail = NULL;
		} else if (s->closed) {
			gone = true;
		}
		request_put_locked(r);
	}
	pthread_mutex_unlock(&s->lock);
	py->PyEval_RestoreThread(ts);
	session_put(s);
	if (gone)
		return py->Py_BuildValue("(ss)", "cancel", "");
	if (!m)
		return none();
	PyObject *res =
	    py->Py_BuildValue("(ss)", m->cancel ? "cancel" : "input", m->payload ? m->payload : "");
	free(m->payload);
	free(m);
	return res;
}

static PyObject *fn_cancelled(PyObject *self, PyObject *args)
{
	(void)self;
	unsigned long long key;
	if (!py->PyArg_ParseTuple(args, "K", &key))
		return NULL;
	bool cancelled = true;
	struct session *s = session_get((unsigned)(key >> 32));
	if (s) {
		pthread_mutex_lock(&s->lock);
		struct request *r = request_find_locked(s, (uint32_t)key);
		if (r) {
			cancelled = r->cancelled || s->closed;
			request_put_locked(r);
		}
		pthread_mutex_unlock(&s->lock);
		session_put(s);
	}
	return py->PyBool_FromLong(cancelled);
}

static PyObject *fn_async_exc(PyObject *self, PyObject *args)
{
	(void)self;
	unsigned long ident;
	PyObject *exc;
	if (!py->PyArg_ParseTuple(args, "kO", &ident, &exc))
		return NULL;
	/* Clearing (NULL) signals every thread's eval loop like a new exception
	 * does, and only taking one turns that off again (3.6-3.12): left on,
	 * 3.11 never gets past the start of a function run under a profiler.
	 * A pending exception is replaced by one the thread then takes. */
	if (exc == py->Py_None) {
		py->PyErr_SetString(py->PyExc_RuntimeError,
				    "_fp_async_exc: an exception to raise is required");
		return NULL;
	}
	return py->PyLong_FromLong(py->PyThreadState_SetAsyncExc(ident, exc));
}

/* The text of an embedded source file, for core.py's _fp_load; None if there is none. */
static PyObject *fn_source(PyObject *self, PyObject *args)
{
	(void)self;
	const char *name;
	if (!py->PyArg_ParseTuple(args, "s", &name))
		return NULL;
	for (size_t i = 0; i < fp_agent_nsources; i++)
		if (strcmp(fp_agent_sources[i].name, name) == 0)
			return py->PyUnicode_FromString(fp_agent_sources[i].text);
	return none();
}

static struct PyMethodDef methods[] = {
    {"_fp_source", fn_source, FP_METH_VARARGS, NULL},
    {"_fp_send", fn_send, FP_METH_VARARGS, NULL},
    {"_fp_recv", fn_recv, FP_METH_VARARGS, NULL},
    {"_fp_cancelled", fn_cancelled, FP_METH_VARARGS, NULL},
    {"_fp_async_exc", fn_async_exc, FP_METH_VARARGS, NULL},
    {"_fp_trace_start", fp_trace_start, FP_METH_VARARGS, NULL},
    {"_fp_trace_stop", fp_trace_stop, FP_METH_VARARGS, NULL},
    {"_fp_trace_pause", fp_trace_pause, FP_METH_VARARGS, NULL},
    {"_fp_trace_resume", fp_trace_resume, FP_METH_VARARGS, NULL},
    {"_fp_trace_collect", fp_trace_collect, FP_METH_VARARGS, NULL},
    {"_fp_trace_release", fp_trace_release, FP_METH_VARARGS, NULL},
    {"_fp_trace_selftest", fp_trace_selftest, FP_METH_VARARGS, NULL},
    {"_fp_trace_monitor_callbacks", fp_trace_monitor_callbacks, FP_METH_VARARGS, NULL},
    {"_fp_instr_codes", (PyCFunction)(void (*)(void))fp_instr_codes, FP_METH_FASTCALL, NULL},
    {"_fp_instr_unwind", (PyCFunction)(void (*)(void))fp_instr_unwind, FP_METH_FASTCALL, NULL},
    {"_fp_instr_throw", (PyCFunction)(void (*)(void))fp_instr_throw, FP_METH_FASTCALL, NULL},
};

/* ---- the embedded Python ---- */

/* The pending Python exception as one line (cleared); "" if none. */
static void exception_text(char *buf, size_t len)
{
	PyObject *type = NULL, *value = NULL, *tb = NULL;
	py->PyErr_Fetch(&type, &value, &tb);
	buf[0] = '\0';
	PyObject *str = value ? py->PyObject_Str(value) : NULL;
	const char *s = str ? py->PyUnicode_AsUTF8(str) : NULL;
	snprintf(buf, len, "%s", s ? s : "unknown error");
	py->PyErr_Clear();
	if (str)
		py->Py_DecRef(str);
	if (type)
		py->Py_DecRef(type);
	if (value)
		py->Py_DecRef(value);
	if (tb)
		py->Py_DecRef(tb);
}

/*
 * Builds the namespace once (GIL held): the C functions, then the eager
 * sources (core.py, the manifest).  0, or -1 with why.
 */
static int namespace_init(char *why, size_t len)
{
	if (g_ns)
		return 0;
	PyObject *ns = py->PyDict_New();
	if (!ns)
		goto fail;
	PyObject *name = py->PyUnicode_FromString("_fpagent");
	if (!name || py->PyDict_SetItemString(ns, "__builtins__", py->PyEval_GetBuiltins()) ||
	    py->PyDict_SetItemString(ns, "__name__", name))
		goto fail;
	py->Py_DecRef(name);
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		PyObject *f = py->PyCFunction_NewEx(&methods[i], NULL, NULL);
		if (!f || py->PyDict_SetItemString(ns, methods[i].ml_name, f))
			goto fail;
		py->Py_DecRef(f);
	}
	for (size_t i = 0; i < fp_agent_nsources; i++) {
		if (!fp_agent_sources[i].eager)
			continue;
		char file[96];
		snprintf(file, sizeof(file), "<fpagent>/%s", fp_agent_sources[i].name);
		PyObject *code =
		    py->Py_CompileString(fp_agent_sources[i].text, file, FP_PY_FILE_INPUT);
		PyObject *res = code ? py->PyEval_EvalCode(code, ns, ns) : NULL;
		if (code)
			py->Py_DecRef(code);
		if (!res) {
			char e[300];
			exception_text(e, sizeof(e));
			snprintf(why, len, "helper: %s failed to load: %s",
				 fp_agent_sources[i].name, e);
			py->Py_DecRef(ns);
			return -1;
		}
		py->Py_DecRef(res);
	}
	g_ns = ns;
	return 0;
fail:
	exception_text(why, len);
	return -1;
}

/* A JSON string literal of s (ours or Python's exception text), into out. */
static void json_quote(const char *s, char *out, size_t len)
{
	size_t o = 0;
	if (len < 3)
		return;
	out[o++] = '"';
	for (; *s && o + 8 < len; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20) {
			o += (size_t)snprintf(out + o, len - o, "\\u%04x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	out[o++] = '"';
	out[o] = '\0';
}

static void send_error(struct session *s, uint32_t id, const char *code, const char *msg)
{
	char q[600], buf[700];
	json_quote(msg, q, sizeof(q));
	snprintf(buf, sizeof(buf), "{\"code\":\"%s\",\"exit\":1,\"message\":%s}", code, q);
	session_send(s, FP_AL_ERROR, id, buf);
}

/*
 * CPython 3.6 creates the GIL only when a second thread starts; until then
 * PyGILState_Ensure from a foreign thread would take a GIL the main thread
 * does not know about.  So the main thread creates it, at its next bytecode
 * boundary, from a pending call.
 */
static pthread_mutex_t threads_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t threads_cond = PTHREAD_COND_INITIALIZER;
static bool threads_ready;

static int init_threads_cb(void *arg)
{
	(void)arg;
	py->PyEval_InitThreads();
	pthread_mutex_lock(&threads_lock);
	threads_ready = true;
	pthread_cond_broadcast(&threads_cond);
	pthread_mutex_unlock(&threads_lock);
	return 0; /* nonzero would raise in the application */
}

/* Waits until Python has a GIL, giving up when r is cancelled; 0 or -1. */
static int ensure_threads(struct request *r)
{
	if (!py->PyEval_ThreadsInitialized || !py->PyEval_InitThreads ||
	    py->PyEval_ThreadsInitialized())
		return 0;
	static atomic_bool queued;
	if (!atomic_exchange(&queued, true) && py->Py_AddPendingCall(init_threads_cb, NULL) < 0) {
		atomic_store(&queued, false);
		return -1;
	}
	pthread_mutex_lock(&threads_lock);
	for (;;) {
		if (threads_ready)
			break;
		pthread_mutex_lock(&r->s->lock);
		bool stop = r->cancelled || r->s->closed;
		pthread_mutex_unlock(&r->s->lock);
		if (stop)
			break;
		struct timespec t;
		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_nsec += 100000000;
		if (t.tv_nsec >= 1000000000)
			t.tv_sec++, t.tv_nsec -= 1000000000;
		pthread_cond_timedwait(&threads_cond, &threads_lock, &t);
	}
	bool ok = threads_ready;
	pthread_mutex_unlock(&threads_lock);
	return ok ? 0 : -1;
}

static void *worker_main(void *arg)
{
	struct request *r = arg;
	struct session *s = r->s;
	if (!py->Py_IsInitialized()) {
		send_error(s, r->id, "not_ready",
			   "the interpreter is not running Python code yet "
			   "(initialising or shutting down)");
	} else if (ensure_threads(r)) {
		send_error(s, r->id, "cancelled", "cancelled before the interpreter could run it");
	} else {
		PyGILState_STATE g = py->PyGILState_Ensure();
		/* Tells fpd the wait for the GIL is over; never blocks while holding it. */
		if (pthread_mutex_trylock(&s->send_lock) == 0) {
			fp_al_send(s->fd, FP_AL_RUNNING, r->id, NULL, 0, MSG_DONTWAIT);
			pthread_mutex_unlock(&s->send_lock);
		}
		char why[400];
		pthread_mutex_lock(&s->lock);
		bool cancelled = r->cancelled || s->closed;
		pthread_mutex_unlock(&s->lock);
		if (cancelled) {
			py->PyGILState_Release(g);
			send_error(s, r->id, "cancelled", "cancelled");
		} else if (namespace_init(why, sizeof(why))) {
			py->PyGILState_Release(g);
			send_error(s, r->id, "helper_error", why);
		} else {
			PyObject *fn = py->PyDict_GetItemString(g_ns, "_fp_handle");
			unsigned long long key = (unsigned long long)s->no << 32 | r->id;
			PyObject *res =
			    fn ? py->PyObject_CallFunction(fn, "KKs", (unsigned long long)s->no,
							   key, r->payload)
			       : NULL;
			if (res) {
				py->Py_DecRef(res);
				py->PyGILState_Release(g);
			} else {
				exception_text(why, sizeof(why));
				py->PyGILState_Release(g);
				send_error(s, r->id, "helper_error", why);
			}
		}
	}
	pthread_mutex_lock(&s->lock);
	s->workers--;
	pthread_cond_broadcast(&s->idle);
	request_put_locked(r);
	pthread_mutex_unlock(&s->lock);
	session_put(s);
	return NULL;
}

static int start_thread(void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	pthread_t t;
	sigset_t all, old;
	sigfillset(&all);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* The new thread inherits the mask: it starts with every signal blocked. */
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&t, &attr, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	return rc;
}

static void start_request(struct session *s, uint32_t id, char *payload)
{
	struct request *r = calloc(1, sizeof(*r));
	if (!r) {
		free(payload);
		send_error(s, id, "memory", "helper: out of memory");
		return;
	}
	r->id = id;
	r->s = s;
	r->payload = payload;
	r->refs = 1;
	pthread_cond_init(&r->cond, NULL);
	pthread_mutex_lock(&s->lock);
	r->next = s->reqs;
	s->reqs = r;
	s->workers++;
	s->refs++;
	pthread_mutex_unlock(&s->lock);
	if (start_thread(worker_main, r) == 0)
		return;
	pthread_mutex_lock(&s->lock);
	s->workers--;
	s->refs--;
	request_put_locked(r);
	pthread_mutex_unlock(&s->lock);
	send_error(s, id, "helper_error", "helper: cannot start a thread");
}

static void deliver(struct session *s, uint32_t id, bool cancel, char *payload)
{
	pthread_mutex_lock(&s->lock);
	struct request *r = request_find_locked(s, id);
	if (r) {
		request_push_locked(r, cancel, payload);
		payload = NULL;
		request_put_locked(r);
	}
	pthread_mutex_unlock(&s->lock);
	free(payload);
}

static void python_version(char *out, size_t len)
{
	const char *v = py ? py->Py_GetVersion() : "";
	size_t n = strcspn(v, " ");
	snprintf(out, len, "%.*s", (int)(n < len ? n : len - 1), v);
}

static void send_status(struct session *s, uint8_t op, const char *error)
{
	char ver[32], q[300], buf[512];
	python_version(ver, sizeof(ver));
	pthread_mutex_lock(&s->lock);
	int workers = s->workers;
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_lock(&g_lock);
	int sessions = 0;
	for (struct session *x = g_sessions; x; x = x->next)
		sessions++;
	pthread_mutex_unlock(&g_lock);
	json_quote(error ? error : "", q, sizeof(q));
	snprintf(buf, sizeof(buf),
		 "{\"pid\":%d,\"python\":\"%s\",\"agent\":\"" FP_VERSION
		 "\",\"sessions\":%d,\"requests\":%d%s%s}",
		 (int)getpid(), ver, sessions, workers, error ? ",\"error\":" : "", error ? q : "");
	session_send(s, op, 0, buf);
}

/* Undo what the session changed, with the GIL; the link is closed already. */
static void session_end(struct session *s)
{
	pthread_mutex_lock(&s->lock);
	s->closed = true;
	for (struct request *r = s->reqs; r; r = r->next) {
		r->cancelled = true;
		pthread_cond_broadcast(&r->cond);
	}
	while (s->workers)
		pthread_cond_wait(&s->idle, &s->lock);
	pthread_mutex_unlock(&s->lock);
	if (!py || !py->Py_IsInitialized())
		return;
	PyGILState_STATE g = py->PyGILState_Ensure();
	PyObject *fn = g_ns ? py->PyDict_GetItemString(g_ns, "_fp_session_end") : NULL;
	PyObject *res = fn ? py->PyObject_CallFunction(fn, "K", (unsigned long long)s->no) : NULL;
	if (res)
		py->Py_DecRef(res);
	else if (py->PyErr_Occurred())
		py->PyErr_Clear();
	py->PyGILState_Release(g);
}

static void *session_main(void *arg)
{
	char *path = arg;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	free(path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return NULL;
	}
	struct session *s = calloc(1, sizeof(*s));
	if (!s) {
		close(fd);
		return NULL;
	}
	s->fd = fd;
	s->refs = 1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->send_lock, NULL);
	pthread_cond_init(&s->idle, NULL);
	pthread_mutex_lock(&g_lock);
	s->no = g_next_session++;
	s->next = g_sessions;
	g_sessions = s;
	pthread_mutex_unlock(&g_lock);

	char why[200];
	py = fp_pyapi_load(why, sizeof(why));
	send_status(s, FP_AL_HELLO, py ? NULL : why);
	for (;;) {
		uint8_t op;
		uint32_t id;
		char *payload;
		size_t len;
		if (fp_al_recv(fd, &op, &id, &payload, &len, -1))
			break;
		switch (op) {
		case FP_AL_REQUEST:
			if (py) {
				start_request(s, id, payload);
				continue;
			}
			send_error(s, id, "no_python", why);
			break;
		case FP_AL_CANCEL:
			deliver(s, id, true, NULL);
			break;
		case FP_AL_INPUT:
			deliver(s, id, false, payload);
			continue;
		case FP_AL_PING:
			send_status(s, FP_AL_PONG, py ? NULL : why);
			break;
		default:
			break;
		}
		free(payload);
	}
	shutdown(fd, SHUT_RDWR);
	session_end(s);
	session_put(s);
	return NULL;
}

EXPORT int fpagent_start(const char *sock_path)
{
	if (!sock_path || strlen(sock_path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return -EINVAL;
	char *copy = strdup(sock_path);
	if (!copy)
		return -ENOMEM;
	int rc = start_thread(session_main, copy);
	if (rc) {
		free(copy);
		return -rc;
	}
	return 0;
}
