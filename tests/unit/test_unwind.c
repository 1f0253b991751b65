/*
 * Native stacks: the merge of native and Python frames on synthetic stacks of
 * every interpreter generation, and live unwinds of a forked C process whose
 * threads sleep in known functions, checking that they run again afterwards
 * and that nothing stays attached.  Needs root (ptrace).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon/unwind.h"

/* ---- merge ---- */

static struct fp_frame native(const char *func)
{
	struct fp_frame f = {.kind = FP_FRAME_NATIVE, .func = strdup(func), .pc = 0x1000};
	f.eval = strcmp(func, "_PyEval_EvalFrameDefault") == 0;
	f.library = strdup("libpython3.12.so.1.0");
	return f;
}

static struct fp_frame python(const char *func, bool entry)
{
	return (struct fp_frame){.kind = FP_FRAME_PY, .func = strdup(func), .entry = entry};
}

static struct fp_frame *array(size_t n, const struct fp_frame *v)
{
	struct fp_frame *a = malloc((n ? n : 1) * sizeof(*a));
	assert_non_null(a);
	if (n)
		memcpy(a, v, n * sizeof(*a));
	return a;
}

/* Merges and checks the result against "C:name" / "P:name" items, innermost first. */
static void check_merge(const struct fp_frame *nat, size_t nn, const struct fp_frame *py, size_t np,
			const char *const *want, size_t nwant)
{
	struct fp_frame *na = array(nn, nat), *pa = array(np, py), *out;
	size_t nout;
	assert_int_equal(fp_unwind_merge(na, nn, pa, np, &out, &nout), 0);
	free(na);
	free(pa);
	assert_int_equal(nout, nwant);
	for (size_t i = 0; i < nout; i++) {
		char got[128];
		snprintf(got, sizeof(got), "%c:%s", out[i].kind == FP_FRAME_PY ? 'P' : 'C',
			 out[i].func);
		assert_string_equal(got, want[i]);
		fp_frame_free(&out[i]);
	}
	free(out);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_merge_every_frame_entry(void **state)
{
	(void)state;
	/* <= 3.10: one eval call per Python frame. */
	struct fp_frame nat[] = {native("select"),
				 native("_PyEval_EvalFrameDefault"),
				 native("_PyFunction_Vectorcall"),
				 native("_PyEval_EvalFrameDefault"),
				 native("_PyEval_EvalFrameDefault"),
				 native("Py_RunMain")};
	struct fp_frame py[] = {python("wait", true), python("run", true),
				python("<module>", true)};
	const char *want[] = {"C:select", "P:wait",	"C:_PyFunction_Vectorcall",
			      "P:run",	  "P:<module>", "C:Py_RunMain"};
	check_merge(nat, N(nat), py, N(py), want, N(want));
}

static void test_merge_some_frames_entry(void **state)
{
	(void)state;
	/* 3.11+: one eval call runs Python-to-Python calls until a frame entered from C. */
	struct fp_frame nat[] = {native("clock_nanosleep"),	     native("time_sleep"),
				 native("_PyEval_EvalFrameDefault"), native("thread_run"),
				 native("_PyEval_EvalFrameDefault"), native("Py_RunMain")};
	struct fp_frame py[] = {python("inner", false), python("middle", false),
				python("target", true), python("worker", false),
				python("<module>", true)};
	const char *want[] = {"C:clock_nanosleep", "C:time_sleep", "P:inner",
			      "P:middle",	   "P:target",	   "C:thread_run",
			      "P:worker",	   "P:<module>",   "C:Py_RunMain"};
	check_merge(nat, N(nat), py, N(py), want, N(want));
}

static void test_merge_more_python_than_eval(void **state)
{
	(void)state;
	/* The native unwind stopped early: the rest of the Python stack is still shown. */
	struct fp_frame nat[] = {native("poll"), native("_PyEval_EvalFrameDefault")};
	struct fp_frame py[] = {python("a", false), python("b", true), python("c", true),
				python("d", false)};
	const char *want[] = {"C:poll", "P:a", "P:b", "P:c", "P:d"};
	check_merge(nat, N(nat), py, N(py), want, N(want));
}

static void test_merge_more_eval_than_python(void **state)
{
	(void)state;
	/* An eval frame with nothing left to stand for stays as itself. */
	struct fp_frame nat[] = {native("read"), native("_PyEval_EvalFrameDefault"),
				 native("builtin_exec"), native("_PyEval_EvalFrameDefault"),
				 native("main")};
	struct fp_frame py[] = {python("f", false), python("g", false)};
	const char *want[] = {
	    "C:read", "P:f", "P:g", "C:builtin_exec", "C:_PyEval_EvalFrameDefault", "C:main"};
	check_merge(nat, N(nat), py, N(py), want, N(want));
}

static void test_merge_no_eval(void **state)
{
	(void)state;
	struct fp_frame nat[] = {native("futex_wait"), native("start_thread")};
	struct fp_frame py[] = {python("run", true)};
	const char *want[] = {"C:futex_wait", "C:start_thread", "P:run"};
	check_merge(nat, N(nat), py, N(py), want, N(want));
	check_merge(NULL, 0, NULL, 0, NULL, 0);
}

/* ---- live ---- */

/*
 * Called through volatile pointers with work after each call, so the compiler
 * can neither inline, clone nor tail-call them away.
 */
void fp_test_sleep_inner(void);
void fp_test_sleep_outer(void);
void fp_test_cond_waiter(void);
void fp_test_after_vfork(void);

void fp_test_sleep_inner(void)
{
	for (;;) {
		struct timespec ts = {100, 0};
		nanosleep(&ts, NULL);
	}
}

static void (*volatile sleep_inner)(void) = fp_test_sleep_inner;

void fp_test_sleep_outer(void)
{
	sleep_inner();
	__asm__ volatile("" ::: "memory");
}

void fp_test_cond_waiter(void)
{
	static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	static pthread_cond_t c = PTHREAD_COND_INITIALIZER;
	pthread_mutex_lock(&m);
	for (;;)
		pthread_cond_wait(&c, &m);
}

void fp_test_after_vfork(void)
{
	for (;;)
		pause();
}

static void (*volatile sleep_outer)(void) = fp_test_sleep_outer;
static void (*volatile cond_waiter)(void) = fp_test_cond_waiter;
static void (*volatile after_vfork)(void) = fp_test_after_vfork;

static int tid_pipe[2];

static void send_tid(void)
{
	pid_t tid = (pid_t)syscall(SYS_gettid);
	if (write(tid_pipe[1], &tid, sizeof(tid)) != sizeof(tid))
		_exit(3);
}

static void *sleeper_main(void *arg)
{
	(void)arg;
	send_tid();
	sleep_outer();
	return NULL;
}

static void *waiter_main(void *arg)
{
	(void)arg;
	send_tid();
	cond_waiter();
	return NULL;
}

/* Blocks in vfork for 5 s: uninterruptible, so PTRACE_INTERRUPT cannot stop it. */
static void *vforker_main(void *arg)
{
	(void)arg;
	send_tid();
	pid_t p = vfork();
	if (p == 0) {
		struct timespec ts = {5, 0};
		syscall(SYS_nanosleep, &ts, NULL);
		_exit(0);
	}
	if (p > 0)
		waitpid(p, NULL, 0);
	after_vfork();
	return NULL;
}

static void wait_blocked(pid_t pid, pid_t tid, long nr)
{
	char path[96];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/syscall", (int)pid, (int)tid);
	for (int i = 0; i < 500; i++) {
		FILE *f = fopen(path, "r");
		assert_non_null(f);
		long cur = -1;
		int got = fscanf(f, "%ld", &cur);
		fclose(f);
		if (got == 1 && cur == nr)
			return;
		struct timespec ts = {0, 10000000};
		nanosleep(&ts, NULL);
	}
	fail_msg("thread %d never blocked in syscall %ld", (int)tid, nr);
}

struct child {
	pid_t pid;
	pid_t tid[3]; /* sleeper, waiter, vforker */
	size_t n;
};

static void start_child(struct child *c, bool with_vforker)
{
	assert_int_equal(pipe(tid_pipe), 0);
	c->n = with_vforker ? 3 : 2;
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		void *(*mains[])(void *) = {sleeper_main, waiter_main, vforker_main};
		for (size_t i = 0; i < c->n; i++) {
			pthread_t t;
			if (pthread_create(&t, NULL, mains[i], NULL) != 0)
				_exit(2);
			/* One at a time, so the tids arrive in a known order. */
			struct timespec ts = {0, 20000000};
			nanosleep(&ts, NULL);
		}
		for (;;)
			pause();
	}
	for (size_t i = 0; i < c->n; i++)
		assert_int_equal(read(tid_pipe[0], &c->tid[i], sizeof(pid_t)), sizeof(pid_t));
	close(tid_pipe[0]);
	close(tid_pipe[1]);
	/* A thread that has sent its tid may not have reached its function yet. */
	wait_blocked(c->pid, c->tid[0], SYS_clock_nanosleep);
	wait_blocked(c->pid, c->tid[1], SYS_futex);
}

static void stop_child(struct child *c)
{
	kill(c->pid, SIGKILL);
	waitpid(c->pid, NULL, 0);
}

/* The thread's scheduler state and tracer, from /proc. */
static char thread_state(pid_t pid, pid_t tid, int *tracer)
{
	char path[96], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)tid);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char state = '?';
	*tracer = -1;
	while (fgets(buf, sizeof(buf), f)) {
		if (strncmp(buf, "State:", 6) == 0)
			sscanf(buf + 6, " %c", &state);
		else if (strncmp(buf, "TracerPid:", 10) == 0)
			*tracer = atoi(buf + 10);
	}
	fclose(f);
	return state;
}

static void assert_running(pid_t pid, pid_t tid)
{
	int tracer;
	char st = thread_state(pid, tid, &tracer);
	assert_true(st != 't' && st != 'T');
	assert_int_equal(tracer, 0);
}

static long find_func(const struct fp_thread *t, const char *func)
{
	for (size_t i = 0; i < t->nframes; i++)
		if (t->frames[i].func && strcmp(t->frames[i].func, func) == 0)
			return (long)i;
	return -1;
}

static bool has_library(const struct fp_thread *t, const char *library)
{
	for (size_t i = 0; i < t->nframes; i++)
		if (t->frames[i].library && strcmp(t->frames[i].library, library) == 0)
			return true;
	return false;
}

static const char *self_name(void)
{
	static char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	return strrchr(exe, '/') + 1;
}

static void check_sleeper(const struct fp_thread *t)
{
	assert_null(t->error);
	long inner = find_func(t, "fp_test_sleep_inner");
	long outer = find_func(t, "fp_test_sleep_outer");
	assert_true(inner >= 0);
	/* Innermost first. */
	assert_true(outer > inner);
	assert_int_equal(t->frames[inner].kind, FP_FRAME_NATIVE);
	assert_string_equal(t->frames[inner].library, self_name());
	assert_non_null(t->frames[inner].file);
	assert_non_null(strstr(t->frames[inner].file, "test_unwind.c"));
	assert_true(t->frames[inner].line > 0);
	assert_true(t->frames[inner].pc != 0);
	assert_false(t->frames[inner].eval);
	assert_true(has_library(t, "libc.so.6"));
}

static void check_waiter(const struct fp_thread *t)
{
	assert_null(t->error);
	assert_true(find_func(t, "fp_test_cond_waiter") >= 0);
	assert_true(has_library(t, "libc.so.6"));
}

static void free_threads(struct fp_stack *s)
{
	for (size_t i = 0; i < s->nthreads; i++) {
		for (size_t k = 0; k < s->threads[i].nframes; k++)
			fp_frame_free(&s->threads[i].frames[k]);
		free(s->threads[i].frames);
		free(s->threads[i].error);
	}
	free(s->threads);
	s->threads = NULL;
	s->nthreads = 0;
}

static void test_live(void **state)
{
	(void)state;
	struct child c;
	start_child(&c, false);
	for (int round = 0; round < 2; round++) {
		/* A thread with no host tid keeps its Python frames and says why. */
		struct fp_stack s = {.nthreads = 3};
		s.threads = calloc(3, sizeof(*s.threads));
		s.threads[0].tid = c.tid[0];
		s.threads[0].frames = malloc(sizeof(struct fp_frame));
		s.threads[0].frames[0] = python("<module>", true);
		s.threads[0].nframes = 1;
		s.threads[1].tid = c.tid[1];
		s.threads[2].frames = malloc(sizeof(struct fp_frame));
		s.threads[2].frames[0] = python("lost", true);
		s.threads[2].nframes = 1;

		char err[256] = "";
		assert_int_equal(fp_unwind_stack(c.pid, &s, NULL, NULL, err, sizeof(err)), 0);
		check_sleeper(&s.threads[0]);
		/* No eval frame in a C program: the Python frame goes to the outer end. */
		struct fp_thread *t0 = &s.threads[0];
		assert_int_equal(t0->frames[t0->nframes - 1].kind, FP_FRAME_PY);
		assert_string_equal(t0->frames[t0->nframes - 1].func, "<module>");
		check_waiter(&s.threads[1]);
		assert_int_equal(s.threads[2].nframes, 1);
		assert_non_null(s.threads[2].error);
		assert_non_null(strstr(s.threads[2].error, "unknown"));
		free_threads(&s);

		assert_running(c.pid, c.tid[0]);
		assert_running(c.pid, c.tid[1]);
	}
	stop_child(&c);
}

static void test_thread_that_cannot_stop(void **state)
{
	(void)state;
	struct child c;
	start_child(&c, true);
	int tracer;
	for (int i = 0; i < 100 && thread_state(c.pid, c.tid[2], &tracer) != 'D'; i++) {
		struct timespec ts = {0, 10000000};
		nanosleep(&ts, NULL);
	}
	assert_int_equal(thread_state(c.pid, c.tid[2], &tracer), 'D');

	struct fp_stack s = {.nthreads = 3};
	s.threads = calloc(3, sizeof(*s.threads));
	for (size_t i = 0; i < 3; i++)
		s.threads[i].tid = c.tid[i];
	char err[256] = "";
	assert_int_equal(fp_unwind_stack(c.pid, &s, NULL, NULL, err, sizeof(err)), 0);
	/* It gave up on the thread instead of waiting for the vfork to end. */
	assert_int_equal(thread_state(c.pid, c.tid[2], &tracer), 'D');
	check_sleeper(&s.threads[0]);
	check_waiter(&s.threads[1]);
	assert_non_null(s.threads[2].error);
	assert_non_null(strstr(s.threads[2].error, "did not stop"));
	free_threads(&s);
	assert_running(c.pid, c.tid[0]);

	/* Once out of vfork it must run on, not fall into a stop left pending. */
	for (int i = 0; i < 1000 && thread_state(c.pid, c.tid[2], &tracer) == 'D'; i++) {
		struct timespec ts = {0, 10000000};
		nanosleep(&ts, NULL);
	}
	struct timespec ts = {0, 100000000};
	nanosleep(&ts, NULL);
	assert_running(c.pid, c.tid[2]);

	s.nthreads = 1;
	s.threads = calloc(1, sizeof(*s.threads));
	s.threads[0].tid = c.tid[2];
	assert_int_equal(fp_unwind_stack(c.pid, &s, NULL, NULL, err, sizeof(err)), 0);
	assert_null(s.threads[0].error);
	assert_true(find_func(&s.threads[0], "fp_test_after_vfork") >= 0);
	free_threads(&s);
	assert_running(c.pid, c.tid[2]);
	stop_child(&c);
}

static void test_foreign_thread(void **state)
{
	(void)state;
	/* A tid from the target's memory that belongs to another process is refused. */
	struct child target, other;
	start_child(&target, false);
	start_child(&other, false);
	struct fp_stack s = {.nthreads = 1};
	s.threads = calloc(1, sizeof(*s.threads));
	s.threads[0].tid = other.tid[0];
	char err[256] = "";
	assert_int_equal(fp_unwind_stack(target.pid, &s, NULL, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "is not a thread of process"));
	assert_int_equal(s.threads[0].nframes, 0);
	free_threads(&s);
	assert_running(other.pid, other.tid[0]);
	stop_child(&other);
	stop_child(&target);
}

static void test_missing_process(void **state)
{
	(void)state;
	pid_t p = fork();
	if (p == 0)
		_exit(0);
	waitpid(p, NULL, 0);
	struct fp_stack s = {.nthreads = 1};
	s.threads = calloc(1, sizeof(*s.threads));
	s.threads[0].tid = p;
	char err[256] = "";
	assert_int_equal(fp_unwind_stack(p, &s, NULL, NULL, err, sizeof(err)), -1);
	assert_true(err[0] != '\0');
	free_threads(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_merge_every_frame_entry),
	    cmocka_unit_test(test_merge_some_frames_entry),
	    cmocka_unit_test(test_merge_more_python_than_eval),
	    cmocka_unit_test(test_merge_more_eval_than_python),
	    cmocka_unit_test(test_merge_no_eval),
	    cmocka_unit_test(test_live),
	    cmocka_unit_test(test_thread_that_cannot_stop),
	    cmocka_unit_test(test_foreign_thread),
	    cmocka_unit_test(test_missing_process),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
