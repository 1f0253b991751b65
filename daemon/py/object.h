/*
 * Readers of CPython objects in a remote address space.  Each function reads
 * through an fp_mem and the layout; each bounds what it reads and fails
 * (returns < 0) rather than follow a pointer into garbage.
 */
#ifndef FP_PY_OBJECT_H
#define FP_PY_OBJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fp/layout.h"
#include "../mem.h"

struct fp_pyctx {
	const struct fp_mem *mem;
	const struct fp_layout *l;
};

/* Type name (tp_name) of the object at addr. */
int fp_py_type_name(const struct fp_pyctx *c, uint64_t obj, char *out, size_t cap);

/* str -> UTF-8, truncated to cap-1 bytes (never mid-character). */
int fp_py_str(const struct fp_pyctx *c, uint64_t obj, char *out, size_t cap);
/* bytes -> raw bytes; *len gets the full size, at most cap copied. */
int fp_py_bytes(const struct fp_pyctx *c, uint64_t obj, uint8_t *out, size_t cap, size_t *len);
/* int that fits in 64 bits. */
int fp_py_long(const struct fp_pyctx *c, uint64_t obj, int64_t *out);
/* tuple items: up to cap pointers, *n gets the tuple's length. */
int fp_py_tuple(const struct fp_pyctx *c, uint64_t obj, uint64_t *items, size_t cap, size_t *n);

/*
 * Short repr of a simple object (int, float, str, bytes, bool, None), of a
 * tuple, list or dict (two levels deep, 8 items each), or "<type at 0x...>"
 * for anything else; truncated with "..." to cap-1 bytes.
 */
int fp_py_repr(const struct fp_pyctx *c, uint64_t obj, char *out, size_t cap);

/*
 * Calls fn for each (key, value) of a dict, at most limit items.  fn returns
 * non-zero to stop, and fp_py_dict_foreach then returns that value.
 */
typedef int (*fp_dict_fn)(void *arg, uint64_t key, uint64_t value);
int fp_py_dict_foreach(const struct fp_pyctx *c, uint64_t dict, size_t limit, fp_dict_fn fn,
		       void *arg);
/* Value of a str key in a dict; 0 with *value = 0 when absent. */
int fp_py_dict_get_str(const struct fp_pyctx *c, uint64_t dict, const char *key, uint64_t *value);
/* Instance attribute by name (instance __dict__, managed dicts, inline values). */
int fp_py_getattr(const struct fp_pyctx *c, uint64_t obj, const char *name, uint64_t *value);

/*
 * Thread names from threading._active: calls fn(arg, ident, name) for each
 * Python thread object; ident is the pthread_t Python reports as the thread's ident.
 */
typedef void (*fp_thread_name_fn)(void *arg, uint64_t ident, const char *name);
int fp_py_thread_names(const struct fp_pyctx *c, uint64_t interp, fp_thread_name_fn fn, void *arg);

#endif
