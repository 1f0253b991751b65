/*
 * The injector: loads the helper (libfpagent.so) into a running CPython and
 * calls its entry point, which connects back to fpd's session socket.
 *
 * CPython <= 3.13, by ptrace: one thread, chosen at a safe point, is made to
 * call dlopen() and then fpagent_start(), then put back exactly as it was
 * (registers, vector state, signal mask, errno, the stack below its red
 * zone).  No byte of code is ever written; no other thread stops.
 *
 * CPython >= 3.14, by PEP 768: a small script that loads the helper with
 * ctypes is scheduled on the main thread through _Py_DebugOffsets, with
 * process_vm_writev; that thread is stopped only while its eval breaker is
 * set.
 *
 * The measurements behind each step are in research/inject-notes.md.
 */
#ifndef FP_INJECT_H
#define FP_INJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "elf.h"
#include "proc.h"
#include "py/python.h"

struct fp_inject_opts {
	const char *agent_path;	 /* host path of libfpagent.so (fpd reads it) */
	int dir_fd;		 /* the directory fpd made for this session (fp_session_dir_make):
				    the helper's copy and the PEP 768 script are written through
				    it, never by a path the target's user could redirect */
	const char *dir_target;	 /* the same directory as the target sees it: /tmp/.fpd-XXXXXX */
	const char *sock_target; /* the socket the helper must connect to, as the target sees it */
	int timeout_ms;		 /* watchdog per step (0: 5000) */
};

struct fp_inject_report {
	bool loaded;	   /* true: dlopen'ed now; false: helper was already loaded, re-triggered */
	pid_t tid;	   /* the hijacked thread (host tid) */
	int retries;	   /* safe-point retries */
	double stopped_ms; /* how long that thread was stopped */
	const char *method; /* "ptrace" or "pep768" */
};

/*
 * 0, or -1 with err = one line naming the failed step ("inject: <step>:
 * <why>"); the target is left exactly as it was on every path.  With PEP 768
 * 0 means scheduled: the helper starts when the main thread next runs Python
 * code (a script error is written to dir_target/FP_PEP768_ERR).  Takes
 * fp_ptrace_lock, so injections and `stack --native` never overlap.
 */
#define FP_PEP768_ERR "pep768.err"
int fp_inject_agent(const struct fp_python *py, const struct fp_inject_opts *o,
		    struct fp_inject_report *rep, char *err, size_t errlen);

/* Whether libfpagent.so is mapped in pid (for `fpctl ps`). */
bool fp_inject_agent_loaded(pid_t pid);

/* ---- The pure parts, exposed for the unit tests ---- */

/*
 * Whether a thread blocked in syscall nr may be hijacked: the kernel restarts
 * it transparently once the thread runs again, and it holds none of the
 * locks dlopen takes.  epoll_wait and rt_sigtimedwait are left out: they
 * return EINTR after any stop (signal(7)).
 */
bool fp_inject_syscall_safe(long nr);

/*
 * Whether syscall nr only waits, holding no lock: epoll_wait and kin.  Not
 * chosen while an allow-listed thread exists, since stopping it makes it
 * return EINTR; but once it is stopped that has happened, and retrying would
 * only repeat it (an idle asyncio loop waits in nothing else).
 */
bool fp_inject_syscall_idle(long nr);

/*
 * Whether a thread running (not blocked) in the file at path may hold a lock
 * dlopen or malloc need: anything in the C library or the dynamic loader.
 */
bool fp_inject_path_unsafe(const char *path);

enum fp_libc {
	FP_LIBC_NONE,
	FP_LIBC_GLIBC,
	FP_LIBC_MUSL,
};

/* The offset-0 mapping of the target's C library, and which one it is. */
const struct fp_map *fp_inject_find_libc(const struct fp_maps *m, enum fp_libc *kind);

/* The offset-0 mapping of a loaded helper (any "libfpagent*", "(deleted)" too), or NULL. */
const struct fp_map *fp_inject_find_agent(const struct fp_maps *m);

/*
 * Run-time address of symbol name of the ELF e whose offset-0 mapping starts
 * at base: base - first PT_LOAD's page-aligned vaddr + st_value.  The result
 * must fall in an executable mapping of the same file in m.  0, or -1.
 */
int fp_inject_sym_addr(struct fp_elf *e, const struct fp_maps *m, const struct fp_map *base,
		       const char *name, uint64_t *addr);

/* What the PEP 768 path needs from _Py_DebugOffsets (offsets inside each structure). */
struct fp_pep768_offsets {
	int minor;
	bool debugger; /* 3.14+: the fields from eval_breaker on are valid */
	uint64_t runtime_size, interp_size, tstate_size;
	uint64_t interpreters_head; /* _PyRuntimeState */
	uint64_t threads_head;	    /* PyInterpreterState */
	uint64_t threads_main;	    /* PyInterpreterState, 3.14+ */
	uint64_t ts_next, ts_native_thread_id;
	uint64_t eval_breaker, remote_debugger_support; /* PyThreadState */
	uint64_t remote_debugging_enabled;		/* PyInterpreterState (an int) */
	uint64_t pending_call, script_path;		/* _PyRemoteDebuggerSupport */
	uint64_t script_path_size;
};

/*
 * Reads the bytes of _Py_DebugOffsets (the start of _PyRuntime, len bytes).
 * 0 for a layout it knows (3.13: debugger false; 3.14: debugger true), or
 * -1 with a reason in err.
 */
int fp_pep768_offsets(const void *buf, size_t len, struct fp_pep768_offsets *out, char *err,
		      size_t errlen);

/*
 * The Python file PEP 768 runs in the target: calls the helper's entry at
 * entry (already loaded), or loads lib with ctypes and calls its entry, with
 * sock; an exception goes to err_path; it removes self and lib afterwards.
 * Every path is written as an escaped bytes literal.  Returns the length, or
 * -1 when cap is too small.
 */
int fp_pep768_script(char *buf, size_t cap, const char *lib, uint64_t entry, const char *sock,
		     const char *self, const char *err_path);

#endif
