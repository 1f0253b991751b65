/*
 * The injector's pure parts: the syscall lists and the unsafe-library test
 * of the safe-point check, libc and helper lookup in maps, symbol
 * addresses from a mapping's base (fake maps, and this process's own libc
 * against the dynamic linker's answer), the PEP 768 offsets of 3.13 (the
 * real bytes of pyenv's libpython3.13) and 3.14 (synthetic), the PEP 768
 * script (run by /usr/bin/python3 against a missing library), and the PEP 768
 * request written into a forked child that carries a fake 3.14 _PyRuntime
 * in its own .PyRuntime section.  The last needs root (ptrace).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/inject.h"
#include "daemon/py/python.h"
#include "fp/layout.h"

static void test_syscall_allow_list(void **state)
{
	(void)state;
	static const long safe[] = {SYS_read,	  SYS_poll,	 SYS_ppoll,	      SYS_select,
				    SYS_pselect6, SYS_nanosleep, SYS_clock_nanosleep, SYS_futex,
				    SYS_wait4,	  SYS_accept4,	 SYS_restart_syscall, SYS_write};
	for (size_t i = 0; i < sizeof(safe) / sizeof(safe[0]); i++)
		assert_true(fp_inject_syscall_safe(safe[i]));
	/* EINTR leaks out of these after a stop; the others may hold locks or half-done work. */
	static const long unsafe[] = {
	    SYS_epoll_wait, SYS_epoll_pwait, SYS_rt_sigtimedwait, SYS_mmap,
	    SYS_openat,	    SYS_connect,     SYS_flock,		  -1,
	    100000};
	for (size_t i = 0; i < sizeof(unsafe) / sizeof(unsafe[0]); i++)
		assert_false(fp_inject_syscall_safe(unsafe[i]));
	/* Only waiting, so acceptable once stopped there; the others are not. */
	assert_true(fp_inject_syscall_idle(SYS_epoll_wait));
	assert_true(fp_inject_syscall_idle(SYS_epoll_pwait));
	assert_true(fp_inject_syscall_idle(SYS_rt_sigtimedwait));
	assert_false(fp_inject_syscall_idle(SYS_mmap));
	assert_false(fp_inject_syscall_idle(SYS_write));
	assert_false(fp_inject_syscall_idle(SYS_read));
}

static void test_unsafe_paths(void **state)
{
	(void)state;
	assert_true(fp_inject_path_unsafe("/lib/x86_64-linux-gnu/libc.so.6"));
	assert_true(fp_inject_path_unsafe("/usr/lib/x86_64-linux-gnu/libc.so.6 (deleted)"));
	assert_true(fp_inject_path_unsafe("/lib/libc-2.31.so"));
	assert_true(fp_inject_path_unsafe("/lib64/ld-linux-x86-64.so.2"));
	assert_true(fp_inject_path_unsafe("/lib/ld-musl-x86_64.so.1"));
	assert_true(fp_inject_path_unsafe("/lib/x86_64-linux-gnu/libpthread.so.0"));
	assert_true(fp_inject_path_unsafe("/usr/lib/libjemalloc.so.2"));
	assert_false(
	    fp_inject_path_unsafe("/root/.pyenv/versions/3.12.1/lib/libpython3.12.so.1.0"));
	assert_false(fp_inject_path_unsafe("/usr/bin/python3.11"));
	assert_false(fp_inject_path_unsafe("/usr/lib/x86_64-linux-gnu/libcrypto.so.3"));
	assert_false(fp_inject_path_unsafe("/usr/lib/x86_64-linux-gnu/libdlt.so"));
}

static void parse(const char *text, struct fp_maps *m)
{
	assert_int_equal(fp_maps_parse(text, strlen(text), m), 0);
}

static void test_find_libc_and_agent(void **state)
{
	(void)state;
	struct fp_maps m;
	enum fp_libc kind;
	parse(
	    "400000-401000 r--p 00000000 fe:00 1 /usr/bin/python3.11\n"
	    "7f0000000000-7f0000028000 r--p 00028000 fe:00 2 /usr/lib/x86_64-linux-gnu/libc.so.6\n"
	    "7f0000028000-7f0000100000 r-xp 00000000 fe:00 2 /usr/lib/x86_64-linux-gnu/libc.so.6\n"
	    "7f0000200000-7f0000201000 r--p 00000000 fe:00 3 /tmp/.fpd-x/libfpagent.so (deleted)\n"
	    "7f0000201000-7f0000202000 r-xp 00001000 fe:00 3 /tmp/.fpd-x/libfpagent.so (deleted)\n",
	    &m);
	const struct fp_map *libc = fp_inject_find_libc(&m, &kind);
	assert_non_null(libc);
	assert_int_equal(kind, FP_LIBC_GLIBC);
	/* The mapping of file offset 0, not the first one listed. */
	assert_int_equal(libc->start, 0x7f0000028000ULL);
	const struct fp_map *agent = fp_inject_find_agent(&m);
	assert_non_null(agent);
	assert_int_equal(agent->start, 0x7f0000200000ULL);
	fp_maps_free(&m);

	parse("7f0000000000-7f0000100000 r-xp 00000000 fe:00 9 /lib/ld-musl-x86_64.so.1\n", &m);
	assert_non_null(fp_inject_find_libc(&m, &kind));
	assert_int_equal(kind, FP_LIBC_MUSL);
	assert_null(fp_inject_find_agent(&m));
	fp_maps_free(&m);

	parse("400000-500000 r-xp 00000000 fe:00 1 /usr/local/bin/static-python\n", &m);
	assert_null(fp_inject_find_libc(&m, &kind));
	assert_int_equal(kind, FP_LIBC_NONE);
	fp_maps_free(&m);
}

/* This process's libc, as its maps name it. */
static const struct fp_map *own_libc(struct fp_maps *m)
{
	enum fp_libc kind;
	assert_int_equal(fp_maps_read(getpid(), m), 0);
	const struct fp_map *libc = fp_inject_find_libc(m, &kind);
	assert_non_null(libc);
	assert_int_equal(kind, FP_LIBC_GLIBC);
	return libc;
}

static void test_sym_addr_fake_maps(void **state)
{
	(void)state;
	struct fp_maps self;
	const struct fp_map *libc = own_libc(&self);
	struct fp_elf *e = fp_elf_open(libc->path);
	assert_non_null(e);
	uint64_t value, first = fp_elf_first_load(e);
	assert_int_equal(fp_elf_sym(e, "__errno_location", &value, NULL), 0);

	/* The same file at another base: address = base - first PT_LOAD + st_value. */
	char text[1024];
	snprintf(text, sizeof(text),
		 "7f1234000000-7f1234001000 r--p 00000000 fe:00 7 %s\n"
		 "7f1234001000-7f1234400000 r-xp 00001000 fe:00 7 %s\n"
		 "7f1234400000-7f1234500000 r-xp 00000000 fe:00 8 /some/other.so\n",
		 libc->path, libc->path);
	struct fp_maps m;
	parse(text, &m);
	uint64_t addr;
	assert_int_equal(fp_inject_sym_addr(e, &m, &m.v[0], "__errno_location", &addr), 0);
	assert_int_equal(addr, 0x7f1234000000ULL - first + value);
	assert_int_equal(fp_inject_sym_addr(e, &m, &m.v[0], "no_such_symbol_here", &addr), -1);
	fp_maps_free(&m);

	/* An address outside this file's code is refused rather than called. */
	snprintf(text, sizeof(text),
		 "7f1234000000-7f1234400000 r--p 00000000 fe:00 7 %s\n"
		 "7f1234400000-7f1234500000 r-xp 00000000 fe:00 8 /some/other.so\n",
		 libc->path);
	parse(text, &m);
	assert_int_equal(fp_inject_sym_addr(e, &m, &m.v[0], "__errno_location", &addr), -1);
	fp_maps_free(&m);
	fp_elf_close(e);
	fp_maps_free(&self);
}

static void test_sym_addr_live(void **state)
{
	(void)state;
	struct fp_maps m;
	const struct fp_map *libc = own_libc(&m);
	struct fp_elf *e = fp_elf_open(libc->path);
	assert_non_null(e);
	/* Functions no sanitizer intercepts: the loader's answer is libc's own. */
	static const char *const names[] = {"__errno_location", "dlerror"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		uint64_t addr;
		assert_int_equal(fp_inject_sym_addr(e, &m, libc, names[i], &addr), 0);
		assert_int_equal(addr, (uint64_t)(uintptr_t)dlsym(RTLD_DEFAULT, names[i]));
	}
	fp_elf_close(e);
	fp_maps_free(&m);
}

/* The start of _PyRuntime in pyenv's libpython3.13 file, or NULL. */
static struct fp_elf *libpython313(uint8_t *buf, size_t len)
{
	const char *root = getenv("PYENV_ROOT") ? getenv("PYENV_ROOT") : "/root/.pyenv";
	char pattern[512];
	snprintf(pattern, sizeof(pattern), "%s/versions/3.13*/lib/libpython3.13.so.1.0", root);
	glob_t g;
	if (glob(pattern, 0, NULL, &g) != 0)
		return NULL;
	struct fp_elf *e = fp_elf_open(g.gl_pathv[0]);
	globfree(&g);
	uint64_t addr, size;
	if (!e || fp_elf_section(e, ".PyRuntime", &addr, NULL, &size) != 0 || size < len ||
	    fp_elf_read_vaddr(e, addr, buf, len) != 0) {
		fp_elf_close(e);
		return NULL;
	}
	return e;
}

static void test_pep768_offsets_313(void **state)
{
	(void)state;
	uint8_t buf[FP_DEBUG_OFFSETS_SIZE];
	struct fp_elf *e = libpython313(buf, sizeof(buf));
	if (!e)
		skip();
	fp_elf_close(e);
	struct fp_pep768_offsets o;
	char err[256] = "";
	assert_int_equal(fp_pep768_offsets(buf, sizeof(buf), &o, err, sizeof(err)), 0);
	assert_int_equal(o.minor, 13);
	assert_false(o.debugger);
	assert_int_equal(o.threads_main, 0);
	/* The same offsets as the stack reader's own parser of these bytes. */
	struct fp_layout l;
	assert_int_equal(fp_layout_from_debug_offsets(buf, sizeof(buf), &l, err, sizeof(err)), 0);
	assert_int_equal(o.interpreters_head, l.runtime_interpreters_head);
	assert_int_equal(o.threads_head, l.interp_threads_head);
	assert_int_equal(o.ts_next, l.ts_next);
	assert_int_equal(o.ts_native_thread_id, l.ts_native_thread_id);
	assert_true(o.tstate_size > o.ts_native_thread_id);
}

/* A 3.14 _Py_DebugOffsets laid out as Include/internal/pycore_debug_offsets.h has it. */
enum {
	RT = 24 / 8,
	IS = 48 / 8,
	TS = 176 / 8,
	DS = 712 / 8,
	WORDS = 760 / 8,
};

static void make_314(uint64_t *w)
{
	memset(w, 0, WORDS * 8);
	memcpy(w, "xdebugpy", 8);
	w[1] = 0x030e00f0; /* 3.14.0 final */
	w[RT] = 0x50000;
	w[RT + 2] = 0x278;
	w[IS] = 0x30000;
	w[IS + 3] = 0x1cb0;
	w[IS + 4] = 0x1cb8;
	w[TS] = 0x400;
	w[TS + 2] = 0x8;
	w[TS + 6] = 0xa0;
	w[DS] = 0x18;
	w[DS + 1] = 0x150;
	w[DS + 2] = 0x2000;
	w[DS + 3] = 0;
	w[DS + 4] = 4;
	w[DS + 5] = 512;
}

static void expect_error(const uint64_t *w, size_t len, const char *part)
{
	struct fp_pep768_offsets o;
	char err[256] = "";
	assert_int_equal(fp_pep768_offsets(w, len, &o, err, sizeof(err)), -1);
	if (!strstr(err, part))
		fail_msg("error '%s' lacks '%s'", err, part);
}

static void test_pep768_offsets_314(void **state)
{
	(void)state;
	uint64_t w[WORDS];
	make_314(w);
	struct fp_pep768_offsets o;
	char err[256] = "";
	assert_int_equal(fp_pep768_offsets(w, sizeof(w), &o, err, sizeof(err)), 0);
	assert_int_equal(o.minor, 14);
	assert_true(o.debugger);
	assert_int_equal(o.interpreters_head, 0x278);
	assert_int_equal(o.threads_head, 0x1cb0);
	assert_int_equal(o.threads_main, 0x1cb8);
	assert_int_equal(o.ts_next, 0x8);
	assert_int_equal(o.ts_native_thread_id, 0xa0);
	assert_int_equal(o.eval_breaker, 0x18);
	assert_int_equal(o.remote_debugger_support, 0x150);
	assert_int_equal(o.remote_debugging_enabled, 0x2000);
	assert_int_equal(o.pending_call, 0);
	assert_int_equal(o.script_path, 4);
	assert_int_equal(o.script_path_size, 512);

	expect_error(w, sizeof(w) - 8, "truncated");
	make_314(w);
	memcpy(w, "xdebugpz", 8);
	expect_error(w, sizeof(w), "cookie");
	make_314(w);
	w[1] = 0x030f00f0;
	expect_error(w, sizeof(w), "3.13 and 3.14 only");
	make_314(w);
	w[1] = 0x030e00b1;
	expect_error(w, sizeof(w), "pre-release");
	make_314(w);
	w[2] = 1;
	expect_error(w, sizeof(w), "free-threaded");
	/* A layout shifted by a member reads something else where the buffer size should be. */
	make_314(w);
	w[DS + 5] = 256;
	expect_error(w, sizeof(w), "remote-debugger offsets");
	make_314(w);
	w[DS + 1] = 0x3f0;
	expect_error(w, sizeof(w), "remote-debugger offsets");
	make_314(w);
	w[IS + 4] = 0x30000;
	expect_error(w, sizeof(w), "outside its structure");
}

static char *slurp_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	static char buf[16384];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static void test_pep768_script(void **state)
{
	(void)state;
	char text[8192];
	int n = fp_pep768_script(text, sizeof(text), "/tmp/.fpd-a/libfpagent.so", 0x7f00deadbeef,
				 "/tmp/.fpd-a/s", "/tmp/.fpd-a/fpd-attach.py", "/tmp/.fpd-a/e");
	assert_true(n > 0 && (size_t)n == strlen(text));
	assert_non_null(
	    strstr(text, "ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p)(0x7f00deadbeef)"));
	assert_null(strstr(text, "CDLL"));
	assert_null(strstr(text, "libfpagent.so"));
	assert_int_equal(fp_pep768_script(text, 100, "/l", 0, "/s", "/x", "/e"), -1);

	/* Whatever the bytes of a path, the literal gives them back. */
	char dir[] = "/tmp/fpd-unit-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char self[256], err_path[256], cmd[1024];
	snprintf(self, sizeof(self), "%s/fpd-attach.py", dir);
	snprintf(err_path, sizeof(err_path), "%s/it's \"odd\"\\ é", dir);
	n = fp_pep768_script(text, sizeof(text), "/nonexistent/libfpagent.so", 0, "/tmp/s", self,
			     err_path);
	assert_true(n > 0);
	assert_non_null(
	    strstr(text, ".CDLL(os.fsdecode(b'/nonexistent/libfpagent.so')).fpagent_start"));
	assert_non_null(strstr(text, "b'/tmp/s'"));
	FILE *f = fopen(self, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	if (access("/usr/bin/python3", X_OK) != 0) {
		unlink(self);
		rmdir(dir);
		skip();
	}
	/* Run as PEP 768 would: the load fails, the reason lands in the error file, the script
	 * goes. */
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s", self);
	assert_int_equal(system(cmd), 0);
	struct stat st;
	assert_int_not_equal(stat(self, &st), 0);
	char *msg = slurp_file(err_path);
	assert_non_null(msg);
	if (!strstr(msg, "OSError"))
		fail_msg("error file says '%s'", msg);
	unlink(err_path);
	rmdir(dir);
}

/* ---- PEP 768 into a fake 3.14 process ---- */

struct fake_tstate {
	uint64_t next;
	int64_t native_thread_id;
	uint64_t eval_breaker;
	int32_t pending_call; /* _PyRemoteDebuggerSupport starts here */
	char script_path[512];
};

struct fake_interp {
	int32_t remote_debug;
	uint64_t threads_head, threads_main;
};

struct fake_runtime {
	uint64_t dbg[WORDS];
	uint64_t interpreters_head;
	char pad[FP_DEBUG_OFFSETS_SIZE]; /* the injector reads this much */
};

static struct fake_interp fake_interp;
static struct fake_tstate fake_tstate;
__attribute__((section(".PyRuntime"), used)) static struct fake_runtime fake_runtime;

#define EVAL_BREAKER_BEFORE 0x1234560100000001ULL

static void make_fake_runtime(int32_t remote_debug, int32_t pending)
{
	uint64_t *w = fake_runtime.dbg;
	make_314(w);
	w[RT] = sizeof(struct fake_runtime);
	w[RT + 2] = offsetof(struct fake_runtime, interpreters_head);
	w[IS] = sizeof(struct fake_interp);
	w[IS + 3] = offsetof(struct fake_interp, threads_head);
	w[IS + 4] = offsetof(struct fake_interp, threads_main);
	w[TS] = sizeof(struct fake_tstate);
	w[TS + 2] = offsetof(struct fake_tstate, next);
	w[TS + 6] = offsetof(struct fake_tstate, native_thread_id);
	w[DS] = offsetof(struct fake_tstate, eval_breaker);
	w[DS + 1] = offsetof(struct fake_tstate, pending_call);
	w[DS + 2] = offsetof(struct fake_interp, remote_debug);
	w[DS + 3] = 0;
	w[DS + 4] =
	    offsetof(struct fake_tstate, script_path) - offsetof(struct fake_tstate, pending_call);
	fake_runtime.interpreters_head = (uintptr_t)&fake_interp;
	fake_interp.remote_debug = remote_debug;
	fake_interp.threads_head = fake_interp.threads_main = (uintptr_t)&fake_tstate;
	memset(&fake_tstate, 0, sizeof(fake_tstate));
	fake_tstate.pending_call = pending;
	fake_tstate.eval_breaker = EVAL_BREAKER_BEFORE;
}

/*
 * A child blocked on a pipe until told what it should have been sent: a
 * script path ("-": nothing at all).  Exits 0 when its thread state agrees.
 */
static pid_t fake_target(int *go, int32_t pending)
{
	int ready[2], gop[2];
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(gop), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(ready[0]);
		close(gop[1]);
		fake_tstate.native_thread_id = (int64_t)syscall(SYS_gettid);
		if (write(ready[1], "r", 1) != 1)
			_exit(3);
		char want[600] = "";
		ssize_t n = read(gop[0], want, sizeof(want) - 1);
		if (n <= 0)
			_exit(4);
		want[n] = '\0';
		if (want[0] == '-')
			_exit(fake_tstate.pending_call == pending &&
				      fake_tstate.eval_breaker == EVAL_BREAKER_BEFORE &&
				      !fake_tstate.script_path[0]
				  ? 0
				  : 1);
		/* One bit more in the eval breaker, the rest of the word as it was. */
		_exit(strcmp(fake_tstate.script_path, want) == 0 && fake_tstate.pending_call == 1 &&
			      fake_tstate.eval_breaker == (EVAL_BREAKER_BEFORE | 0x20)
			  ? 0
			  : 2);
	}
	close(ready[1]);
	close(gop[0]);
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	*go = gop[1];
	return pid;
}

static int child_verdict(pid_t pid, int go, const char *want)
{
	assert_int_equal(write(go, want, strlen(want)), (ssize_t)strlen(want));
	close(go);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

/* What fp_python_discover would say of the child, were it a 3.14. */
static void fake_python(pid_t pid, struct fp_python *py)
{
	memset(py, 0, sizeof(*py));
	py->pid = pid;
	py->major = 3;
	py->minor = 14;
	ssize_t n = readlink("/proc/self/exe", py->binary, sizeof(py->binary) - 1);
	assert_true(n > 0);
	py->binary[n] = '\0';
	struct fp_elf *e = fp_elf_open(py->binary);
	assert_non_null(e);
	uint64_t addr;
	assert_int_equal(fp_elf_section(e, ".PyRuntime", &addr, NULL, NULL), 0);
	fp_elf_close(e);
	py->runtime = (uintptr_t)&fake_runtime;
	py->bias = py->runtime - addr;
}

static void test_pep768_fake_process(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	char dir[] = "/tmp/fpd-unit-pep768-XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct fp_python py;
	struct fp_inject_report rep;
	char err[768], script[PATH_MAX], lib[PATH_MAX];
	snprintf(script, sizeof(script), "%s/fpd-attach.py", dir);
	snprintf(lib, sizeof(lib), "%s/libfpagent.so", dir);
	int go;

	make_fake_runtime(1, 0);
	pid_t pid = fake_target(&go, 0);
	fake_python(pid, &py);
	int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dir_fd >= 0);
	struct fp_inject_opts o = {.agent_path = py.binary,
				   .dir_fd = dir_fd,
				   .dir_target = dir,
				   .sock_target = "/tmp/fpd-unit.sock"};
	if (fp_inject_agent(&py, &o, &rep, err, sizeof(err)) != 0) {
		child_verdict(pid, go, "-");
		fail_msg("%s", err);
	}
	assert_string_equal(rep.method, "pep768");
	assert_true(rep.loaded);
	assert_int_equal(rep.tid, pid);
	assert_int_equal(child_verdict(pid, go, script), 0);
	/* The script and the helper's copy wait for the target, which removes them. */
	char *text = slurp_file(script);
	assert_non_null(text);
	assert_non_null(strstr(text, "fpagent_start"));
	assert_non_null(strstr(text, "b'/tmp/fpd-unit.sock'"));
	struct stat st;
	assert_int_equal(stat(lib, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	/* The script's error report goes to a file made for it: it cannot create one. */
	char err_file[PATH_MAX];
	snprintf(err_file, sizeof(err_file), "%s/pep768.err", dir);
	assert_int_equal(stat(err_file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0622);
	unlink(err_file);
	unlink(script);
	unlink(lib);

	/* Refused, with nothing written and nothing left behind. */
	static const struct {
		int32_t enabled, pending;
		const char *error;
	} refused[] = {
	    {0, 0, "remote debugging is disabled"},
	    {1, 1, "already pending"},
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		make_fake_runtime(refused[i].enabled, refused[i].pending);
		pid = fake_target(&go, refused[i].pending);
		fake_python(pid, &py);
		int rc = fp_inject_agent(&py, &o, &rep, err, sizeof(err));
		assert_int_equal(child_verdict(pid, go, "-"), 0);
		assert_int_equal(rc, -1);
		if (!strstr(err, refused[i].error))
			fail_msg("error '%s' lacks '%s'", err, refused[i].error);
		assert_int_not_equal(stat(script, &st), 0);
		assert_int_not_equal(stat(lib, &st), 0);
	}
	close(dir_fd);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_syscall_allow_list),	cmocka_unit_test(test_unsafe_paths),
	    cmocka_unit_test(test_find_libc_and_agent), cmocka_unit_test(test_sym_addr_fake_maps),
	    cmocka_unit_test(test_sym_addr_live),	cmocka_unit_test(test_pep768_offsets_313),
	    cmocka_unit_test(test_pep768_offsets_314),	cmocka_unit_test(test_pep768_script),
	    cmocka_unit_test(test_pep768_fake_process),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
