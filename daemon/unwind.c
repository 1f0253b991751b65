/*
 * Native stacks: the listed threads are stopped together with PTRACE_SEIZE +
 * PTRACE_INTERRUPT, unwound with libdwfl, and resumed; symbols, source lines
 * and inlined frames are looked up after they run again, since that only
 * needs the modules' files.
 *
 * All ptrace work happens on a short-lived thread of its own.  When a thread
 * exits, the kernel detaches every tracee it still holds, stopped or not, and
 * releases traced zombies, so neither a target thread that never reached its
 * stop (one in uninterruptible sleep cannot be detached by PTRACE_DETACH) nor
 * a target that dies mid-way is left behind.
 */
#include "unwind.h"

#include <dwarf.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* How long a thread may take to reach its stop before it is given up. */
#define STOP_TIMEOUT_NS 1000000000LL
/* Stops longer than this are logged: the target was visibly frozen. */
#define SLOW_STOP_NS 100000000LL

#define EVAL_FUNC "_PyEval_EvalFrameDefault"

enum tstate {
	T_IDLE,	   /* not attached */
	T_SEIZED,  /* attached, its stop not seen (yet) */
	T_STOPPED, /* in a ptrace stop: registers and stack can be read */
	T_DONE,	   /* detached, or gone */
};

struct target_thread {
	pid_t tid;
	enum tstate state;
	int sig;      /* signal that stopped it, delivered again on detach */
	bool stopped; /* reached its stop, whatever happened after */
	Dwarf_Addr pc[FP_UNWIND_MAX_FRAMES];
	bool activation[FP_UNWIND_MAX_FRAMES];
	size_t n;
	char *error;
};

struct job {
	pid_t pid;
	int root; /* O_PATH of /proc/PID/root: the target's files as it sees them */
	Dwfl *dwfl;
	struct target_thread *t;
	size_t n;
	int64_t stop_ns; /* from the first seize to the last detach */
	void (*while_stopped)(void *arg);
	void *arg;
};

static pthread_mutex_t ptrace_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t ptrace_once = PTHREAD_ONCE_INIT;

/*
 * An exit while a thread holds the lock would end that thread mid-way: the
 * kernel would then detach a target thread the injector had hijacked.  So
 * exit waits for the lock, and keeps it.
 */
static void hold_at_exit(void)
{
	pthread_mutex_lock(&ptrace_lock);
}

static void register_exit_hold(void)
{
	atexit(hold_at_exit);
}

void fp_ptrace_lock(void)
{
	pthread_once(&ptrace_once, register_exit_hold);
	pthread_mutex_lock(&ptrace_lock);
}

void fp_ptrace_unlock(void)
{
	pthread_mutex_unlock(&ptrace_lock);
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Keeps the first reason only: later failures are usually its consequences. */
__attribute__((format(printf, 2, 3))) static void note(struct target_thread *t, const char *fmt,
						       ...)
{
	if (t->error)
		return;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&t->error, fmt, ap) < 0)
		t->error = NULL;
	va_end(ap);
}

/*
 * find_elf callback.  The stock dwfl_linux_proc_find_elf opens the path from
 * /proc/PID/maps in fpd's own mount namespace, which is the wrong file (or
 * none) for a target in a container.  RESOLVE_IN_ROOT keeps symlinks and ".."
 * inside the target's root, so a target cannot make root open host files, and
 * O_PATH + fstat keeps device mappings (GPU drivers map /dev nodes) from being
 * opened for real.
 */
int fp_unwind_find_elf(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr base,
		       char **file_name, Elf **elfp, int root, pid_t pid)
{
	size_t len = strlen(name);
	/* Deleted files and the vDSO exist only in memory: the stock callback reads them there. */
	if (name[0] != '/' || (len > 10 && strcmp(name + len - 10, " (deleted)") == 0))
		return dwfl_linux_proc_find_elf(mod, userdata, name, base, file_name, elfp);

	struct open_how how = {
	    .flags = O_PATH | O_CLOEXEC,
	    .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	int pfd = (int)syscall(SYS_openat2, root, name, &how, sizeof(how));
	/* Kernels before 5.6: the right file still, only without the confinement. */
	if (pfd < 0 && errno == ENOSYS)
		pfd = openat(root, name + 1, O_PATH | O_CLOEXEC);
	if (pfd < 0)
		return -1;
	struct stat st;
	char self[64];
	int fd = -1;
	if (fstat(pfd, &st) == 0 && S_ISREG(st.st_mode)) {
		snprintf(self, sizeof(self), "/proc/self/fd/%d", pfd);
		fd = open(self, O_RDONLY | O_CLOEXEC);
	}
	close(pfd);
	if (fd < 0)
		return -1;
	/* The name is where dwfl_standard_find_debuginfo looks for .gnu_debuglink files. */
	if (asprintf(file_name, "/proc/%d/root%s", (int)pid, name) < 0) {
		*file_name = NULL;
		close(fd);
		return -1;
	}
	return fd;
}

static int find_elf(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr base,
		    char **file_name, Elf **elfp)
{
	const struct job *j = *userdata;
	return fp_unwind_find_elf(mod, userdata, name, base, file_name, elfp, j->root, j->pid);
}

static const Dwfl_Callbacks callbacks = {
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

/*
 * Opening ELF files and parsing their CFI would otherwise happen during the
 * stop, at the first frame in each module.
 */
static int preload(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr start, void *arg)
{
	(void)userdata, (void)name, (void)start, (void)arg;
	Dwarf_Addr bias;
	if (dwfl_module_getelf(mod, &bias) && !dwfl_module_eh_cfi(mod, &bias))
		dwfl_module_dwarf_cfi(mod, &bias);
	return DWARF_CB_OK;
}

static int open_target(struct job *j, char *err, size_t errlen)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/root", (int)j->pid);
	j->root = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (j->root < 0) {
		snprintf(err, errlen, "opening %s failed: %s", path, strerror(errno));
		return -1;
	}
	j->dwfl = dwfl_begin(&callbacks);
	if (!j->dwfl) {
		snprintf(err, errlen, "dwfl_begin failed: %s", dwfl_errmsg(-1));
		return -1;
	}
	int rc = dwfl_linux_proc_report(j->dwfl, j->pid);
	if (rc != 0) {
		snprintf(err, errlen, "reading the mappings of process %d failed: %s", (int)j->pid,
			 rc > 0 ? strerror(rc) : dwfl_errmsg(-1));
		return -1;
	}
	if (dwfl_report_end(j->dwfl, NULL, NULL) != 0) {
		snprintf(err, errlen, "reporting the modules of process %d failed: %s", (int)j->pid,
			 dwfl_errmsg(-1));
		return -1;
	}
	/* Before attaching: attaching may already open the executable through find_elf. */
	dwfl_getmodules(j->dwfl, set_userdata, j, 0);
	rc = dwfl_linux_proc_attach(j->dwfl, j->pid, true);
	if (rc != 0) {
		snprintf(err, errlen, "dwfl_linux_proc_attach to process %d failed: %s",
			 (int)j->pid, rc > 0 ? strerror(rc) : dwfl_errmsg(-1));
		return -1;
	}
	dwfl_getmodules(j->dwfl, preload, NULL, 0);
	return 0;
}

/*
 * A tid comes from the target's own memory.  Once seized it cannot be reused
 * until we let go, so checking it here proves it is a thread of the target
 * and not of some other process the client may not inspect.
 */
static bool thread_of(pid_t pid, pid_t tid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task/%d", (int)pid, (int)tid);
	return access(path, F_OK) == 0;
}

/* TracerPid of a thread, 0 when none or unknown: a thread has one tracer at most. */
static pid_t tracer_of(pid_t pid, pid_t tid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)tid);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	pid_t tracer = 0;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "TracerPid:", 10) == 0) {
			tracer = (pid_t)atoi(line + 10);
			break;
		}
	fclose(f);
	return tracer;
}

static void stop_all(struct job *j)
{
	for (size_t i = 0; i < j->n; i++) {
		struct target_thread *t = &j->t[i];
		if (t->state != T_IDLE)
			continue;
		if (ptrace(PTRACE_SEIZE, t->tid, NULL, NULL) != 0) {
			int e = errno;
			pid_t tracer = e == EPERM ? tracer_of(j->pid, t->tid) : 0;
			if (tracer > 0)
				note(t,
				     "PTRACE_SEIZE of thread %d failed: it is already traced by "
				     "process %d (a debugger?)",
				     (int)t->tid, (int)tracer);
			else
				note(t, "PTRACE_SEIZE of thread %d failed: %s", (int)t->tid,
				     strerror(e));
			t->state = T_DONE;
			continue;
		}
		t->state = T_SEIZED;
		if (!thread_of(j->pid, t->tid)) {
			note(t, "thread %d is not a thread of process %d", (int)t->tid,
			     (int)j->pid);
			continue;
		}
		if (ptrace(PTRACE_INTERRUPT, t->tid, NULL, NULL) != 0)
			note(t, "PTRACE_INTERRUPT of thread %d failed: %s", (int)t->tid,
			     strerror(errno));
	}
}

static void wait_stops(struct job *j, int64_t deadline)
{
	/* Short polls: on a busy machine the last threads take several ms to be scheduled. */
	long pause_ns = 10000;
	for (;;) {
		size_t pending = 0;
		for (size_t i = 0; i < j->n; i++) {
			struct target_thread *t = &j->t[i];
			if (t->state != T_SEIZED || t->error)
				continue;
			int st;
			pid_t r = waitpid(t->tid, &st, __WALL | WNOHANG);
			if (r == 0) {
				pending++;
			} else if (r < 0) {
				note(t, "waiting for thread %d to stop failed: %s", (int)t->tid,
				     strerror(errno));
			} else if (WIFSTOPPED(st)) {
				t->state = T_STOPPED;
				t->stopped = true;
				/* A signal stop came first: the signal is still due. */
				if (st >> 16 != PTRACE_EVENT_STOP)
					t->sig = WSTOPSIG(st);
			} else {
				note(t, "thread %d exited before it stopped", (int)t->tid);
				t->state = T_DONE;
			}
		}
		if (pending == 0)
			return;
		if (now_ns() >= deadline) {
			for (size_t i = 0; i < j->n; i++)
				if (j->t[i].state == T_SEIZED)
					note(&j->t[i],
					     "thread %d did not stop within %lld ms (blocked in "
					     "the kernel)",
					     (int)j->t[i].tid, STOP_TIMEOUT_NS / 1000000);
			return;
		}
		struct timespec ts = {0, pause_ns};
		nanosleep(&ts, NULL);
		if (pause_ns < 200000)
			pause_ns *= 2;
	}
}

static int frame_cb(Dwfl_Frame *state, void *arg)
{
	struct target_thread *t = arg;
	if (t->n == FP_UNWIND_MAX_FRAMES)
		return DWARF_CB_ABORT;
	if (!dwfl_frame_pc(state, &t->pc[t->n], &t->activation[t->n]))
		return DWARF_CB_ABORT;
	t->n++;
	return DWARF_CB_OK;
}

static void unwind_all(struct job *j)
{
	for (size_t i = 0; i < j->n; i++) {
		struct target_thread *t = &j->t[i];
		if (t->state != T_STOPPED)
			continue;
		/* A stack whose outer end cannot be unwound still has its inner frames. */
		if (dwfl_getthread_frames(j->dwfl, t->tid, frame_cb, t) != 0 && t->n == 0)
			note(t, "unwinding thread %d failed: %s", (int)t->tid, dwfl_errmsg(-1));
	}
}

static void detach_all(struct job *j)
{
	for (size_t i = 0; i < j->n; i++) {
		struct target_thread *t = &j->t[i];
		if (t->state != T_STOPPED)
			continue;
		/* ESRCH: it was killed while stopped; the exit of this thread reaps it. */
		if (ptrace(PTRACE_DETACH, t->tid, NULL, (void *)(long)t->sig) != 0)
			note(t, "PTRACE_DETACH of thread %d failed: %s", (int)t->tid,
			     strerror(errno));
		t->state = T_DONE;
	}
}

static void *tracer_main(void *arg)
{
	struct job *j = arg;
	int64_t start = now_ns();
	stop_all(j);
	wait_stops(j, start + STOP_TIMEOUT_NS);
	if (j->while_stopped)
		j->while_stopped(j->arg);
	unwind_all(j);
	detach_all(j);
	j->stop_ns = now_ns() - start;
	return NULL;
}

/* Runs the tracer with every signal blocked: nothing may suspend it while it holds stops. */
static int run_tracer(struct job *j, char *err, size_t errlen)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_t th;
	int e = pthread_create(&th, NULL, tracer_main, j);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		snprintf(err, errlen, "starting the unwinder thread failed: %s", strerror(e));
		return -1;
	}
	pthread_join(th, NULL);
	return 0;
}

struct fvec {
	struct fp_frame *v;
	size_t n, cap;
};

static int push(struct fvec *fv, Dwarf_Addr pc, const char *func, const char *file, int line,
		const char *library, bool eval)
{
	if (fv->n == fv->cap) {
		size_t cap = fv->cap ? fv->cap * 2 : 64;
		struct fp_frame *v = realloc(fv->v, cap * sizeof(*v));
		if (!v)
			return -1;
		fv->v = v;
		fv->cap = cap;
	}
	struct fp_frame *f = &fv->v[fv->n];
	memset(f, 0, sizeof(*f));
	f->kind = FP_FRAME_NATIVE;
	f->pc = pc;
	f->line = line;
	f->eval = eval;
	/* "clock_nanosleep@GLIBC_2.2.5": the symbol version says nothing about the frame. */
	f->func = func ? strndup(func, strcspn(func, "@")) : NULL;
	f->file = file ? strdup(file) : NULL;
	f->library = library ? strdup(library) : NULL;
	fv->n++;
	if ((func && !f->func) || (file && !f->file) || (library && !f->library))
		return -1;
	return 0;
}

/* GCC's hot/cold splitting names the cold part "<name>.cold". */
static bool is_eval(const char *sym)
{
	size_t n = strlen(EVAL_FUNC);
	return sym && strncmp(sym, EVAL_FUNC, n) == 0 && (sym[n] == '\0' || sym[n] == '.');
}

static const char *die_name(Dwarf_Die *die)
{
	Dwarf_Attribute a;
	return dwarf_formstring(dwarf_attr_integrate(die, DW_AT_name, &a));
}

/*
 * One unwound pc -> its frame, preceded by one frame per function inlined at
 * that pc (innermost first), each at the line it was executing: the line
 * table's for the innermost, the call site's for the others.
 */
static int symbolize(Dwfl *dwfl, Dwarf_Addr pc, bool activation, struct fvec *fv)
{
	/* A caller's pc is the return address, which may already be the next line or function. */
	Dwarf_Addr at = activation ? pc : pc - 1;
	Dwfl_Module *mod = dwfl_addrmodule(dwfl, at);
	if (!mod)
		return push(fv, pc, NULL, NULL, 0, NULL, false);

	const char *modname = dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
	const char *library = modname;
	if (strncmp(modname, "[vdso", 5) == 0)
		library = "[vdso]";
	else if (strrchr(modname, '/'))
		library = strrchr(modname, '/') + 1;

	GElf_Off off;
	GElf_Sym sym;
	const char *func = dwfl_module_addrinfo(mod, at, &off, &sym, NULL, NULL, NULL);
	const char *file = NULL;
	int line = 0;
	Dwfl_Line *l = dwfl_module_getsrc(mod, at);
	if (l)
		file = dwfl_lineinfo(l, NULL, &line, NULL, NULL, NULL);

	Dwarf_Addr bias;
	Dwarf_Die *cu = dwfl_module_addrdie(mod, at, &bias);
	Dwarf_Die *scopes = NULL;
	int nscopes = cu ? dwarf_getscopes(cu, at - bias, &scopes) : 0;
	Dwarf_Files *files = NULL;
	if (nscopes > 0 && dwarf_getsrcfiles(cu, &files, NULL) != 0)
		files = NULL;
	int rc = 0;
	for (int i = 0; i < nscopes && rc == 0; i++) {
		int tag = dwarf_tag(&scopes[i]);
		if (tag == DW_TAG_subprogram) {
			if (!func)
				func = die_name(&scopes[i]);
			break;
		}
		if (tag != DW_TAG_inlined_subroutine)
			continue;
		rc = push(fv, pc, die_name(&scopes[i]), file, line, library, false);
		Dwarf_Attribute a;
		Dwarf_Word w;
		file = NULL;
		line = 0;
		if (files && dwarf_formudata(dwarf_attr(&scopes[i], DW_AT_call_file, &a), &w) == 0)
			file = dwarf_filesrc(files, w, NULL, NULL);
		if (dwarf_formudata(dwarf_attr(&scopes[i], DW_AT_call_line, &a), &w) == 0)
			line = (int)w;
	}
	free(scopes);
	if (rc == 0)
		rc = push(fv, pc, func, file, line, library, is_eval(func));
	return rc;
}

static void free_frames(struct fp_frame *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fp_frame_free(&v[i]);
	free(v);
}

int fp_unwind_merge(struct fp_frame *native, size_t nnative, struct fp_frame *py, size_t npy,
		    struct fp_frame **out, size_t *nout)
{
	/* The only failure point comes first, so that a failure takes nothing. */
	struct fp_frame *v = malloc((nnative + npy ? nnative + npy : 1) * sizeof(*v));
	if (!v)
		return -1;
	size_t n = 0, j = 0;
	for (size_t i = 0; i < nnative; i++) {
		/* An eval frame with no Python frame left to stand for stays visible as itself. */
		if (!native[i].eval || j == npy) {
			v[n++] = native[i];
			continue;
		}
		fp_frame_free(&native[i]);
		bool entry;
		do {
			entry = py[j].entry;
			v[n++] = py[j++];
		} while (!entry && j < npy);
	}
	while (j < npy)
		v[n++] = py[j++];
	*out = v;
	*nout = n;
	return 0;
}

static void thread_error(struct fp_thread *th, const char *msg)
{
	char *e;
	if (!th->error)
		e = strdup(msg);
	else if (asprintf(&e, "%s; %s", th->error, msg) < 0)
		e = NULL;
	if (!e)
		return;
	free(th->error);
	th->error = e;
}

/*
 * The threads of one process mostly sit at the same few pcs, and a symbol
 * lookup scans the module's whole symbol table: each distinct pc is
 * symbolized once.
 */
struct symcache {
	Dwfl *dwfl;
	struct symentry {
		Dwarf_Addr pc;
		bool activation, used;
		struct fvec frames;
	} * v;
	size_t cap; /* a power of two, at least twice the number of pcs */
};

static int symcache_init(struct symcache *c, Dwfl *dwfl, size_t npcs)
{
	c->dwfl = dwfl;
	c->cap = 16;
	while (c->cap < 2 * npcs)
		c->cap *= 2;
	c->v = calloc(c->cap, sizeof(*c->v));
	return c->v ? 0 : -1;
}

static void symcache_free(struct symcache *c)
{
	for (size_t i = 0; i < c->cap; i++)
		if (c->v[i].used)
			free_frames(c->v[i].frames.v, c->v[i].frames.n);
	free(c->v);
}

static int symcache_append(struct symcache *c, Dwarf_Addr pc, bool activation, struct fvec *fv)
{
	size_t i = (size_t)((pc * 0x9e3779b97f4a7c15ULL) >> 32) & (c->cap - 1);
	while (c->v[i].used && (c->v[i].pc != pc || c->v[i].activation != activation))
		i = (i + 1) & (c->cap - 1);
	struct symentry *e = &c->v[i];
	if (!e->used) {
		e->used = true;
		e->pc = pc;
		e->activation = activation;
		if (symbolize(c->dwfl, pc, activation, &e->frames) != 0)
			return -1;
	}
	for (size_t k = 0; k < e->frames.n; k++) {
		const struct fp_frame *f = &e->frames.v[k];
		if (push(fv, f->pc, f->func, f->file, f->line, f->library, f->eval) != 0)
			return -1;
	}
	return 0;
}

/* Replaces th's frames by the merge of its native stack and its Python frames. */
static void merge_thread(struct symcache *c, struct target_thread *t, struct fp_thread *th)
{
	struct fvec fv = {0};
	int rc = 0;
	for (size_t k = 0; k < t->n && rc == 0; k++)
		rc = symcache_append(c, t->pc[k], t->activation[k], &fv);
	struct fp_frame *merged;
	size_t nmerged;
	if (rc != 0 ||
	    fp_unwind_merge(fv.v, fv.n, th->frames, th->nframes, &merged, &nmerged) != 0) {
		free_frames(fv.v, fv.n);
		thread_error(th, "out of memory while symbolizing the native stack");
		return;
	}
	free(fv.v);
	free(th->frames);
	th->frames = merged;
	th->nframes = nmerged;
}

static struct fp_thread *thread_by_tid(struct fp_stack *s, pid_t tid)
{
	for (size_t i = 0; i < s->nthreads; i++)
		if (s->threads[i].tid == tid)
			return &s->threads[i];
	return NULL;
}

int fp_unwind_stack(pid_t pid, struct fp_stack *s, void (*while_stopped)(void *arg), void *arg,
		    char *err, size_t errlen)
{
	if (s->nthreads == 0)
		return 0;
	struct job j = {
	    .pid = pid, .root = -1, .n = s->nthreads, .while_stopped = while_stopped, .arg = arg};
	j.t = calloc(s->nthreads, sizeof(*j.t));
	if (!j.t) {
		snprintf(err, errlen, "out of memory for %zu threads", s->nthreads);
		return -1;
	}
	for (size_t i = 0; i < j.n; i++) {
		j.t[i].tid = s->threads[i].tid;
		if (j.t[i].tid <= 0) {
			note(&j.t[i], "no native stack: the host thread id is unknown");
			j.t[i].state = T_DONE;
		}
	}

	int rc = -1;
	if (open_target(&j, err, errlen) != 0 || run_tracer(&j, err, errlen) != 0)
		goto out;
	if (j.stop_ns >= SLOW_STOP_NS)
		fp_log("stack --native: %zu threads of process %d were stopped for %lld ms", j.n,
		       (int)pid, (long long)(j.stop_ns / 1000000));

	const char *first_error = NULL;
	bool stopped = false;
	for (size_t i = 0; i < j.n; i++) {
		stopped |= j.t[i].stopped;
		if (!first_error)
			first_error = j.t[i].error;
	}
	if (!stopped) {
		/* The first reason is the one that tells what is wrong, e.g. EPERM. */
		snprintf(err, errlen, "%s", first_error ? first_error : "no thread to stop");
		goto out;
	}
	size_t npcs = 0;
	for (size_t i = 0; i < j.n; i++)
		npcs += j.t[i].n;
	struct symcache cache;
	if (symcache_init(&cache, j.dwfl, npcs) != 0) {
		snprintf(err, errlen, "out of memory for the symbols of %zu frames", npcs);
		goto out;
	}
	/* while_stopped may have read the stacks again: match threads by tid, not position. */
	for (size_t i = 0; i < j.n; i++) {
		struct fp_thread *th = thread_by_tid(s, j.t[i].tid);
		if (!th)
			continue;
		if (j.t[i].n > 0)
			merge_thread(&cache, &j.t[i], th);
		if (j.t[i].error)
			thread_error(th, j.t[i].error);
	}
	symcache_free(&cache);
	rc = 0;
out:
	if (j.dwfl)
		dwfl_end(j.dwfl);
	if (j.root >= 0)
		close(j.root);
	for (size_t i = 0; i < j.n; i++)
		free(j.t[i].error);
	free(j.t);
	return rc;
}
