/*
 * The injector (see inject.h).
 *
 * ptrace path, in this order, each step with a way back:
 *   1. Before anything stops: find the target's libc in its maps and resolve
 *      dlopen, dlerror and __errno_location from the file it really mapped;
 *      copy the helper into the session directory (the target's mount
 *      namespace may not see fpd's files); pick a thread, preferably one
 *      blocked in a syscall that restarts transparently.
 *   2. PTRACE_SEIZE + PTRACE_INTERRUPT that one thread.  A stop inside libc
 *      or the loader could hold malloc's or the loader's lock, which dlopen
 *      takes again: such a stop is let go for about a millisecond and retried.
 *   3. Save registers, vector state, signal mask and errno; back up the stack
 *      below the red zone, where the strings and the return address go.
 *   4. Remote calls: rip = function, return address 0, so the return faults
 *      at rip 0 and the fault stops the thread.  No code is written, so no
 *      other thread can ever run into anything of ours.
 *   5. Put everything back and detach; signals that arrived meanwhile are
 *      delivered then.
 *
 * All ptrace requests come from one short-lived thread with every signal
 * blocked: nothing can interrupt it while a target thread is hijacked, and
 * should that thread ever exit with a tracee still attached, the kernel
 * detaches it.
 */
#include "inject.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fp/agentlink.h"
#include "fp/layout.h"
#include "log.h"
#include "unwind.h"

#define DEFAULT_TIMEOUT_MS 5000
#define MAX_TRIES	   200
/* Threads tried in turn when the chosen one exits or never reaches a safe point. */
#define MAX_THREADS 8
/* include/linux/sched.h: the thread is inside exit(). */
#define PF_EXITING 0x00000004u
/* The System V ABI lets a leaf function keep data below rsp, up to this far. */
#define RED_ZONE 128
/* Stack bytes backed up below the red zone: strings, return address, callee frames. */
#define SCRATCH 4096
/* Longest string argument: two of them and a call frame fit in SCRATCH. */
#define MAX_ARG 1024
/* glibc < 2.34 exports no dlopen from libc; __libc_dlopen_mode wants this flag. */
#define RTLD_DLOPEN_FLAG 0x80000000u
/* Kernel-internal: the syscall goes on through restart_syscall() and the restart block. */
#define ERESTART_RESTARTBLOCK 516
#define EFLAGS_TF	      0x100u
#define EFLAGS_DF	      0x400u
/* CPython's _PY_EVAL_PLEASE_STOP_BIT: the eval loop looks at pending remote calls. */
#define PY_EVAL_PLEASE_STOP 0x20u

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
						      ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- Pure parts ---- */

bool fp_inject_syscall_safe(long nr)
{
	switch (nr) {
	case SYS_read:
	case SYS_readv:
	case SYS_pread64:
	case SYS_preadv:
	case SYS_recvfrom:
	case SYS_recvmsg:
	/* Blocked on a full pipe or socket: a program stuck writing its log. */
	case SYS_write:
	case SYS_writev:
	case SYS_pwrite64:
	case SYS_sendto:
	case SYS_sendmsg:
	case SYS_select:
	case SYS_pselect6:
	case SYS_poll:
	case SYS_ppoll:
	case SYS_nanosleep:
	case SYS_clock_nanosleep:
	case SYS_futex:
	case SYS_wait4:
	case SYS_waitid:
	case SYS_accept:
	case SYS_accept4:
	case SYS_pause:
	case SYS_rt_sigsuspend:
	case SYS_restart_syscall:
		return true;
	default:
		return false;
	}
}

bool fp_inject_syscall_idle(long nr)
{
	switch (nr) {
	case SYS_epoll_wait:
	case SYS_epoll_pwait:
	case SYS_epoll_pwait2:
	case SYS_rt_sigtimedwait:
	case SYS_io_getevents:
	case SYS_semtimedop:
		return true;
	default:
		return false;
	}
}

/* The file name of a mapped path, without the " (deleted)" the kernel appends. */
static void map_basename(const char *path, char *out, size_t cap)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	size_t len = strlen(base);
	static const char deleted[] = " (deleted)";
	if (len >= sizeof(deleted) - 1 && strcmp(base + len - (sizeof(deleted) - 1), deleted) == 0)
		len -= sizeof(deleted) - 1;
	snprintf(out, cap, "%.*s", (int)len, base);
}

static bool has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool fp_inject_path_unsafe(const char *path)
{
	/* The C library, the loader, and the allocators and unwinder that hold
	 * their own or the loader's locks while running. */
	static const char *const prefixes[] = {
	    "libc.so", "libc-",	    "ld-linux", "ld-",	       "libpthread",  "libdl.",
	    "libdl-",  "libc.musl", "libgcc_s", "libjemalloc", "libtcmalloc", "libmimalloc",
	};
	char base[256];
	map_basename(path, base, sizeof(base));
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (has_prefix(base, prefixes[i]))
			return true;
	return false;
}

static enum fp_libc libc_kind(const char *path)
{
	char base[256];
	map_basename(path, base, sizeof(base));
	if (has_prefix(base, "libc.so") || has_prefix(base, "libc-2."))
		return FP_LIBC_GLIBC;
	if (has_prefix(base, "ld-musl-") || has_prefix(base, "libc.musl-"))
		return FP_LIBC_MUSL;
	return FP_LIBC_NONE;
}

const struct fp_map *fp_inject_find_libc(const struct fp_maps *m, enum fp_libc *kind)
{
	for (size_t i = 0; i < m->n; i++) {
		const struct fp_map *map = &m->v[i];
		if (!map->path || map->path[0] != '/' || map->offset != 0)
			continue;
		enum fp_libc k = libc_kind(map->path);
		if (k != FP_LIBC_NONE) {
			*kind = k;
			return map;
		}
	}
	*kind = FP_LIBC_NONE;
	return NULL;
}

const struct fp_map *fp_inject_find_agent(const struct fp_maps *m)
{
	char base[256];
	for (size_t i = 0; i < m->n; i++) {
		const struct fp_map *map = &m->v[i];
		if (!map->path || map->path[0] != '/' || map->offset != 0)
			continue;
		map_basename(map->path, base, sizeof(base));
		if (has_prefix(base, "libfpagent"))
			return map;
	}
	return NULL;
}

int fp_inject_sym_addr(struct fp_elf *e, const struct fp_maps *m, const struct fp_map *base,
		       const char *name, uint64_t *addr)
{
	uint64_t value;
	if (fp_elf_sym(e, name, &value, NULL) != 0 || value == 0)
		return -1;
	uint64_t a = base->start - fp_elf_first_load(e) + value;
	/* A wrong bias would send a thread anywhere: the address must be this file's code. */
	const struct fp_map *at = fp_maps_find(m, a);
	if (!at || at->perms[2] != 'x' || !at->path || strcmp(at->path, base->path) != 0)
		return -1;
	*addr = a;
	return 0;
}

/*
 * Byte positions inside _Py_DebugOffsets.  Every member is a uint64_t and each
 * group starts with the size of the structure it describes.
 *
 * 3.13: checked against the .PyRuntime bytes of pyenv's libpython3.13 (unit
 * test) and the same as daemon/py/layout.c's table.
 * 3.14: from Include/internal/pycore_debug_offsets.h as of 3.14 (groups
 * interpreter_state 16 members with threads_main, thread_state 9,
 * interpreter_frame 8, code_object 11, set_object, gen_object, llist_node
 * new; debugger_support last), in agreement with pystack's 3.14 table.  No
 * 3.14 interpreter exists here, so these positions are unverified on a real
 * binary; the checks in fp_pep768_offsets (script path buffer of exactly 512
 * bytes, every offset inside its structure) refuse a layout that is off.
 */
struct dbg_layout {
	int minor;
	uint16_t runtime, interp, tstate, debugger, end;
	uint16_t threads_main; /* member index in interpreter_state, 0: none */
};

static const struct dbg_layout dbg_layouts[] = {
    {.minor = 13, .runtime = 24, .interp = 48, .tstate = 152, .debugger = 0, .end = 584},
    {.minor = 14,
     .runtime = 24,
     .interp = 48,
     .tstate = 176,
     .debugger = 712,
     .end = 760,
     .threads_main = 4},
};

#define DBG_MAX_STRUCT	   (1u << 22)
#define SCRIPT_PATH_BUFFER 512

static uint64_t u64_at(const unsigned char *b, unsigned at)
{
	uint64_t v;
	memcpy(&v, b + at, sizeof(v));
	return v;
}

/* Whether a member of width bytes at off lies inside a structure of size bytes. */
static bool inside(uint64_t off, uint64_t width, uint64_t size)
{
	return off <= size && width <= size - off;
}

int fp_pep768_offsets(const void *buf, size_t len, struct fp_pep768_offsets *out, char *err,
		      size_t errlen)
{
	const unsigned char *b = buf;
	if (len < 24)
		return fail(err, errlen, "_Py_DebugOffsets truncated");
	if (memcmp(b, "xdebugpy", 8) != 0)
		return fail(err, errlen, "_PyRuntime does not start with the cookie \"xdebugpy\"");
	uint64_t hex = u64_at(b, 8);
	unsigned major = (unsigned)(hex >> 24), minor = (unsigned)(hex >> 16) & 0xff;
	unsigned level = (unsigned)(hex >> 4) & 0xf;
	const struct dbg_layout *l = NULL;
	for (size_t i = 0; i < sizeof(dbg_layouts) / sizeof(dbg_layouts[0]); i++)
		if (major == 3 && (int)minor == dbg_layouts[i].minor)
			l = &dbg_layouts[i];
	if (!l)
		return fail(err, errlen,
			    "_Py_DebugOffsets of Python %u.%u: fpd knows the layouts of 3.13 and "
			    "3.14 only",
			    major, minor);
	/* Alphas and betas changed the structure; candidates and releases have the final one. */
	if (level < 0xc)
		return fail(err, errlen,
			    "Python %u.%u pre-release (0x%" PRIx64 "): its _Py_DebugOffsets "
			    "may differ from the release's",
			    major, minor, hex);
	if (u64_at(b, 16) != 0)
		return fail(err, errlen, "free-threaded builds are not supported");
	if (len < l->end)
		return fail(err, errlen, "_Py_DebugOffsets truncated");

	struct fp_pep768_offsets o = {.minor = l->minor, .debugger = l->debugger != 0};
	o.runtime_size = u64_at(b, l->runtime);
	o.interpreters_head = u64_at(b, l->runtime + 16);
	o.interp_size = u64_at(b, l->interp);
	o.threads_head = u64_at(b, l->interp + 24);
	o.threads_main = l->threads_main ? u64_at(b, l->interp + 8u * l->threads_main) : 0;
	o.tstate_size = u64_at(b, l->tstate);
	o.ts_next = u64_at(b, l->tstate + 16);
	o.ts_native_thread_id = u64_at(b, l->tstate + 48);
	if (o.runtime_size > DBG_MAX_STRUCT || o.interp_size > DBG_MAX_STRUCT ||
	    o.tstate_size > DBG_MAX_STRUCT || !inside(o.interpreters_head, 8, o.runtime_size) ||
	    !inside(o.threads_head, 8, o.interp_size) ||
	    !inside(o.threads_main, 8, o.interp_size) || !inside(o.ts_next, 8, o.tstate_size) ||
	    !inside(o.ts_native_thread_id, 8, o.tstate_size))
		return fail(err, errlen,
			    "_Py_DebugOffsets of Python 3.%d: an offset lies outside its structure "
			    "(not the layout fpd expects)",
			    l->minor);
	if (o.debugger) {
		o.eval_breaker = u64_at(b, l->debugger);
		o.remote_debugger_support = u64_at(b, l->debugger + 8);
		o.remote_debugging_enabled = u64_at(b, l->debugger + 16);
		o.pending_call = u64_at(b, l->debugger + 24);
		o.script_path = u64_at(b, l->debugger + 32);
		o.script_path_size = u64_at(b, l->debugger + 40);
		uint64_t rds = o.remote_debugger_support;
		if (o.script_path_size != SCRIPT_PATH_BUFFER ||
		    !inside(o.eval_breaker, 8, o.tstate_size) ||
		    !inside(o.remote_debugging_enabled, 4, o.interp_size) ||
		    !inside(rds, 0, o.tstate_size) ||
		    !inside(o.pending_call, 4, o.tstate_size - rds) ||
		    !inside(o.script_path, o.script_path_size, o.tstate_size - rds))
			return fail(err, errlen,
				    "_Py_DebugOffsets of Python 3.%d: the remote-debugger offsets "
				    "are not the layout fpd expects",
				    l->minor);
	}
	*out = o;
	return 0;
}

struct sbuf {
	char *p;
	size_t cap, n;
	bool full;
};

__attribute__((format(printf, 2, 3))) static void put(struct sbuf *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(s->p + s->n, s->cap - s->n, fmt, ap);
	va_end(ap);
	if (k < 0 || (size_t)k >= s->cap - s->n)
		s->full = true;
	else
		s->n += (size_t)k;
}

/* A Python bytes literal of s: any path reads back byte for byte, whatever it contains. */
static void put_bytes(struct sbuf *s, const char *str)
{
	put(s, "b'");
	for (const unsigned char *c = (const unsigned char *)str; *c && !s->full; c++) {
		if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || strchr("/._-", *c))
			put(s, "%c", *c);
		else
			put(s, "\\x%02x", *c);
	}
	put(s, "'");
}

int fp_pep768_script(char *buf, size_t cap, const char *lib, uint64_t entry, const char *sock,
		     const char *self, const char *err_path)
{
	if (cap == 0)
		return -1;
	struct sbuf s = {.p = buf, .cap = cap};
	/* One function, deleted after the call: the script may run in __main__'s namespace. */
	put(&s, "# Written by fpd: starts its helper in this process (PEP 768), then "
		"removes itself.\n"
		"def _fpd_attach():\n"
		"    import ctypes, os\n"
		"    done = [");
	put_bytes(&s, self);
	if (!entry) {
		put(&s, ", ");
		put_bytes(&s, lib);
	}
	put(&s, "]\n    try:\n");
	if (entry) {
		put(&s,
		    "        start = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p)(0x%" PRIx64
		    ")\n",
		    entry);
	} else {
		put(&s, "        start = ctypes.CDLL(os.fsdecode(");
		put_bytes(&s, lib);
		put(&s, ")).%s\n        start.argtypes = [ctypes.c_char_p]\n", FP_AGENT_ENTRY);
	}
	put(&s, "        rc = start(");
	put_bytes(&s, sock);
	put(&s, ")\n"
		"        if rc:\n"
		"            raise OSError(-rc, os.strerror(-rc))\n"
		"    except Exception as e:\n"
		"        with open(");
	put_bytes(&s, err_path);
	put(&s, ", 'w') as f:\n"
		"            f.write('%%s: %%s\\n' %% (type(e).__name__, e))\n"
		"    finally:\n"
		"        for path in done:\n"
		"            try:\n"
		"                os.unlink(path)\n"
		"            except OSError:\n"
		"                pass\n"
		"\n"
		"\n"
		"_fpd_attach()\n"
		"del _fpd_attach\n");
	return s.full ? -1 : (int)s.n;
}

/* ---- Reading the target ---- */

static int remote_read(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = {.iov_base = buf, .iov_len = len};
	struct iovec remote = {.iov_base = (void *)(uintptr_t)addr, .iov_len = len};
	return process_vm_readv(pid, &local, 1, &remote, 1, 0) == (ssize_t)len ? 0 : -1;
}

static int remote_write(pid_t pid, uint64_t addr, const void *buf, size_t len)
{
	struct iovec local = {.iov_base = (void *)buf, .iov_len = len};
	struct iovec remote = {.iov_base = (void *)(uintptr_t)addr, .iov_len = len};
	return process_vm_writev(pid, &local, 1, &remote, 1, 0) == (ssize_t)len ? 0 : -1;
}

/* A string of the target, read page by page: the page after its end may be unmapped. */
static void remote_string(pid_t pid, uint64_t addr, char *buf, size_t cap)
{
	size_t n = 0;
	while (n + 1 < cap) {
		size_t chunk = 4096 - (size_t)((addr + n) & 4095);
		if (chunk > cap - 1 - n)
			chunk = cap - 1 - n;
		if (remote_read(pid, addr + n, buf + n, chunk) != 0)
			break;
		if (memchr(buf + n, '\0', chunk))
			return;
		n += chunk;
	}
	buf[n] = '\0';
}

/* One "Key:\tvalue" line of /proc/PID[/task/TID]/status, copied into out. */
static int status_line(const char *path, const char *key, char *out, size_t cap)
{
	char buf[8192];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	size_t klen = strlen(key);
	char *line = buf;
	while (strncmp(line, key, klen) != 0 || line[klen] != ':') {
		line = strchr(line, '\n');
		if (!line)
			return -1;
		line++;
	}
	char *v = line + klen + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	snprintf(out, cap, "%.*s", (int)strcspn(v, "\n"), v);
	return 0;
}

/* Bit n of a hexadecimal mask from /proc (SigIgn, CapEff). */
static bool hex_bit(const char *hex, int n)
{
	return (strtoull(hex, NULL, 16) >> n) & 1;
}

/* Why PTRACE_SEIZE said EPERM, as far as /proc tells. */
static void explain_eperm(pid_t pid, pid_t tid, char *out, size_t cap)
{
	char path[96], v[64];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)tid);
	if (status_line(path, "TracerPid", v, sizeof(v)) == 0 && atoi(v) != 0) {
		char comm[64] = "?", cpath[64];
		snprintf(cpath, sizeof(cpath), "/proc/%d/comm", atoi(v));
		int fd = open(cpath, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t n = read(fd, comm, sizeof(comm) - 1);
			comm[n > 0 ? n : 0] = '\0';
			comm[strcspn(comm, "\n")] = '\0';
			close(fd);
		}
		snprintf(out, cap, "thread %d is already traced by process %d (%s), a debugger?",
			 (int)tid, atoi(v), comm);
		return;
	}
	int scope = -1;
	int fd = open("/proc/sys/kernel/yama/ptrace_scope", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		char s[8] = "";
		if (read(fd, s, sizeof(s) - 1) > 0)
			scope = atoi(s);
		close(fd);
	}
	bool cap_ptrace = status_line("/proc/self/status", "CapEff", v, sizeof(v)) == 0 &&
			  hex_bit(v, 19); /* CAP_SYS_PTRACE */
	if (scope == 3) {
		snprintf(out, cap,
			 "Yama ptrace_scope is 3 (kernel.yama.ptrace_scope: no ptrace at all)");
	} else if (scope >= 1 && !cap_ptrace) {
		snprintf(out, cap,
			 "Yama ptrace_scope is %d and fpd lacks CAP_SYS_PTRACE (run fpd as root)",
			 scope);
	} else if (status_line("/proc/self/status", "Seccomp", v, sizeof(v)) == 0 && atoi(v) != 0) {
		snprintf(out, cap, "fpd runs under a seccomp filter (mode %s) that forbids ptrace",
			 v);
	} else {
		snprintf(out, cap,
			 "denied by the kernel: an LSM (AppArmor, SELinux) or a user-namespace "
			 "boundary");
	}
}

/* ---- The hijack ---- */

struct hijack {
	pid_t pid, tid;
	int mem; /* /proc/PID/mem, read-write */
	int timeout_ms;
	const struct fp_maps *maps;
	bool stopped;
	bool other_thread;	/* failed before changing anything: another thread may do */
	bool interrupt_pending; /* a PTRACE_INTERRUPT not yet seen as a stop */
	int sig;		/* the signal it stopped with: delivered at detach */
	int deferred[8];	/* signals that stopped it during calls, delivered after */
	int ndeferred;
	bool restart_clobbered; /* a call's syscall may have replaced the restart block */
	/* What is put back, each once saved. */
	bool saved;
	struct user_regs_struct regs;
	void *xstate;
	size_t xlen;
	bool fpregs; /* no XSAVE: the legacy FPU/SSE area instead */
	struct user_fpregs_struct fp;
	uint64_t sigmask;
	bool scratch_saved;
	uint64_t scratch_lo;
	uint8_t scratch[SCRATCH];
	uint64_t sp; /* next free stack byte (downwards) for strings */
	bool errno_saved;
	uint64_t errno_addr;
	int32_t errno_val;
	/* Accounting. */
	int64_t stop_since;
	int64_t stopped_ns;
	int retries;
	char where[160]; /* where the thread was at the last stop */
};

static void mark_stopped(struct hijack *h)
{
	h->stopped = true;
	h->stop_since = now_ns();
}

static void mark_running(struct hijack *h)
{
	if (h->stopped)
		h->stopped_ns += now_ns() - h->stop_since;
	h->stopped = false;
}

/* waitpid with a deadline: 1 with *status, 0 on timeout, -1 with errno. */
static int wait_tracee(pid_t tid, int *status, int64_t deadline)
{
	/* Stops come within microseconds mostly: poll fast first, then back off. */
	long pause_ns = 10000;
	for (;;) {
		pid_t w = waitpid(tid, status, __WALL | WNOHANG);
		if (w == tid)
			return 1;
		if (w < 0 && errno != EINTR)
			return -1;
		if (now_ns() >= deadline)
			return 0;
		struct timespec ts = {.tv_nsec = pause_ns};
		nanosleep(&ts, NULL);
		if (pause_ns < 500000)
			pause_ns *= 2;
	}
}

static bool fault_signal(int sig)
{
	return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE ||
	       sig == SIGTRAP || sig == SIGSYS;
}

/* Whether any thread of pid still lives (its leader may be a zombie already). */
static bool process_alive(pid_t pid)
{
	struct fp_task *t;
	size_t n;
	if (fp_proc_tasks(pid, &t, &n) != 0)
		return false;
	bool alive = false;
	for (size_t i = 0; i < n; i++)
		if (t[i].state != 'Z' && t[i].state != 'X')
			alive = true;
	free(t);
	return alive;
}

/*
 * The thread went away under us.  Often only that thread ended (a worker
 * finishing, the session thread of a helper session just closed) and the
 * process lives on: then another thread may be tried.
 */
static int gone(struct hijack *h, const char *step, char *err, size_t errlen)
{
	h->stopped = false;
	if (!process_alive(h->pid))
		return fail(err, errlen, "inject: %s: process %d exited meanwhile", step,
			    (int)h->pid);
	h->other_thread = true;
	return fail(err, errlen, "inject: %s: thread %d of process %d exited meanwhile", step,
		    (int)h->tid, (int)h->pid);
}

/*
 * Interrupts the thread and waits for a stop whose registers are the
 * thread's own: the interrupt-stop, or a signal-delivery-stop before the
 * signal reached its handler (the signal is then delivered at detach).
 * Stopping after a handler was entered would make dlopen run inside that
 * handler, over whatever the interrupted code held.
 */
static int stop_thread(struct hijack *h, char *err, size_t errlen)
{
	if (!h->interrupt_pending) {
		if (ptrace(PTRACE_INTERRUPT, h->tid, NULL, NULL) != 0)
			return errno == ESRCH
				   ? gone(h, "stop", err, errlen)
				   : fail(err, errlen, "inject: stop: PTRACE_INTERRUPT: %s",
					  strerror(errno));
		h->interrupt_pending = true;
	}
	int64_t deadline = now_ns() + (int64_t)h->timeout_ms * 1000000;
	for (;;) {
		int st;
		int r = wait_tracee(h->tid, &st, deadline);
		if (r == 0)
			return fail(
			    err, errlen,
			    "inject: stop: thread %d did not stop within %d ms (uninterruptible "
			    "sleep?)",
			    (int)h->tid, h->timeout_ms);
		if (r < 0 || WIFEXITED(st) || WIFSIGNALED(st))
			return gone(h, "stop", err, errlen);
		if (!WIFSTOPPED(st))
			continue;
		int sig = WSTOPSIG(st), event = st >> 16;
		if (event == PTRACE_EVENT_STOP && sig == SIGTRAP) {
			h->interrupt_pending = false;
			h->sig = 0;
			mark_stopped(h);
			return 0;
		}
		if (event == PTRACE_EVENT_STOP) {
			/* A group-stop: the detach leaves it stopped as it should be. */
			mark_stopped(h);
			return fail(err, errlen,
				    "inject: stop: process %d is being stopped by signal %d (job "
				    "control); continue it first",
				    (int)h->pid, sig);
		}
		if (event != 0 || fault_signal(sig)) {
			/* A genuine fault is the target's own business: deliver it now. */
			ptrace(PTRACE_CONT, h->tid, NULL, (void *)(long)(event ? 0 : sig));
			continue;
		}
		h->sig = sig;
		mark_stopped(h);
		return 0;
	}
}

/* Lets a thread stopped at an unsafe point run on for about a millisecond. */
static int let_run(struct hijack *h, char *err, size_t errlen)
{
	if (ptrace(PTRACE_CONT, h->tid, NULL, (void *)(long)h->sig) != 0)
		return gone(h, "safe point", err, errlen);
	h->sig = 0;
	mark_running(h);
	/* An interrupt still pending would stop it at once, maybe in a handler just entered. */
	int64_t deadline = now_ns() + (int64_t)h->timeout_ms * 1000000;
	while (h->interrupt_pending) {
		int st;
		int r = wait_tracee(h->tid, &st, deadline);
		if (r == 0)
			return fail(err, errlen, "inject: safe point: thread %d did not stop again",
				    (int)h->tid);
		if (r < 0 || WIFEXITED(st) || WIFSIGNALED(st))
			return gone(h, "safe point", err, errlen);
		if (!WIFSTOPPED(st))
			continue;
		int sig = WSTOPSIG(st), event = st >> 16;
		if (event == PTRACE_EVENT_STOP)
			h->interrupt_pending = false;
		ptrace(PTRACE_CONT, h->tid, NULL, (void *)(long)(event ? 0 : sig));
	}
	/* Jitter: a thread in a periodic loop would otherwise be caught at the same spot. */
	struct timespec ts = {.tv_nsec = 1000000 + (h->retries % 7) * 150000};
	nanosleep(&ts, NULL);
	return 0;
}

static bool at_safe_point(struct hijack *h)
{
	long nr = (long)h->regs.orig_rax;
	if (nr >= 0) {
		snprintf(h->where, sizeof(h->where), "in syscall %ld", nr);
		return fp_inject_syscall_safe(nr) || fp_inject_syscall_idle(nr);
	}
	const struct fp_map *m = fp_maps_find(h->maps, h->regs.rip);
	char base[128] = "anonymous memory";
	if (m && m->path)
		map_basename(m->path, base, sizeof(base));
	snprintf(h->where, sizeof(h->where), "running at 0x%llx in %s",
		 (unsigned long long)h->regs.rip, base);
	return !(m && m->path && fp_inject_path_unsafe(m->path));
}

static int reach_safe_point(struct hijack *h, char *err, size_t errlen)
{
	for (;;) {
		if (stop_thread(h, err, errlen))
			return -1;
		if (ptrace(PTRACE_GETREGS, h->tid, NULL, &h->regs) != 0)
			return fail(err, errlen, "inject: save: PTRACE_GETREGS: %s",
				    strerror(errno));
		if (at_safe_point(h))
			return 0;
		if (++h->retries >= MAX_TRIES) {
			h->other_thread = true;
			return fail(
			    err, errlen,
			    "inject: safe point: none found in %d tries (thread %d, last %s)",
			    MAX_TRIES, (int)h->tid, h->where);
		}
		if (let_run(h, err, errlen))
			return -1;
	}
}

static int save_state(struct hijack *h, char *err, size_t errlen)
{
	/* The XSAVE area's size depends on the CPU's features: grow until the kernel's fits. */
	for (size_t cap = 4096; cap <= (1u << 20); cap *= 2) {
		void *buf = realloc(h->xstate, cap);
		if (!buf)
			return fail(err, errlen, "inject: save: out of memory");
		h->xstate = buf;
		struct iovec iov = {.iov_base = buf, .iov_len = cap};
		if (ptrace(PTRACE_GETREGSET, h->tid, (void *)NT_X86_XSTATE, &iov) != 0) {
			if (errno != EINVAL && errno != ENODEV)
				return fail(err, errlen, "inject: save: NT_X86_XSTATE: %s",
					    strerror(errno));
			if (ptrace(PTRACE_GETFPREGS, h->tid, NULL, &h->fp) != 0)
				return fail(err, errlen, "inject: save: PTRACE_GETFPREGS: %s",
					    strerror(errno));
			h->fpregs = true;
			break;
		}
		if (iov.iov_len < cap) {
			h->xlen = iov.iov_len;
			break;
		}
	}
	if (!h->fpregs && h->xlen == 0)
		return fail(err, errlen, "inject: save: the vector state is larger than 1 MiB");
	if (ptrace(PTRACE_GETSIGMASK, h->tid, (void *)sizeof(h->sigmask), &h->sigmask) != 0)
		return fail(err, errlen, "inject: save: PTRACE_GETSIGMASK: %s", strerror(errno));
	h->saved = true;
	/*
	 * During the calls every signal but the synchronous faults stays pending
	 * in the kernel and arrives after the restore, as if a little late.  The
	 * faults stay unblocked: the kernel resets the handler of a blocked one
	 * it forces (faulthandler's SIGSEGV handler, for the return trap).
	 */
	uint64_t mask = ~0ULL;
	static const int faults[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS};
	for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++)
		mask &= ~(1ULL << (faults[i] - 1));
	if (ptrace(PTRACE_SETSIGMASK, h->tid, (void *)sizeof(mask), &mask) != 0)
		return fail(err, errlen, "inject: save: PTRACE_SETSIGMASK: %s", strerror(errno));
	return 0;
}

static int mem_read(struct hijack *h, uint64_t addr, void *buf, size_t len)
{
	return pread(h->mem, buf, len, (off_t)addr) == (ssize_t)len ? 0 : -1;
}

static int mem_write(struct hijack *h, uint64_t addr, const void *buf, size_t len)
{
	return pwrite(h->mem, buf, len, (off_t)addr) == (ssize_t)len ? 0 : -1;
}

static int save_scratch(struct hijack *h, char *err, size_t errlen)
{
	uint64_t top = (h->regs.rsp - RED_ZONE) & ~(uint64_t)15;
	h->scratch_lo = top - SCRATCH;
	if (mem_read(h, h->scratch_lo, h->scratch, SCRATCH) != 0)
		return fail(err, errlen,
			    "inject: save: the stack of thread %d below 0x%llx is not readable: %s",
			    (int)h->tid, (unsigned long long)top, strerror(errno));
	h->scratch_saved = true;
	h->sp = top;
	return 0;
}

/* Copies s onto the scratch stack; its address in the target. */
static uint64_t push_string(struct hijack *h, const char *s)
{
	size_t len = strlen(s) + 1;
	h->sp = (h->sp - len) & ~(uint64_t)15;
	return mem_write(h, h->sp, s, len) == 0 ? h->sp : 0;
}

/* Where the thread is, for a call that does not return: its syscall and wait channel. */
static void describe_blocked(struct hijack *h, char *out, size_t cap)
{
	struct fp_syscall sc;
	char path[96], wchan[64] = "?";
	snprintf(path, sizeof(path), "/proc/%d/task/%d/wchan", (int)h->pid, (int)h->tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, wchan, sizeof(wchan) - 1);
		wchan[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	if (fp_proc_syscall(h->pid, h->tid, &sc) == 0 && sc.nr >= 0)
		snprintf(out, cap, "thread %d blocked in syscall %ld, wchan %s", (int)h->tid, sc.nr,
			 wchan);
	else
		snprintf(out, cap, "thread %d %s", (int)h->tid,
			 sc.nr == -1 ? "running" : "in an unknown state");
}

/*
 * Runs fn(a0, a1) on the hijacked thread: rax = 0 and orig_rax = -1 (else
 * the kernel would take the call for an interrupted syscall and restart it),
 * DF clear as the ABI wants, rsp 16-byte aligned before the pushed return
 * address 0, whose fault ends the call.
 */
static int remote_call(struct hijack *h, const char *what, uint64_t fn, uint64_t a0, uint64_t a1,
		       uint64_t *ret, char *err, size_t errlen)
{
	struct user_regs_struct r = h->regs;
	r.rdi = a0;
	r.rsi = a1;
	r.rax = 0;
	r.orig_rax = (unsigned long long)-1;
	r.eflags &= ~(unsigned long long)(EFLAGS_TF | EFLAGS_DF);
	r.rip = fn;
	uint64_t zero = 0;
	r.rsp = (h->sp & ~(uint64_t)15) - 8;
	if (mem_write(h, r.rsp, &zero, sizeof(zero)) != 0)
		return fail(err, errlen, "inject: %s: writing the return address: %s", what,
			    strerror(errno));
	if (ptrace(PTRACE_SETREGS, h->tid, NULL, &r) != 0)
		return fail(err, errlen, "inject: %s: PTRACE_SETREGS: %s", what, strerror(errno));
	if (ptrace(PTRACE_CONT, h->tid, NULL, NULL) != 0)
		return gone(h, what, err, errlen);
	int64_t deadline = now_ns() + (int64_t)h->timeout_ms * 1000000;
	bool timed_out = false;
	char blocked[160] = "";
	for (;;) {
		int st;
		int w = wait_tracee(h->tid, &st, deadline);
		if (w == 0 && !timed_out) {
			/* Stop it wherever it waits, so that it can be put back. */
			describe_blocked(h, blocked, sizeof(blocked));
			timed_out = true;
			if (ptrace(PTRACE_INTERRUPT, h->tid, NULL, NULL) == 0)
				h->interrupt_pending = true;
			deadline = now_ns() + (int64_t)h->timeout_ms * 1000000;
			continue;
		}
		if (w == 0) {
			h->stopped = false;
			return fail(
			    err, errlen,
			    "inject: %s did not return within %d ms and thread %d cannot be "
			    "stopped again (%s): it is left inside the call",
			    what, h->timeout_ms, (int)h->tid, blocked);
		}
		if (w < 0 || WIFEXITED(st) || WIFSIGNALED(st))
			return gone(h, what, err, errlen);
		if (!WIFSTOPPED(st))
			continue;
		int sig = WSTOPSIG(st), event = st >> 16;
		struct user_regs_struct now;
		if (ptrace(PTRACE_GETREGS, h->tid, NULL, &now) != 0)
			return gone(h, what, err, errlen);
		/* A syscall left to restart_syscall() replaced the thread's restart block. */
		if ((long long)now.rax == -ERESTART_RESTARTBLOCK)
			h->restart_clobbered = true;
		if (event == PTRACE_EVENT_STOP)
			h->interrupt_pending = false;
		if (timed_out && event == PTRACE_EVENT_STOP) {
			mark_stopped(h);
			return fail(
			    err, errlen,
			    "inject: %s did not return within %d ms (%s); the thread was put "
			    "back, but the target may keep a lock the call had taken",
			    what, h->timeout_ms, blocked);
		}
		if (!event && sig == SIGSEGV && now.rip == 0) {
			*ret = now.rax;
			h->stopped = true;
			return 0;
		}
		if (!event && fault_signal(sig)) {
			const struct fp_map *m = fp_maps_find(h->maps, now.rip);
			char base[128] = "anonymous memory";
			if (m && m->path)
				map_basename(m->path, base, sizeof(base));
			h->stopped = true;
			return fail(err, errlen,
				    "inject: %s faulted with signal %d at 0x%llx in %s; the thread "
				    "was put back",
				    what, sig, (unsigned long long)now.rip, base);
		}
		/* A job-control stop or a signal the mask let through: held until the detach. */
		if (!event && h->ndeferred < (int)(sizeof(h->deferred) / sizeof(h->deferred[0])))
			h->deferred[h->ndeferred++] = sig;
		if (ptrace(PTRACE_CONT, h->tid, NULL, NULL) != 0)
			return gone(h, what, err, errlen);
	}
}

/* Puts back whatever was saved, newest first; the first failure is reported. */
static int restore(struct hijack *h, char *err, size_t errlen)
{
	int rc = 0;
	if (h->errno_saved &&
	    mem_write(h, h->errno_addr, &h->errno_val, sizeof(h->errno_val)) != 0 && rc == 0)
		rc = fail(err, errlen, "inject: restore: errno: %s", strerror(errno));
	if (h->scratch_saved && mem_write(h, h->scratch_lo, h->scratch, SCRATCH) != 0 && rc == 0)
		rc = fail(err, errlen, "inject: restore: stack: %s", strerror(errno));
	if (!h->saved)
		return rc;
	if (h->fpregs) {
		if (ptrace(PTRACE_SETFPREGS, h->tid, NULL, &h->fp) != 0 && rc == 0)
			rc = fail(err, errlen, "inject: restore: PTRACE_SETFPREGS: %s",
				  strerror(errno));
	} else {
		struct iovec iov = {.iov_base = h->xstate, .iov_len = h->xlen};
		if (ptrace(PTRACE_SETREGSET, h->tid, (void *)NT_X86_XSTATE, &iov) != 0 && rc == 0)
			rc = fail(err, errlen, "inject: restore: NT_X86_XSTATE: %s",
				  strerror(errno));
	}
	struct user_regs_struct r = h->regs;
	if (h->restart_clobbered && (long long)r.rax == -ERESTART_RESTARTBLOCK) {
		/* Its restart block is gone: issue the syscall afresh (a sleep starts over). */
		r.rax = r.orig_rax;
		r.rip -= 2;
		r.orig_rax = (unsigned long long)-1;
	}
	if (ptrace(PTRACE_SETREGS, h->tid, NULL, &r) != 0 && rc == 0)
		rc = fail(err, errlen, "inject: restore: PTRACE_SETREGS: %s", strerror(errno));
	if (ptrace(PTRACE_SETSIGMASK, h->tid, (void *)sizeof(h->sigmask), &h->sigmask) != 0 &&
	    rc == 0)
		rc = fail(err, errlen, "inject: restore: PTRACE_SETSIGMASK: %s", strerror(errno));
	return rc;
}

/* Restores a stopped thread and lets it go with the signals it was owed. */
static void finish(struct hijack *h, char *err, size_t errlen, bool failed)
{
	char rerr[256] = "";
	if (h->stopped) {
		if (restore(h, rerr, sizeof(rerr)) != 0 && !failed)
			snprintf(err, errlen, "%s", rerr);
		int sig = h->sig ? h->sig : (h->ndeferred ? h->deferred[0] : 0);
		int first = h->sig ? 0 : 1;
		mark_running(h);
		if (ptrace(PTRACE_DETACH, h->tid, NULL, (void *)(long)sig) == 0)
			for (int i = first; i < h->ndeferred; i++)
				syscall(SYS_tgkill, h->pid, h->tid, h->deferred[i]);
	}
	if (rerr[0] && failed)
		fp_log("inject: process %d: %s (after: %s)", (int)h->pid, rerr, err);
	/* A thread left running (never stopped, or not again) is detached when this one exits. */
}

static int seize(struct hijack *h, char *err, size_t errlen)
{
	if (h->mem < 0) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/mem", (int)h->pid);
		h->mem = open(path, O_RDWR | O_CLOEXEC);
		if (h->mem < 0)
			return errno == ENOENT ? gone(h, "attach", err, errlen)
					       : fail(err, errlen, "inject: attach: %s: %s", path,
						      strerror(errno));
	}
	if (ptrace(PTRACE_SEIZE, h->tid, NULL, NULL) != 0) {
		if (errno == ESRCH)
			return gone(h, "attach", err, errlen);
		if (errno == EPERM) {
			char why[256];
			explain_eperm(h->pid, h->tid, why, sizeof(why));
			return fail(err, errlen, "inject: attach: ptrace forbidden: %s", why);
		}
		return fail(err, errlen, "inject: attach: PTRACE_SEIZE: %s", strerror(errno));
	}
	return 0;
}

/* Runs fn on a thread with every signal blocked, and waits for it. */
static int run_tracer(void *(*fn)(void *), void *arg, char *err, size_t errlen)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_t th;
	int e = pthread_create(&th, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0)
		return fail(err, errlen, "inject: starting the tracer thread failed: %s",
			    strerror(e));
	pthread_join(th, NULL);
	return 0;
}

/* ---- ptrace path ---- */

struct ptrace_job {
	/* In. */
	pid_t pid, tid;
	const struct fp_maps *maps;
	int timeout_ms;
	uint64_t f_dlopen, f_dlerror, f_errno;
	uint64_t dlopen_flags;
	uint64_t f_entry;	/* the helper's entry when it is loaded already, else 0 */
	const char *lib;	/* dlopen's argument, when not */
	const char *dir_target; /* named when dlopen cannot map the copy */
	const char *sock;
	/* Out. */
	int rc;
	char err[768];
	int retries;
	double stopped_ms;
};

/* The entry of the helper just loaded, from the maps as they are now. */
static int entry_after_load(struct ptrace_job *j, uint64_t *entry)
{
	struct fp_maps now;
	if (fp_maps_read(j->pid, &now) != 0)
		return fail(j->err, sizeof(j->err), "inject: %s: cannot read the maps of %d",
			    FP_AGENT_ENTRY, (int)j->pid);
	/*
	 * None was loaded before, so the one mapped now is the copy just loaded.
	 * Its path is not j->lib when the target is in a chroot: the maps name
	 * files from fpd's root.
	 */
	const struct fp_map *agent = fp_inject_find_agent(&now);
	int rc = -1;
	struct fp_elf *e = agent ? fp_elf_open_mapped(j->pid, agent) : NULL;
	if (!agent)
		fail(j->err, sizeof(j->err), "inject: dlopen: succeeded, but %s is not mapped",
		     j->lib);
	else if (!e)
		fail(j->err, sizeof(j->err), "inject: %s: cannot read the loaded %s: %s",
		     FP_AGENT_ENTRY, j->lib, strerror(errno));
	else if (fp_inject_sym_addr(e, &now, agent, FP_AGENT_ENTRY, entry) != 0)
		fail(j->err, sizeof(j->err), "inject: %s: not exported by %s", FP_AGENT_ENTRY,
		     j->lib);
	else
		rc = 0;
	fp_elf_close(e);
	fp_maps_free(&now);
	return rc;
}

static int load_and_start(struct hijack *h, struct ptrace_job *j)
{
	char *err = j->err;
	size_t errlen = sizeof(j->err);
	uint64_t ret, entry = j->f_entry;
	uint64_t sock = push_string(h, j->sock);
	uint64_t lib = entry ? 0 : push_string(h, j->lib);
	if (!sock || (!entry && !lib))
		return fail(err, errlen, "inject: save: writing to the stack: %s", strerror(errno));
	if (!entry) {
		if (remote_call(h, "dlopen", j->f_dlopen, lib, RTLD_NOW | j->dlopen_flags, &ret,
				err, errlen))
			return -1;
		if (ret == 0) {
			char msg[512] = "no reason given (glibc < 2.34 keeps it from dlerror)";
			uint64_t at = 0;
			if (j->f_dlerror &&
			    remote_call(h, "dlerror", j->f_dlerror, 0, 0, &at, err, errlen) != 0)
				return -1;
			if (at)
				remote_string(h->pid, at, msg, sizeof(msg));
			if (strstr(msg, "failed to map segment"))
				return fail(err, errlen,
					    "inject: dlopen: %s (is %s on a noexec mount in the "
					    "target?)",
					    msg, j->dir_target);
			return fail(err, errlen, "inject: dlopen: %s", msg);
		}
		if (entry_after_load(j, &entry))
			return -1;
	}
	if (remote_call(h, FP_AGENT_ENTRY, entry, sock, 0, &ret, err, errlen))
		return -1;
	int rc = (int)(uint32_t)ret;
	if (rc < 0 && rc > -4096)
		return fail(err, errlen, "inject: %s: %s", FP_AGENT_ENTRY, strerror(-rc));
	if (rc != 0)
		return fail(err, errlen, "inject: %s: returned %d", FP_AGENT_ENTRY, rc);
	return 0;
}

static pid_t choose_thread(pid_t pid, const pid_t *skip, int nskip);

static void *ptrace_main(void *arg)
{
	struct ptrace_job *j = arg;
	char *err = j->err;
	size_t errlen = sizeof(j->err);
	pid_t tried[MAX_THREADS];
	int ntried = 0, retries = 0, mem = -1, rc;
	struct hijack h;
	for (;;) {
		h = (struct hijack){.pid = j->pid,
				    .tid = j->tid,
				    .mem = mem,
				    .timeout_ms = j->timeout_ms,
				    .maps = j->maps};
		rc = seize(&h, err, errlen);
		if (rc == 0)
			rc = reach_safe_point(&h, err, errlen);
		mem = h.mem;
		retries += h.retries;
		if (rc == 0 || !h.other_thread || ntried + 1 >= MAX_THREADS)
			break;
		/* Nothing of this thread was changed yet: let it go as it was, take another. */
		finish(&h, err, errlen, true);
		tried[ntried++] = h.tid;
		pid_t next = choose_thread(j->pid, tried, ntried);
		if (!next)
			break;
		j->tid = next;
		err[0] = '\0';
	}
	if (rc == 0)
		rc = save_state(&h, err, errlen);
	if (rc == 0)
		rc = save_scratch(&h, err, errlen);
	if (rc == 0)
		rc = remote_call(&h, "__errno_location", j->f_errno, 0, 0, &h.errno_addr, err,
				 errlen);
	if (rc == 0) {
		if (mem_read(&h, h.errno_addr, &h.errno_val, sizeof(h.errno_val)) != 0)
			rc = fail(err, errlen, "inject: save: reading errno: %s", strerror(errno));
		else
			h.errno_saved = true;
	}
	if (rc == 0)
		rc = load_and_start(&h, j);
	finish(&h, err, errlen, rc != 0);
	if (rc == 0 && err[0])
		rc = -1; /* the restore failed */
	if (h.mem >= 0)
		close(h.mem);
	free(h.xstate);
	j->rc = rc;
	j->retries = retries;
	j->stopped_ms = (double)h.stopped_ns / 1e6;
	return NULL;
}

/* Whether a thread is inside exit() already: PF_EXITING in its flags (stat field 9). */
static bool thread_exiting(pid_t pid, pid_t tid)
{
	char path[96], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = '\0';
	/* After the comm field's ')': state, ppid, pgrp, session, tty, tpgid, flags. */
	char *p = strrchr(buf, ')');
	for (int field = 2; p && field < 9; field++)
		p = strchr(p + 1, ' ');
	return !p || (strtoul(p + 1, NULL, 10) & PF_EXITING) != 0;
}

/*
 * Whether a thread blocks every signal it can: a helper's own threads do,
 * and the session thread of a session that just closed ends a moment later.
 */
static bool thread_blocks_all(pid_t pid, pid_t tid)
{
	char path[96], v[32];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)tid);
	if (status_line(path, "SigBlk", v, sizeof(v)) != 0)
		return false;
	uint64_t all = 0x7fffffffULL & ~(1ULL << (SIGKILL - 1)) & ~(1ULL << (SIGSTOP - 1));
	return (strtoull(v, NULL, 16) & all) == all;
}

/*
 * The thread to hijack, best first: one blocked in an allow-listed syscall
 * costs the target nothing (the main thread first); else the main thread,
 * whose stops are then checked one by one; else any other; a thread that
 * blocks every signal (a helper's, maybe about to end) last.  Never one that
 * is exiting, nor one in skip (tried already).  0 when none is left.
 */
static pid_t choose_thread(pid_t pid, const pid_t *skip, int nskip)
{
	struct fp_task *t;
	size_t n;
	if (fp_proc_tasks(pid, &t, &n) != 0)
		return nskip ? 0 : pid;
	pid_t best = 0;
	int best_rank = INT_MAX;
	for (size_t i = 0; i < n; i++) {
		pid_t tid = t[i].tid;
		bool skipped = false;
		for (int k = 0; k < nskip; k++)
			skipped |= skip[k] == tid;
		if (skipped || t[i].state == 'Z' || t[i].state == 'X' || thread_exiting(pid, tid))
			continue;
		struct fp_syscall sc;
		bool blocked = fp_proc_syscall(pid, tid, &sc) == 0 && sc.nr >= 0 &&
			       fp_inject_syscall_safe(sc.nr);
		bool helper = thread_blocks_all(pid, tid);
		int rank = helper ? 4 : blocked ? (tid == pid ? 0 : 1) : tid == pid ? 2 : 3;
		if (rank < best_rank) {
			best = tid;
			best_rank = rank;
		}
	}
	free(t);
	return best ? best : nskip ? 0 : pid;
}

/*
 * Copies data (or the file src) into name in the session directory o->dir_fd,
 * with mode: only ever through that fd, never by a path.
 */
static int put_file(const struct fp_inject_opts *o, const char *name, mode_t mode, const char *src,
		    const void *data, size_t len, char *err, size_t errlen)
{
	int in = -1, out = -1, rc = -1, d = o->dir_fd;
	const char *dir = o->dir_target;
	if (src && (in = open(src, O_RDONLY | O_CLOEXEC)) < 0) {
		fail(err, errlen, "inject: copy: %s: %s", src, strerror(errno));
		goto out;
	}
	/* A leftover of an earlier attempt in this session goes; a symlink is never followed. */
	unlinkat(d, name, 0);
	out = openat(d, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	/* The umask must not take the target's permissions away. */
	if (out < 0 || fchmod(out, mode) != 0) {
		fail(err, errlen, "inject: copy: %s/%s: %s", dir, name, strerror(errno));
		goto out;
	}
	char buf[65536];
	for (size_t done = 0;;) {
		ssize_t n;
		if (src) {
			n = read(in, buf, sizeof(buf));
		} else {
			n = (ssize_t)(len - done < sizeof(buf) ? len - done : sizeof(buf));
			memcpy(buf, (const char *)data + done, (size_t)n);
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fail(err, errlen, "inject: copy: %s: %s", src, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		done += (size_t)n;
		for (ssize_t w = 0; w < n;) {
			ssize_t k = write(out, buf + w, (size_t)(n - w));
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0) {
				fail(err, errlen, "inject: copy: %s/%s: %s", dir, name,
				     strerror(errno));
				goto out;
			}
			w += k;
		}
	}
	rc = 0;
out:
	if (out >= 0 && close(out) != 0 && rc == 0)
		rc = fail(err, errlen, "inject: copy: %s/%s: %s", dir, name, strerror(errno));
	if (rc != 0 && out >= 0)
		unlinkat(d, name, 0);
	if (in >= 0)
		close(in);
	return rc;
}

static void remove_file(const struct fp_inject_opts *o, const char *name)
{
	unlinkat(o->dir_fd, name, 0);
}

/* A process that cannot run code now cannot load anything. */
static int check_process(pid_t pid, char *err, size_t errlen)
{
	struct fp_proc_info info;
	if (fp_proc_info(pid, &info) != 0 || info.state == 'Z' || info.state == 'X')
		return fail(err, errlen, "inject: target: process %d does not exist", (int)pid);
	if (info.state == 'T' || info.state == 't')
		return fail(err, errlen,
			    "inject: target: process %d is stopped (%s); continue it first",
			    (int)pid, info.state == 't' ? "by a debugger" : "job control");
	return 0;
}

static int inject_ptrace(const struct fp_python *py, const struct fp_inject_opts *o,
			 const struct fp_maps *maps, struct fp_inject_report *rep, char *err,
			 size_t errlen)
{
	pid_t pid = py->pid;
	if (check_process(pid, err, errlen))
		return -1;
	char path[64], v[32];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	/* The return trap is a SIGSEGV, which the kernel would turn back to SIG_DFL. */
	if (status_line(path, "SigIgn", v, sizeof(v)) == 0 && hex_bit(v, SIGSEGV - 1))
		return fail(err, errlen,
			    "inject: target: process %d ignores SIGSEGV, which the injection "
			    "would reset",
			    (int)pid);
	enum fp_libc kind;
	const struct fp_map *libc = fp_inject_find_libc(maps, &kind);
	if (!libc)
		return fail(err, errlen,
			    "inject: libc: process %d maps no C library (a fully static "
			    "executable?)",
			    (int)pid);
	if (kind == FP_LIBC_MUSL)
		return fail(err, errlen,
			    "inject: libc: process %d uses musl (%s): not supported yet", (int)pid,
			    libc->path);
	struct ptrace_job j = {.pid = pid,
			       .maps = maps,
			       .timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS,
			       .dir_target = o->dir_target,
			       .sock = o->sock_target};
	struct fp_elf *e = fp_elf_open_mapped(pid, libc);
	if (!e)
		return fail(err, errlen, "inject: libc: cannot read %s of process %d: %s",
			    libc->path, (int)pid, strerror(errno));
	if (fp_inject_sym_addr(e, maps, libc, "dlopen", &j.f_dlopen) != 0) {
		if (fp_inject_sym_addr(e, maps, libc, "__libc_dlopen_mode", &j.f_dlopen) == 0)
			j.dlopen_flags = RTLD_DLOPEN_FLAG;
	}
	/* dlerror lives in libdl before glibc 2.34: then failures come without a reason. */
	if (fp_inject_sym_addr(e, maps, libc, "dlerror", &j.f_dlerror) != 0)
		j.f_dlerror = 0;
	int have_errno = fp_inject_sym_addr(e, maps, libc, "__errno_location", &j.f_errno);
	fp_elf_close(e);
	if (!j.f_dlopen || have_errno != 0)
		return fail(err, errlen,
			    "inject: libc: %s has no dlopen, __libc_dlopen_mode or "
			    "__errno_location where expected",
			    libc->path);

	const struct fp_map *agent = fp_inject_find_agent(maps);
	char lib_target[PATH_MAX];
	snprintf(lib_target, sizeof(lib_target), "%s/%s", o->dir_target, FP_AGENT_LIBNAME);
	if (agent) {
		struct fp_elf *ae = fp_elf_open_mapped(pid, agent);
		int r = ae ? fp_inject_sym_addr(ae, maps, agent, FP_AGENT_ENTRY, &j.f_entry) : -1;
		fp_elf_close(ae);
		if (r != 0)
			return fail(err, errlen,
				    "inject: helper: %s is loaded in process %d but its %s cannot "
				    "be found",
				    agent->path, (int)pid, FP_AGENT_ENTRY);
	} else {
		if (put_file(o, FP_AGENT_LIBNAME, 0644, o->agent_path, NULL, 0, err, errlen))
			return -1;
		j.lib = lib_target;
	}
	j.tid = choose_thread(pid, NULL, 0);
	int rc = run_tracer(ptrace_main, &j, err, errlen);
	/* The mapping keeps the file alive; its name is not needed any more. */
	if (!agent)
		remove_file(o, FP_AGENT_LIBNAME);
	if (rc)
		return -1;
	rep->method = "ptrace";
	rep->loaded = !agent;
	rep->tid = j.tid;
	rep->retries = j.retries;
	rep->stopped_ms = j.stopped_ms;
	if (j.rc)
		return fail(err, errlen, "%s", j.err);
	return 0;
}

/* ---- PEP 768 path ---- */

struct pep768_job {
	/* In. */
	pid_t pid, tid;
	int timeout_ms;
	const struct fp_pep768_offsets *off;
	uint64_t tstate;
	const char *script; /* its path, as the target sees it */
	/* Out. */
	int rc;
	char err[512];
	double stopped_ms;
};

static void *pep768_main(void *arg)
{
	struct pep768_job *j = arg;
	struct hijack h = {.pid = j->pid, .tid = j->tid, .mem = -1, .timeout_ms = j->timeout_ms};
	char *err = j->err;
	size_t errlen = sizeof(j->err);
	const struct fp_pep768_offsets *o = j->off;
	/*
	 * The thread is stopped so that it cannot clear eval-breaker bits between
	 * the read and the write below.  Other threads only set bits there; the
	 * one byte written holds the flag bits, not the instrumentation version
	 * above them.  CPython's own sys.remote_exec does the same read-modify-write.
	 */
	int rc = seize(&h, err, errlen);
	if (rc == 0)
		rc = stop_thread(&h, err, errlen);
	if (rc == 0) {
		uint64_t sup = j->tstate + o->remote_debugger_support;
		int32_t one = 1;
		uint8_t eb = 0;
		if (remote_write(j->pid, sup + o->script_path, j->script, strlen(j->script) + 1) ||
		    remote_write(j->pid, sup + o->pending_call, &one, sizeof(one)) ||
		    remote_read(j->pid, j->tstate + o->eval_breaker, &eb, 1))
			rc = fail(err, errlen, "inject: pep768: writing the request: %s",
				  strerror(errno));
		eb |= PY_EVAL_PLEASE_STOP;
		if (rc == 0 && remote_write(j->pid, j->tstate + o->eval_breaker, &eb, 1))
			rc = fail(err, errlen, "inject: pep768: setting the eval breaker: %s",
				  strerror(errno));
	}
	finish(&h, err, errlen, rc != 0);
	if (rc == 0 && err[0])
		rc = -1; /* the restore failed */
	if (h.mem >= 0)
		close(h.mem);
	j->rc = rc;
	j->stopped_ms = (double)h.stopped_ns / 1e6;
	return NULL;
}

/* The host tid of the thread a PyThreadState names (native_thread_id is the namespace's). */
static pid_t host_tid(pid_t pid, long nstid)
{
	struct fp_task *t;
	size_t n;
	pid_t found = 0;
	if (fp_proc_tasks(pid, &t, &n) != 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (t[i].nstid == nstid)
			found = t[i].tid;
	free(t);
	return found;
}

#define SCRIPT_NAME "fpd-attach.py"

static int inject_pep768(const struct fp_python *py, const struct fp_inject_opts *o,
			 const struct fp_maps *maps, struct fp_inject_report *rep, char *err,
			 size_t errlen)
{
	pid_t pid = py->pid;
	if (check_process(pid, err, errlen))
		return -1;
	/* _PyRuntime is the .PyRuntime section, _Py_DebugOffsets its first member. */
	uint64_t rt = py->runtime;
	for (size_t i = 0; i < maps->n; i++) {
		const struct fp_map *m = &maps->v[i];
		if (!m->path || m->offset != 0 || strcmp(m->path, py->binary) != 0)
			continue;
		struct fp_elf *e = fp_elf_open_mapped(pid, m);
		uint64_t addr;
		if (e && fp_elf_section(e, ".PyRuntime", &addr, NULL, NULL) == 0)
			rt = py->bias + addr;
		fp_elf_close(e);
		break;
	}
	uint8_t dbg[FP_DEBUG_OFFSETS_SIZE];
	struct fp_pep768_offsets off;
	char why[256];
	if (remote_read(pid, rt, dbg, sizeof(dbg)) != 0)
		return fail(err, errlen, "inject: pep768: reading _PyRuntime at 0x%" PRIx64 ": %s",
			    rt, strerror(errno));
	if (fp_pep768_offsets(dbg, sizeof(dbg), &off, why, sizeof(why)) != 0)
		return fail(err, errlen, "inject: pep768: %s", why);
	if (!off.debugger)
		return fail(err, errlen,
			    "inject: pep768: Python 3.%d has no remote-debugger support",
			    off.minor);
	uint64_t interp = 0, tstate = 0;
	int32_t enabled = 0, pending = 0;
	int64_t nstid = 0;
	if (remote_read(pid, rt + off.interpreters_head, &interp, 8) || !interp ||
	    remote_read(pid, interp + off.remote_debugging_enabled, &enabled, 4) ||
	    remote_read(pid, interp + off.threads_main, &tstate, 8) || !tstate ||
	    remote_read(pid, tstate + off.remote_debugger_support + off.pending_call, &pending,
			4) ||
	    remote_read(pid, tstate + off.ts_native_thread_id, &nstid, 8))
		return fail(err, errlen,
			    "inject: pep768: the interpreter's main thread state is not readable "
			    "(starting up or shutting down?)");
	if (enabled != 1)
		return fail(err, errlen,
			    "inject: pep768: remote debugging is disabled in process %d "
			    "(PYTHON_DISABLE_REMOTE_DEBUG, -X disable_remote_debug, or a build "
			    "--without-remote-debug)",
			    (int)pid);
	if (pending)
		return fail(err, errlen,
			    "inject: pep768: a remote-debugger script is already pending on the "
			    "main thread of process %d (it runs when that thread next runs Python)",
			    (int)pid);
	struct pep768_job j = {.pid = pid,
			       .tid = host_tid(pid, (long)nstid),
			       .timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS,
			       .off = &off,
			       .tstate = tstate};
	if (!j.tid)
		return fail(err, errlen, "inject: pep768: the main thread (%lld) is not running",
			    (long long)nstid);

	const struct fp_map *agent = fp_inject_find_agent(maps);
	uint64_t entry = 0;
	if (agent) {
		struct fp_elf *ae = fp_elf_open_mapped(pid, agent);
		int r = ae ? fp_inject_sym_addr(ae, maps, agent, FP_AGENT_ENTRY, &entry) : -1;
		fp_elf_close(ae);
		if (r != 0)
			return fail(err, errlen,
				    "inject: helper: %s is loaded in process %d but its %s cannot "
				    "be found",
				    agent->path, (int)pid, FP_AGENT_ENTRY);
	}
	char lib[PATH_MAX], script_path[PATH_MAX], err_path[PATH_MAX], text[8192];
	snprintf(lib, sizeof(lib), "%s/%s", o->dir_target, FP_AGENT_LIBNAME);
	snprintf(script_path, sizeof(script_path), "%s/%s", o->dir_target, SCRIPT_NAME);
	snprintf(err_path, sizeof(err_path), "%s/%s", o->dir_target, FP_PEP768_ERR);
	if (strlen(script_path) >= off.script_path_size)
		return fail(err, errlen,
			    "inject: pep768: script path %s longer than %" PRIu64 " bytes",
			    script_path, off.script_path_size - 1);
	int len =
	    fp_pep768_script(text, sizeof(text), lib, entry, o->sock_target, script_path, err_path);
	if (len < 0)
		return fail(err, errlen, "inject: pep768: paths too long for the script");
	if (!agent && put_file(o, FP_AGENT_LIBNAME, 0644, o->agent_path, NULL, 0, err, errlen))
		return -1;
	/*
	 * The script runs as the target's user, who cannot create files in the
	 * session directory: its error report goes to a file made for it here,
	 * which others may write but only fpd reads.
	 */
	if (put_file(o, SCRIPT_NAME, 0644, NULL, text, (size_t)len, err, errlen) ||
	    put_file(o, FP_PEP768_ERR, 0622, NULL, "", 0, err, errlen)) {
		remove_file(o, SCRIPT_NAME);
		if (!agent)
			remove_file(o, FP_AGENT_LIBNAME);
		return -1;
	}
	j.script = script_path;
	int rc = run_tracer(pep768_main, &j, err, errlen);
	if (rc == 0 && j.rc != 0)
		rc = fail(err, errlen, "%s", j.err);
	if (rc != 0) {
		/* Nothing was scheduled; else they stay until the helper connects. */
		remove_file(o, SCRIPT_NAME);
		remove_file(o, FP_PEP768_ERR);
		if (!agent)
			remove_file(o, FP_AGENT_LIBNAME);
		return -1;
	}
	rep->method = "pep768";
	rep->loaded = !agent;
	rep->tid = j.tid;
	rep->stopped_ms = j.stopped_ms;
	return 0;
}

/* ---- Entry points ---- */

int fp_inject_agent(const struct fp_python *py, const struct fp_inject_opts *o,
		    struct fp_inject_report *rep, char *err, size_t errlen)
{
	memset(rep, 0, sizeof(*rep));
	if (!o->agent_path || o->dir_fd < 0 || !o->dir_target || !o->sock_target ||
	    o->dir_target[0] != '/' || o->sock_target[0] != '/')
		return fail(err, errlen, "inject: options: every path must be given, absolute");
	if (strlen(o->dir_target) + sizeof(FP_AGENT_LIBNAME) + 1 > MAX_ARG ||
	    strlen(o->sock_target) >= MAX_ARG)
		return fail(err, errlen, "inject: options: paths longer than %d bytes", MAX_ARG);
	fp_ptrace_lock();
	/* Read under the lock: two sessions must not both find the helper missing. */
	struct fp_maps maps;
	int rc;
	if (fp_maps_read(py->pid, &maps) != 0) {
		rc = fail(err, errlen, "inject: target: cannot read the maps of process %d: %s",
			  (int)py->pid, strerror(errno));
	} else {
		if (py->major == 3 && py->minor >= 14)
			rc = inject_pep768(py, o, &maps, rep, err, errlen);
		else
			rc = inject_ptrace(py, o, &maps, rep, err, errlen);
		fp_maps_free(&maps);
	}
	fp_ptrace_unlock();
	if (rc == 0 && rep->stopped_ms > 100)
		fp_log("inject: thread %d of process %d was stopped for %.0f ms", (int)rep->tid,
		       (int)py->pid, rep->stopped_ms);
	return rc;
}

bool fp_inject_agent_loaded(pid_t pid)
{
	struct fp_maps maps;
	if (fp_maps_read(pid, &maps) != 0)
		return false;
	bool loaded = fp_inject_find_agent(&maps) != NULL;
	fp_maps_free(&maps);
	return loaded;
}
