/*
 * Memory layout of the CPython structures fpd reads from outside a process.
 *
 * One source of truth for every reader (remote stack reader, BPF sampler,
 * agent): a static table per CPython minor version 3.6-3.12 (daemon/py/layout.c,
 * each value documented with how it was obtained and checked against the DWARF
 * of every pyenv libpython by tests/integration/test_layout.py), and for 3.13+
 * the values of _Py_DebugOffsets read from the target at run time, completed
 * by a static table for what _Py_DebugOffsets does not describe.
 *
 * All values are byte offsets (or sizes) for x86-64 release builds.
 * FP_NO_FIELD marks a field the version does not have.
 */
#ifndef FP_LAYOUT_H
#define FP_LAYOUT_H

#include <stdint.h>

/* BPF programs include this header for the struct alone. */
#ifndef __bpf__
#include <jansson.h>
#endif

#define FP_NO_FIELD (-1)

/* How Python frames are chained. */
enum fp_frame_model {
	FP_FRAMES_OBJECT = 1, /* <= 3.10: PyFrameObject via tstate->frame, f_back */
	FP_FRAMES_CFRAME,     /* 3.11, 3.12: tstate->cframe->current_frame, previous */
	FP_FRAMES_CURRENT,    /* 3.13+: tstate->current_frame, previous */
};

/* How the line number of an instruction is encoded in the code object. */
enum fp_linetable_kind {
	FP_LINES_LNOTAB = 1, /* <= 3.9: co_lnotab, byte offsets */
	FP_LINES_310,	     /* 3.10: co_linetable (PEP 626), byte offsets */
	FP_LINES_311,	     /* 3.11+: co_linetable location table, code units */
};

/* How dict keys are laid out. */
enum fp_dict_model {
	FP_DICT_36 = 1, /* 3.6-3.10: dk_size, dk_indices, 24-byte entries */
	FP_DICT_311,	/* 3.11+: dk_log2_size, dk_kind, 16/24-byte entries */
};

/* How an instance's attribute dict is found. */
enum fp_instdict_model {
	FP_INSTDICT_OFFSET = 1, /* <= 3.10: *(obj + tp_dictoffset) */
	FP_INSTDICT_311,	/* 3.11: managed dict at obj[-3], values at obj[-4] */
	FP_INSTDICT_312,	/* 3.12: tagged dict-or-values at obj[-3] */
	FP_INSTDICT_313,	/* 3.13+: inline values at obj+tp_basicsize, dict at obj[-3] */
};

struct fp_layout {
	int major, minor;
	enum fp_frame_model frame_model;
	enum fp_linetable_kind linetable;
	enum fp_dict_model dict_model;
	enum fp_instdict_model instdict_model;

	/* _PyRuntimeState */
	int32_t runtime_interpreters_head;
	int32_t runtime_gil; /* offset of struct _gil_runtime_state (3.7-3.11); else FP_NO_FIELD */

	/* PyInterpreterState */
	int32_t interp_next;
	int32_t interp_threads_head;
	int32_t interp_modules; /* interp->modules (<=3.11) or interp->imports.modules */
	int32_t interp_gil_ptr; /* interp->ceval.gil, a pointer (3.12+); else FP_NO_FIELD */

	/* struct _gil_runtime_state */
	int32_t gil_last_holder;
	int32_t gil_locked;
	int32_t gil_size; /* futex words inside [gil, gil+size) mean "waiting for the GIL" */

	/* PyThreadState */
	int32_t ts_next;
	int32_t ts_interp;
	int32_t ts_frame;  /* <= 3.10: PyFrameObject *frame */
	int32_t ts_cframe; /* 3.11, 3.12: _PyCFrame *cframe */
	int32_t cframe_current_frame;
	int32_t ts_root_cframe;	     /* the cframe of a thread outside the eval loop (3.11, 3.12) */
	int32_t ts_current_frame;    /* 3.13+ */
	int32_t ts_thread_id;	     /* pthread_t, the key of threading._active */
	int32_t ts_native_thread_id; /* 3.11+: kernel tid in the target's pid namespace; before,
				      * it is read from glibc's struct pthread */

	/* PyFrameObject (<= 3.10) */
	int32_t fo_back;
	int32_t fo_code;
	int32_t fo_lasti; /* int; bytes <= 3.9, code units in 3.10 */
	int32_t fo_localsplus;

	/* _PyInterpreterFrame (3.11+) */
	int32_t if_previous;
	int32_t if_code;  /* f_code (3.11, 3.12) / f_executable (3.13) */
	int32_t if_instr; /* prev_instr (3.11, 3.12) / instr_ptr (3.13) */
	int32_t if_localsplus;
	int32_t if_owner;     /* char owner (3.11+; the C-stack shim owner exists from 3.12) */
	int32_t if_is_entry;  /* bool is_entry (3.11 only) */
	int32_t if_size;      /* bytes of the fixed part, read in one go */
	int32_t owner_cstack; /* FRAME_OWNED_BY_CSTACK value, or FP_NO_FIELD */
	/* FRAME_OWNED_BY_GENERATOR (3.11+): such a frame is never a thread's outermost */
	int32_t owner_generator;

	/* PyCodeObject */
	int32_t co_argcount;
	int32_t co_nlocals; /* number of plain locals (used <= 3.10) */
	int32_t co_flags;   /* CO_GENERATOR, CO_COROUTINE, ...: see stack.c's walk */
	int32_t co_firstlineno;
	int32_t co_filename;
	int32_t co_name;
	int32_t co_qualname;	    /* 3.11+ */
	int32_t co_linetable;	    /* co_lnotab (<= 3.9) or co_linetable: a bytes object */
	int32_t co_varnames;	    /* <= 3.10: tuple of local names */
	int32_t co_cellvars;	    /* <= 3.10 */
	int32_t co_freevars;	    /* <= 3.10 */
	int32_t co_localsplusnames; /* 3.11+ */
	int32_t co_localspluskinds; /* 3.11+ bytes */
	int32_t co_nlocalsplus;	    /* 3.11+ int */
	int32_t co_code_adaptive;   /* 3.11+: first instruction, inside the code object */
	int32_t co_size;	    /* bytes of PyCodeObject read in one go */

	/* Objects */
	int32_t ob_type;  /* 8 */
	int32_t var_size; /* PyVarObject.ob_size, 16 */
	int32_t tp_name;
	int32_t tp_basicsize;
	int32_t tp_dictoffset;
	int32_t tp_flags;
	int32_t ht_cached_keys; /* PyHeapTypeObject.ht_cached_keys (3.6+) */
	int32_t tuple_item;	/* ob_item */
	int32_t list_item;	/* ob_item (a pointer to the array) */
	int32_t bytes_sval;
	int32_t float_fval;
	int32_t long_digit; /* ob_digit */
	int32_t
	    long_lv_tag; /* 3.12+: lv_tag; else FP_NO_FIELD and ob_size carries sign and length */
	int32_t module_dict; /* PyModuleObject.md_dict */

	/* str: PyASCIIObject / PyCompactUnicodeObject */
	int32_t unicode_length;
	int32_t unicode_state;
	int32_t unicode_ascii_size;   /* sizeof(PyASCIIObject): data of compact ASCII follows */
	int32_t unicode_compact_size; /* sizeof(PyCompactUnicodeObject) */

	/* dict */
	int32_t dict_used;
	int32_t dict_keys;
	int32_t dict_values;
	int32_t dk_size;	     /* FP_DICT_36: Py_ssize_t dk_size */
	int32_t dk_log2_size;	     /* FP_DICT_311: uint8 */
	int32_t dk_log2_index_bytes; /* FP_DICT_311: uint8 */
	int32_t dk_kind;	     /* FP_DICT_311: uint8 */
	int32_t dk_nentries;
	int32_t dk_indices;
	int32_t dict_values_values; /* offset of the value array inside PyDictValues (0, or 8
				       in 3.13) */
};

/* The static table for major.minor, or NULL when fpd does not know it. */
const struct fp_layout *fp_layout_for(int major, int minor);

/*
 * Builds the layout of a 3.13+ target from the bytes of its _Py_DebugOffsets
 * (the start of _PyRuntime).  Returns 0, or -1 with a reason in err when the
 * cookie is wrong or the version is not one fpd can complete.
 */
int fp_layout_from_debug_offsets(const void *buf, unsigned long len, struct fp_layout *out,
				 char *err, unsigned long errlen);

#ifndef __bpf__
/* A new JSON object mapping every member name of l to its value (`fpd --layout`). */
json_t *fp_layout_json(const struct fp_layout *l);
#endif

/* Bytes of _PyRuntime that fp_layout_from_debug_offsets needs. */
#define FP_DEBUG_OFFSETS_SIZE 4096

#endif
