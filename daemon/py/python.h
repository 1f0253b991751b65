/*
 * A CPython process seen from outside: where its interpreter lives, which
 * version it is, and the layout of its structures.
 */
#ifndef FP_PY_PYTHON_H
#define FP_PY_PYTHON_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "fp/layout.h"
#include "../mem.h"

struct fp_python {
	pid_t pid;
	int major, minor, micro;
	char version[32];      /* "3.11.7" */
	char binary[PATH_MAX]; /* the ELF holding _PyRuntime, as the target names it */
	bool shared;	       /* libpython.so rather than a static executable */
	bool stripped;	       /* no .symtab */
	bool dtrace;	       /* .note.stapsdt present */
	uint64_t bias;	       /* load bias of binary */
	uint64_t runtime;      /* address of _PyRuntime */
	uint64_t gil;	       /* struct _gil_runtime_state, 0 when unknown (3.12+: per interp) */
	uint64_t gil_last_holder; /* 3.6: address of the static gil_last_holder, else 0 */
	uint64_t gil_locked;	  /* 3.6: address of the static gil_locked, else 0 */
	uint32_t
	    pthread_tid_off; /* 3.6, 3.7: offset of tid in glibc's struct pthread, 0 if unknown */
	uint64_t code_type;  /* &PyCode_Type: a frame whose code is not of this type is torn */
	struct fp_layout layout; /* copied from the table, or built from _Py_DebugOffsets */
};

enum fp_discover_status {
	FP_PY_OK = 0,
	FP_PY_NO_PROCESS = -1, /* does not exist */
	FP_PY_ZOMBIE = -2,
	FP_PY_NOT_PYTHON = -3,	/* no libpython or _PyRuntime/interpreter symbol found */
	FP_PY_UNSUPPORTED = -4, /* a Python whose version fpd has no layout for */
	FP_PY_NO_ACCESS = -5,	/* maps or memory cannot be read */
	FP_PY_NOT_READY = -6,	/* interpreter not initialised yet, or finalising */
};

/* Finds the interpreter in a live process; err gets one line on failure. */
int fp_python_discover(pid_t pid, struct fp_python *py, char *err, size_t errlen);

/*
 * The threading.Thread objects of one interpreter that have an ident: those
 * started and not yet running (threading._limbo, once the new thread set its
 * ident) and those running (threading._active).  fn gets the ident (the
 * pthread_t, as the thread state's thread_id), the kernel tid the thread
 * recorded for itself (Thread._native_id, 3.8+; 0 when unknown) and the name.
 * Returns 0 (also when threading was never imported), -ENOTSUP when the
 * layout cannot find modules, or another -errno when a dict could not be
 * read whole: it was changing under us, so the caller may read again.
 */
struct fp_pyctx;
typedef void (*fp_py_thread_fn)(void *arg, uint64_t ident, int64_t native_id, const char *name);
int fp_py_threads(const struct fp_pyctx *c, uint64_t interp, fp_py_thread_fn fn, void *arg);

#endif
