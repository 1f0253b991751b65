/*
 * CPython structure layouts, one static table per minor version 3.6-3.12, and
 * the 3.13 layout built from the target's own _Py_DebugOffsets.
 *
 * Where the values come from: every number below was printed by
 * `tools/layout_from_dwarf.py LIBPYTHON` on the libpython of the pyenv build
 * named above each table (DWARF of a default x86-64 release build: offsets as
 * `&((T *)0)->member`, sizes as sizeof, enum constants by name).  Checked by
 * tests/integration/test_layout.py: each table field by field against the
 * DWARF of every pyenv interpreter on the machine, and from inside every
 * interpreter (tests/integration/targets/layout_probe.py follows each offset
 * with ctypes from live objects), which also covers builds without DWARF
 * such as Debian's stripped 3.11.2.  CPython keeps these layouts within a
 * minor version (bug-fix releases keep the ABI, and the internal structures
 * we read have not moved between the patch releases checked).
 *
 * Conventions, beyond the comments in include/fp/layout.h:
 *  - A member gets a value whenever the version has it with the meaning
 *    layout.h gives, else FP_NO_FIELD.  So 3.11+ keep co_nlocals and 3.11 has
 *    if_owner (its owner field exists, but no owner means "C stack": 3.11
 *    marks those frames with is_entry instead, and owner_cstack is NO).
 *  - The PyFrameObject offsets (fo_*) and ts_frame exist only for the <= 3.10
 *    frame chain; 3.11+ PyFrameObjects are not on the chain we walk.
 *  - ts_cframe only where the cframe leads to the frames (3.11, 3.12): 3.10
 *    already has tstate->cframe, but its CFrame holds only use_tracing.
 *  - PyThreadState.native_thread_id appeared in 3.11 (not 3.8, when only
 *    threading.get_native_id() did); before, python.c finds the kernel tid
 *    through the pthread_t in ts_thread_id and glibc's struct pthread.
 *  - if_size is offsetof(localsplus) and co_size offsetof(co_code_adaptive) on
 *    3.11+ (sizeof(PyCodeObject) before): the fixed part, everything we read
 *    in one go, and never past the end of the smallest such object.
 *  - dict_values_values is 0 up to 3.10, where ma_values points straight at
 *    the array of values rather than at a PyDictValues.
 *  - 3.6 has no _PyRuntime.  Its interpreter list starts at the static
 *    `interp_head` of Python/pystate.c, and for 3.6 "runtime" means the
 *    address of interp_head, hence runtime_interpreters_head = 0.  Its GIL is
 *    not a struct but the statics gil_last_holder, gil_locked, gil_cond, ...
 *    of Python/ceval_gil.h, which python.c finds by symbol (and sets
 *    gil_size from): runtime_gil and the gil_* offsets are FP_NO_FIELD.
 *  - 3.12 moved the GIL into the interpreter (interp->_gil, reached through
 *    the pointer interp->ceval.gil): runtime_gil is FP_NO_FIELD there.
 *  - 3.12's tagged dict-or-values word (FP_INSTDICT_312) holds the
 *    PyDictValues pointer minus 1: add 1, masking the tag off is 2 bytes short.
 */
#include "fp/layout.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define NO FP_NO_FIELD

/* pyenv 3.6.15 */
static const struct fp_layout layout_36 = {
    .major = 3,
    .minor = 6,
    .frame_model = FP_FRAMES_OBJECT,
    .linetable = FP_LINES_LNOTAB,
    .dict_model = FP_DICT_36,
    .instdict_model = FP_INSTDICT_OFFSET,
    .runtime_interpreters_head = 0, /* no _PyRuntime: "runtime" is &interp_head */
    .runtime_gil = NO,		    /* static gil_* variables, found by symbol */
    .interp_next = 0,
    .interp_threads_head = 8,
    .interp_modules = 16,
    .interp_gil_ptr = NO,
    .gil_last_holder = NO,
    .gil_locked = NO,
    .gil_size = NO, /* set at run time from the statics' symbols */
    .ts_next = 8,
    .ts_interp = 16,
    .ts_frame = 24,
    .ts_cframe = NO,
    .cframe_current_frame = NO,
    .ts_root_cframe = NO,
    .ts_current_frame = NO,
    .ts_thread_id = 152,
    .ts_native_thread_id = NO, /* 3.11+; tid from glibc's struct pthread */
    .fo_back = 24,
    .fo_code = 32,
    .fo_lasti = 120,
    .fo_localsplus = 376,
    .if_previous = NO,
    .if_code = NO,
    .if_instr = NO,
    .if_localsplus = NO,
    .if_owner = NO,
    .if_is_entry = NO,
    .if_size = NO,
    .owner_cstack = NO,
    .owner_generator = NO,
    .co_argcount = 16,
    .co_nlocals = 24,
    .co_flags = 32,
    .co_firstlineno = 36,
    .co_filename = 96,
    .co_name = 104,
    .co_qualname = NO,
    .co_linetable = 112, /* co_lnotab */
    .co_varnames = 64,
    .co_cellvars = 80,
    .co_freevars = 72,
    .co_localsplusnames = NO,
    .co_localspluskinds = NO,
    .co_nlocalsplus = NO,
    .co_code_adaptive = NO,
    .co_size = 144, /* sizeof(PyCodeObject) */
    .ob_type = 8,
    .var_size = 16,
    .tp_name = 24,
    .tp_basicsize = 32,
    .tp_dictoffset = 288,
    .tp_flags = 168,
    .ht_cached_keys = 856,
    .tuple_item = 24,
    .list_item = 24,
    .bytes_sval = 32,
    .float_fval = 16,
    .long_digit = 24,
    .long_lv_tag = NO,
    .module_dict = 16,
    .unicode_length = 16,
    .unicode_state = 32, /* bitfield word after hash */
    .unicode_ascii_size = 48,
    .unicode_compact_size = 72,
    .dict_used = 16,
    .dict_keys = 32,
    .dict_values = 40,
    .dk_size = 8,
    .dk_log2_size = NO,
    .dk_log2_index_bytes = NO,
    .dk_kind = NO,
    .dk_nentries = 32,
    .dk_indices = 40,	     /* a union of int8_t..int64_t arrays */
    .dict_values_values = 0, /* ma_values is the array itself */
};

/* pyenv 3.7.16 */
static const struct fp_layout layout_37 = {
    .major = 3,
    .minor = 7,
    .frame_model = FP_FRAMES_OBJECT,
    .linetable = FP_LINES_LNOTAB,
    .dict_model = FP_DICT_36,
    .instdict_model = FP_INSTDICT_OFFSET,
    .runtime_interpreters_head = 24,
    .runtime_gil = 1264, /* _PyRuntime.ceval.gil */
    .interp_next = 0,
    .interp_threads_head = 8,
    .interp_modules = 40,
    .interp_gil_ptr = NO,
    .gil_last_holder = 8,
    .gil_locked = 16,
    .gil_size = 208,
    .ts_next = 8,
    .ts_interp = 16,
    .ts_frame = 24,
    .ts_cframe = NO,
    .cframe_current_frame = NO,
    .ts_root_cframe = NO,
    .ts_current_frame = NO,
    .ts_thread_id = 176,
    .ts_native_thread_id = NO,
    .fo_back = 24,
    .fo_code = 32,
    .fo_lasti = 104,
    .fo_localsplus = 360,
    .if_previous = NO,
    .if_code = NO,
    .if_instr = NO,
    .if_localsplus = NO,
    .if_owner = NO,
    .if_is_entry = NO,
    .if_size = NO,
    .owner_cstack = NO,
    .owner_generator = NO,
    .co_argcount = 16,
    .co_nlocals = 24,
    .co_flags = 32,
    .co_firstlineno = 36,
    .co_filename = 96,
    .co_name = 104,
    .co_qualname = NO,
    .co_linetable = 112,
    .co_varnames = 64,
    .co_cellvars = 80,
    .co_freevars = 72,
    .co_localsplusnames = NO,
    .co_localspluskinds = NO,
    .co_nlocalsplus = NO,
    .co_code_adaptive = NO,
    .co_size = 144,
    .ob_type = 8,
    .var_size = 16,
    .tp_name = 24,
    .tp_basicsize = 32,
    .tp_dictoffset = 288,
    .tp_flags = 168,
    .ht_cached_keys = 856,
    .tuple_item = 24,
    .list_item = 24,
    .bytes_sval = 32,
    .float_fval = 16,
    .long_digit = 24,
    .long_lv_tag = NO,
    .module_dict = 16,
    .unicode_length = 16,
    .unicode_state = 32,
    .unicode_ascii_size = 48,
    .unicode_compact_size = 72,
    .dict_used = 16,
    .dict_keys = 32,
    .dict_values = 40,
    .dk_size = 8,
    .dk_log2_size = NO,
    .dk_log2_index_bytes = NO,
    .dk_kind = NO,
    .dk_nentries = 32,
    .dk_indices = 40,
    .dict_values_values = 0,
};

/* pyenv 3.8.18 */
static const struct fp_layout layout_38 = {
    .major = 3,
    .minor = 8,
    .frame_model = FP_FRAMES_OBJECT,
    .linetable = FP_LINES_LNOTAB,
    .dict_model = FP_DICT_36,
    .instdict_model = FP_INSTDICT_OFFSET,
    .runtime_interpreters_head = 32,
    .runtime_gil = 1152,
    .interp_next = 0,
    .interp_threads_head = 8,
    .interp_modules = 56,
    .interp_gil_ptr = NO,
    .gil_last_holder = 8,
    .gil_locked = 16,
    .gil_size = 208,
    .ts_next = 8,
    .ts_interp = 16,
    .ts_frame = 24,
    .ts_cframe = NO,
    .cframe_current_frame = NO,
    .ts_root_cframe = NO,
    .ts_current_frame = NO,
    .ts_thread_id = 176,
    .ts_native_thread_id = NO,
    .fo_back = 24,
    .fo_code = 32,
    .fo_lasti = 104,
    .fo_localsplus = 360,
    .if_previous = NO,
    .if_code = NO,
    .if_instr = NO,
    .if_localsplus = NO,
    .if_owner = NO,
    .if_is_entry = NO,
    .if_size = NO,
    .owner_cstack = NO,
    .owner_generator = NO,
    .co_argcount = 16,
    .co_nlocals = 28,
    .co_flags = 36,
    .co_firstlineno = 40,
    .co_filename = 104,
    .co_name = 112,
    .co_qualname = NO,
    .co_linetable = 120,
    .co_varnames = 72,
    .co_cellvars = 88,
    .co_freevars = 80,
    .co_localsplusnames = NO,
    .co_localspluskinds = NO,
    .co_nlocalsplus = NO,
    .co_code_adaptive = NO,
    .co_size = 176,
    .ob_type = 8,
    .var_size = 16,
    .tp_name = 24,
    .tp_basicsize = 32,
    .tp_dictoffset = 288,
    .tp_flags = 168,
    .ht_cached_keys = 872,
    .tuple_item = 24,
    .list_item = 24,
    .bytes_sval = 32,
    .float_fval = 16,
    .long_digit = 24,
    .long_lv_tag = NO,
    .module_dict = 16,
    .unicode_length = 16,
    .unicode_state = 32,
    .unicode_ascii_size = 48,
    .unicode_compact_size = 72,
    .dict_used = 16,
    .dict_keys = 32,
    .dict_values = 40,
    .dk_size = 8,
    .dk_log2_size = NO,
    .dk_log2_index_bytes = NO,
    .dk_kind = NO,
    .dk_nentries = 32,
    .dk_indices = 40,
    .dict_values_values = 0,
};

/* pyenv 3.9.18 */
static const struct fp_layout layout_39 = {
    .major = 3,
    .minor = 9,
    .frame_model = FP_FRAMES_OBJECT,
    .linetable = FP_LINES_LNOTAB,
    .dict_model = FP_DICT_36,
    .instdict_model = FP_INSTDICT_OFFSET,
    .runtime_interpreters_head = 32,
    .runtime_gil = 352,
    .interp_next = 0,
    .interp_threads_head = 8,
    .interp_modules = 856,
    .interp_gil_ptr = NO,
    .gil_last_holder = 8,
    .gil_locked = 16,
    .gil_size = 208,
    .ts_next = 8,
    .ts_interp = 16,
    .ts_frame = 24,
    .ts_cframe = NO,
    .cframe_current_frame = NO,
    .ts_root_cframe = NO,
    .ts_current_frame = NO,
    .ts_thread_id = 176,
    .ts_native_thread_id = NO,
    .fo_back = 24,
    .fo_code = 32,
    .fo_lasti = 104,
    .fo_localsplus = 360,
    .if_previous = NO,
    .if_code = NO,
    .if_instr = NO,
    .if_localsplus = NO,
    .if_owner = NO,
    .if_is_entry = NO,
    .if_size = NO,
    .owner_cstack = NO,
    .owner_generator = NO,
    .co_argcount = 16,
    .co_nlocals = 28,
    .co_flags = 36,
    .co_firstlineno = 40,
    .co_filename = 104,
    .co_name = 112,
    .co_qualname = NO,
    .co_linetable = 120,
    .co_varnames = 72,
    .co_cellvars = 88,
    .co_freevars = 80,
    .co_localsplusnames = NO,
    .co_localspluskinds = NO,
    .co_nlocalsplus = NO,
    .co_code_adaptive = NO,
    .co_size = 176,
    .ob_type = 8,
    .var_size = 16,
    .tp_name = 24,
    .tp_basicsize = 32,
    .tp_dictoffset = 288,
    .tp_flags = 168,
    .ht_cached_keys = 864,
    .tuple_item = 24,
    .list_item = 24,
    .bytes_sval = 32,
    .float_fval = 16,
    .long_digit = 24,
    .long_lv_tag = NO,
    .module_dict = 16,
    .unicode_length = 16,
    .unicode_state = 32,
    .unicode_ascii_size = 48,
    .unicode_compact_size = 72,
    .dict_used = 16,
    .dict_keys = 32,
    .dict_values = 40,
    .dk_size = 8,
    .dk_log2_size = NO,
    .dk_log2_index_bytes = NO,
    .dk_kind = NO,
    .dk_nentries = 32,
    .dk_indices = 40,
    .dict_values_values = 0,
};

/* pyenv 3.10.13 */
static const struct fp_layout layout_310 = {
    .major = 3,
    .minor = 10,
    .frame_model = FP_FRAMES_OBJECT,
    .linetable = FP_LINES_310,
    .dict_model = FP_DICT_36,
    .instdict_model = FP_INSTDICT_OFFSET,
    .runtime_interpreters_head = 32,
    .runtime_gil = 352,
    .interp_next = 0,
    .interp_threads_head = 8,
    .interp_modules = 856,
    .interp_gil_ptr = NO,
    .gil_last_holder = 8,
    .gil_locked = 16,
    .gil_size = 208,
    .ts_next = 8,
    .ts_interp = 16,
    .ts_frame = 24,
    .ts_cframe = NO, /* 3.10's CFrame has no current_frame */
    .cframe_current_frame = NO,
    .ts_root_cframe = NO,
    .ts_current_frame = NO,
    .ts_thread_id = 176,
    .ts_native_thread_id = NO,
    .fo_back = 24,
    .fo_code = 32,
    .fo_lasti = 96, /* code units, not bytes (PEP 626) */
    .fo_localsplus = 352,
    .if_previous = NO,
    .if_code = NO,
    .if_instr = NO,
    .if_localsplus = NO,
    .if_owner = NO,
    .if_is_entry = NO,
    .if_size = NO,
    .owner_cstack = NO,
    .owner_generator = NO,
    .co_argcount = 16,
    .co_nlocals = 28,
    .co_flags = 36,
    .co_firstlineno = 40,
    .co_filename = 104,
    .co_name = 112,
    .co_qualname = NO,
    .co_linetable = 120,
    .co_varnames = 72,
    .co_cellvars = 88,
    .co_freevars = 80,
    .co_localsplusnames = NO,
    .co_localspluskinds = NO,
    .co_nlocalsplus = NO,
    .co_code_adaptive = NO,
    .co_size = 176,
    .ob_type = 8,
    .var_size = 16,
    .tp_name = 24,
    .tp_basicsize = 32,
    .tp_dictoffset = 288,
    .tp_flags = 168,
    .ht_cached_keys = 872,
    .tuple_item = 24,
    .list_item = 24,
    .bytes_sval = 32,
    .float_fval = 16,
    .long_digit = 24,
    .long_lv_tag = NO,
    .module_dict = 16,
    .unicode_length = 16,
    .unicode_state = 32,
    .unicode_ascii_size = 48,
    .unicode_compact_size = 72,
    .dict_used = 16,
    .dict_keys = 32,
    .dict_values = 40,
    .dk_size = 8,
    .dk_log2_size = NO,
    .dk_log2_index_bytes = NO,
    .dk_kind = NO,
    .dk_nentries = 32,
    .dk_indices = 40,
    .dict_values_values = 0,
};

/* pyenv 3.11.7 */
static const struct fp_layout layout_311 = {
    .major = 3,
    .minor = 11,
    .frame_model = FP_FRAMES_CFRAME,
    .linetable = FP_LINES_311,
    .dict_model = FP_DICT_311,
    .instdict_model = FP_INSTDICT_311,
    .runtime_interpreters_head = 40,
    .runtime_gil = 360,
    .interp_next = 0,
    .interp_threads_head = 16,
    .interp_modules = 888,
    .interp_gil_ptr = NO,
    .gil_last_holder = 8,
    .gil_locked = 16,
    .gil_size = 208,
    .ts_next = 8,
    .ts_interp = 16,
    .ts_frame = NO,
    .ts_cframe = 56,
    .cframe_current_frame = 8, /* after int use_tracing */
    .ts_root_cframe = 336,
    .ts_current_frame = NO,
    .ts_thread_id = 152,
    .ts_native_thread_id = 160,
    .fo_back = NO,
    .fo_code = NO,
    .fo_lasti = NO,
    .fo_localsplus = NO,
    .if_previous = 48,
    .if_code = 32,
    .if_instr = 56, /* prev_instr: last started instruction */
    .if_localsplus = 72,
    .if_owner = 69, /* no FRAME_OWNED_BY_CSTACK: is_entry */
    .if_is_entry = 68,
    .if_size = 72, /* offsetof(localsplus) */
    .owner_cstack = NO,
    .owner_generator = 1,
    .co_argcount = 56,
    .co_nlocals = 80,
    .co_flags = 48,
    .co_firstlineno = 72,
    .co_filename = 112,
    .co_name = 120,
    .co_qualname = 128,
    .co_linetable = 136,
    .co_varnames = NO,
    .co_cellvars = NO,
    .co_freevars = NO,
    .co_localsplusnames = 96,
    .co_localspluskinds = 104,
    .co_nlocalsplus = 76,
    .co_code_adaptive = 184,
    .co_size = 184, /* offsetof(co_code_adaptive) */
    .ob_type = 8,
    .var_size = 16,
    .tp_name = 24,
    .tp_basicsize = 32,
    .tp_dictoffset = 288,
    .tp_flags = 168,
    .ht_cached_keys = 872,
    .tuple_item = 24,
    .list_item = 24,
    .bytes_sval = 32,
    .float_fval = 16,
    .long_digit = 24,
    .long_lv_tag = NO,
    .module_dict = 16,
    .unicode_length = 16,
    .unicode_state = 32,
    .unicode_ascii_size = 48,
    .unicode_compact_size = 72,
    .dict_used = 16,
    .dict_keys = 32,
    .dict_values = 40,
    .dk_size = NO,
    .dk_log2_size = 8,
    .dk_log2_index_bytes = 9,
    .dk_kind = 10,
    .dk_nentries = 24,
    .dk_indices = 32,
    .dict_values_values = 0,
};

/* pyenv 3.12.1 */
static const struct fp_layout layout_312 = {
    .major = 3,
    .minor = 12,
    .frame_model = FP_FRAMES_CFRAME,
    .linetable = FP_LINES_311,
    .dict_model = FP_DICT_311,
    .instdict_model = FP_INSTDICT_312,
    .runtime_interpreters_head = 40,
    .runtime_gil = NO, /* per interpreter since 3.12 */
    .interp_next = 0,
    .interp_threads_head = 72,
    .interp_modules = 944,
    .interp_gil_ptr = 384, /* interp->ceval.gil -> interp->_gil */
    .gil_last_holder = 8,
    .gil_locked = 16,
    .gil_size = 208,
    .ts_next = 8,
    .ts_interp = 16,
    .ts_frame = NO,
    .ts_cframe = 56,
    .cframe_current_frame = 0, /* use_tracing is gone */
    .ts_root_cframe = 272,
    .ts_current_frame = NO,
    .ts_thread_id = 136,
    .ts_native_thread_id = 144,
    .fo_back = NO,
    .fo_code = NO,
    .fo_lasti = NO,
    .fo_localsplus = NO,
    .if_previous = 8,
    .if_code = 0,
    .if_instr = 56,
    .if_localsplus = 72,
    .if_owner = 70,
    .if_is_entry = NO,
    .if_size = 72,
    .owner_cstack = 3,
    .owner_generator = 1,
    .co_argcount = 52,
    .co_nlocals = 80,
    .co_flags = 48,
    .co_firstlineno = 68,
    .co_filename = 112,
    .co_name = 120,
    .co_qualname = 128,
    .co_linetable = 136,
    .co_varnames = NO,
    .co_cellvars = NO,
    .co_freevars = NO,
    .co_localsplusnames = 96,
    .co_localspluskinds = 104,
    .co_nlocalsplus = 72,
    .co_code_adaptive = 192,
    .co_size = 192,
    .ob_type = 8,
    .var_size = 16,
    .tp_name = 24,
    .tp_basicsize = 32,
    .tp_dictoffset = 288,
    .tp_flags = 168,
    .ht_cached_keys = 880,
    .tuple_item = 24,
    .list_item = 24,
    .bytes_sval = 32,
    .float_fval = 16,
    .long_digit = 24,
    .long_lv_tag = 16,
    .module_dict = 16,
    .unicode_length = 16,
    .unicode_state = 32,
    .unicode_ascii_size = 40,
    .unicode_compact_size = 56,
    .dict_used = 16,
    .dict_keys = 32,
    .dict_values = 40,
    .dk_size = NO,
    .dk_log2_size = 8,
    .dk_log2_index_bytes = 9,
    .dk_kind = 10,
    .dk_nentries = 24,
    .dk_indices = 32,
    .dict_values_values = 0,
};
/*
 * 3.13: what _Py_DebugOffsets does not describe, from the DWARF of pyenv
 * 3.13.0 (same tool).  These are public object layouts, frozen for the minor
 * version, plus the enum-like models; every other field comes from the target.
 */
static const struct fp_layout supplement_313 = {
    .frame_model = FP_FRAMES_CURRENT,
    .linetable = FP_LINES_311,
    .dict_model = FP_DICT_311,
    .instdict_model = FP_INSTDICT_313,
    .runtime_gil = NO,
    .gil_size = 208,
    .ts_frame = NO,
    .ts_cframe = NO,
    .cframe_current_frame = NO,
    .ts_root_cframe = NO,
    .fo_back = NO,
    .fo_code = NO,
    .fo_lasti = NO,
    .fo_localsplus = NO,
    .if_is_entry = NO,
    .owner_cstack = 3,
    .owner_generator = 1,
    .co_nlocals = 80,
    .co_flags = 48,
    .co_varnames = NO,
    .co_cellvars = NO,
    .co_freevars = NO,
    .co_nlocalsplus = 72,
    .tp_basicsize = 32,
    .tp_dictoffset = 288,
    .ht_cached_keys = 880,
    .module_dict = 16,
    .unicode_compact_size = 56,
    .dict_used = 16,
    .dk_size = NO,
    .dk_log2_size = 8,
    .dk_log2_index_bytes = 9,
    .dk_kind = 10,
    .dk_nentries = 24,
    .dk_indices = 32,
    .dict_values_values = 8, /* after capacity, size, embedded, valid */
};

const struct fp_layout *fp_layout_for(int major, int minor)
{
	static const struct fp_layout *const tables[] = {
	    &layout_36, &layout_37, &layout_38, &layout_39, &layout_310, &layout_311, &layout_312,
	};
	if (major != 3 || minor < 6 || minor - 6 >= (int)(sizeof(tables) / sizeof(tables[0])))
		return NULL;
	return tables[minor - 6];
}

/*
 * Byte positions inside struct _Py_DebugOffsets of 3.13 (`ptype/o struct
 * _Py_DebugOffsets` on pyenv 3.13.0): every member is a uint64_t, each group
 * starts with the sizeof of the structure it describes.
 */
enum {
	DBG_VERSION = 8,
	DBG_FREE_THREADED = 16,
	DBG_RUNTIME = 24,
	DBG_INTERP = 48,
	DBG_TSTATE = 152,
	DBG_FRAME = 224,
	DBG_CODE = 272,
	DBG_OBJECT = 352,
	DBG_TYPE = 368,
	DBG_TUPLE = 400,
	DBG_LIST = 424,
	DBG_DICT = 448,
	DBG_FLOAT = 472,
	DBG_LONG = 488,
	DBG_BYTES = 512,
	DBG_UNICODE = 536,
	DBG_END_313 = 584,
};

/* One offset of _Py_DebugOffsets: where it is, the size of its group, where it goes. */
struct dbg_field {
	uint16_t at;
	uint16_t group;
	uint16_t dst;
};

#define DBG(group, index, field)                                                                   \
	{                                                                                          \
		(group) + 8 * (index), (group), offsetof(struct fp_layout, field)                  \
	}

static const struct dbg_field dbg_fields_313[] = {
    DBG(DBG_RUNTIME, 2, runtime_interpreters_head),
    DBG(DBG_INTERP, 2, interp_next),
    DBG(DBG_INTERP, 3, interp_threads_head),
    DBG(DBG_INTERP, 5, interp_modules),
    DBG(DBG_INTERP, 8, interp_gil_ptr),
    DBG(DBG_TSTATE, 2, ts_next),
    DBG(DBG_TSTATE, 3, ts_interp),
    DBG(DBG_TSTATE, 4, ts_current_frame),
    DBG(DBG_TSTATE, 5, ts_thread_id),
    DBG(DBG_TSTATE, 6, ts_native_thread_id),
    DBG(DBG_FRAME, 1, if_previous),
    DBG(DBG_FRAME, 2, if_code),
    DBG(DBG_FRAME, 3, if_instr),
    DBG(DBG_FRAME, 4, if_localsplus),
    DBG(DBG_FRAME, 4, if_size),
    DBG(DBG_FRAME, 5, if_owner),
    DBG(DBG_CODE, 1, co_filename),
    DBG(DBG_CODE, 2, co_name),
    DBG(DBG_CODE, 3, co_qualname),
    DBG(DBG_CODE, 4, co_linetable),
    DBG(DBG_CODE, 5, co_firstlineno),
    DBG(DBG_CODE, 6, co_argcount),
    DBG(DBG_CODE, 7, co_localsplusnames),
    DBG(DBG_CODE, 8, co_localspluskinds),
    DBG(DBG_CODE, 9, co_code_adaptive),
    DBG(DBG_CODE, 9, co_size),
    DBG(DBG_OBJECT, 1, ob_type),
    DBG(DBG_TYPE, 1, tp_name),
    DBG(DBG_TYPE, 3, tp_flags),
    DBG(DBG_TUPLE, 1, tuple_item),
    DBG(DBG_TUPLE, 2, var_size),
    DBG(DBG_LIST, 1, list_item),
    DBG(DBG_DICT, 1, dict_keys),
    DBG(DBG_DICT, 2, dict_values),
    DBG(DBG_FLOAT, 1, float_fval),
    DBG(DBG_LONG, 1, long_lv_tag),
    DBG(DBG_LONG, 2, long_digit),
    DBG(DBG_BYTES, 2, bytes_sval),
    DBG(DBG_UNICODE, 1, unicode_state),
    DBG(DBG_UNICODE, 2, unicode_length),
    DBG(DBG_UNICODE, 3, unicode_ascii_size),
};

/* Largest structure we believe: PyInterpreterState of 3.13.0 is 194968 bytes. */
#define DBG_MAX_STRUCT (1u << 22)

static uint64_t dbg_u64(const unsigned char *buf, unsigned at)
{
	uint64_t v;
	memcpy(&v, buf + at, sizeof(v));
	return v;
}

static int fail(char *err, unsigned long errlen, const char *what)
{
	if (errlen)
		snprintf(err, errlen, "%s", what);
	return -1;
}

int fp_layout_from_debug_offsets(const void *buf, unsigned long len, struct fp_layout *out,
				 char *err, unsigned long errlen)
{
	const unsigned char *b = buf;
	char msg[160];

	if (len < DBG_END_313)
		return fail(err, errlen, "_Py_DebugOffsets truncated");
	if (memcmp(b, "xdebugpy", 8) != 0)
		return fail(err, errlen,
			    "_PyRuntime does not start with the _Py_DebugOffsets "
			    "cookie \"xdebugpy\"");
	uint64_t hex = dbg_u64(b, DBG_VERSION);
	unsigned major = (unsigned)(hex >> 24), minor = (unsigned)(hex >> 16) & 0xff;
	unsigned level = (unsigned)(hex >> 4) & 0xf;
	if (major != 3 || minor < 13) {
		snprintf(msg, sizeof(msg), "_Py_DebugOffsets names version 0x%llx, not 3.13+",
			 (unsigned long long)hex);
		return fail(err, errlen, msg);
	}
	if (minor >= 14) {
		snprintf(msg, sizeof(msg),
			 "Python 3.%u lays out _Py_DebugOffsets differently from 3.13; fpd reads "
			 "only the 3.13 layout so far",
			 minor);
		return fail(err, errlen, msg);
	}
	/* Alphas and betas predate the final 3.13 layout; candidates and releases have it. */
	if (level < 0xc) {
		snprintf(msg, sizeof(msg),
			 "Python 3.13 pre-release 0x%llx: its _Py_DebugOffsets may differ from "
			 "3.13.0's; use a 3.13 release",
			 (unsigned long long)hex);
		return fail(err, errlen, msg);
	}
	if (dbg_u64(b, DBG_FREE_THREADED))
		return fail(err, errlen,
			    "free-threaded (3.13t) builds are not supported: their "
			    "object header differs");

	struct fp_layout l = supplement_313;
	l.major = 3;
	l.minor = (int)minor;
	for (size_t i = 0; i < sizeof(dbg_fields_313) / sizeof(dbg_fields_313[0]); i++) {
		const struct dbg_field *f = &dbg_fields_313[i];
		uint64_t size = dbg_u64(b, f->group), v = dbg_u64(b, f->at);
		/* A size may equal the struct's size (asciiobject_size); an offset may not. */
		if (size > DBG_MAX_STRUCT || v > size) {
			snprintf(msg, sizeof(msg),
				 "_Py_DebugOffsets: implausible value %llu at byte %u (structure "
				 "size %llu)",
				 (unsigned long long)v, f->at, (unsigned long long)size);
			return fail(err, errlen, msg);
		}
		int32_t v32 = (int32_t)v;
		memcpy((char *)&l + f->dst, &v32, sizeof(v32));
	}
	/* The GIL's members are given relative to PyInterpreterState, we want them in the GIL. */
	uint64_t isize = dbg_u64(b, DBG_INTERP), gil = dbg_u64(b, DBG_INTERP + 8 * 9),
		 locked = dbg_u64(b, DBG_INTERP + 8 * 11), holder = dbg_u64(b, DBG_INTERP + 8 * 12);
	if (gil >= isize || locked < gil || holder < gil || locked - gil >= (uint64_t)l.gil_size ||
	    holder - gil >= (uint64_t)l.gil_size)
		return fail(err, errlen, "_Py_DebugOffsets: the GIL's offsets are inconsistent");
	l.gil_locked = (int32_t)(locked - gil);
	l.gil_last_holder = (int32_t)(holder - gil);
	*out = l;
	return 0;
}

/* Every member of struct fp_layout, in order: the names `fpd --layout` prints. */
#define FP_LAYOUT_FIELDS(X)                                                                        \
	X(major)                                                                                   \
	X(minor)                                                                                   \
	X(frame_model)                                                                             \
	X(linetable)                                                                               \
	X(dict_model)                                                                              \
	X(instdict_model)                                                                          \
	X(runtime_interpreters_head)                                                               \
	X(runtime_gil)                                                                             \
	X(interp_next)                                                                             \
	X(interp_threads_head)                                                                     \
	X(interp_modules)                                                                          \
	X(interp_gil_ptr)                                                                          \
	X(gil_last_holder)                                                                         \
	X(gil_locked)                                                                              \
	X(gil_size)                                                                                \
	X(ts_next)                                                                                 \
	X(ts_interp)                                                                               \
	X(ts_frame)                                                                                \
	X(ts_cframe)                                                                               \
	X(cframe_current_frame)                                                                    \
	X(ts_root_cframe)                                                                          \
	X(ts_current_frame)                                                                        \
	X(ts_thread_id)                                                                            \
	X(ts_native_thread_id)                                                                     \
	X(fo_back)                                                                                 \
	X(fo_code)                                                                                 \
	X(fo_lasti)                                                                                \
	X(fo_localsplus)                                                                           \
	X(if_previous)                                                                             \
	X(if_code)                                                                                 \
	X(if_instr)                                                                                \
	X(if_localsplus)                                                                           \
	X(if_owner)                                                                                \
	X(if_is_entry)                                                                             \
	X(if_size)                                                                                 \
	X(owner_cstack)                                                                            \
	X(owner_generator)                                                                         \
	X(co_argcount)                                                                             \
	X(co_nlocals)                                                                              \
	X(co_flags)                                                                                \
	X(co_firstlineno)                                                                          \
	X(co_filename)                                                                             \
	X(co_name)                                                                                 \
	X(co_qualname)                                                                             \
	X(co_linetable)                                                                            \
	X(co_varnames)                                                                             \
	X(co_cellvars)                                                                             \
	X(co_freevars)                                                                             \
	X(co_localsplusnames)                                                                      \
	X(co_localspluskinds)                                                                      \
	X(co_nlocalsplus)                                                                          \
	X(co_code_adaptive)                                                                        \
	X(co_size)                                                                                 \
	X(ob_type)                                                                                 \
	X(var_size)                                                                                \
	X(tp_name)                                                                                 \
	X(tp_basicsize)                                                                            \
	X(tp_dictoffset)                                                                           \
	X(tp_flags)                                                                                \
	X(ht_cached_keys)                                                                          \
	X(tuple_item)                                                                              \
	X(list_item)                                                                               \
	X(bytes_sval)                                                                              \
	X(float_fval)                                                                              \
	X(long_digit)                                                                              \
	X(long_lv_tag)                                                                             \
	X(module_dict)                                                                             \
	X(unicode_length)                                                                          \
	X(unicode_state)                                                                           \
	X(unicode_ascii_size)                                                                      \
	X(unicode_compact_size)                                                                    \
	X(dict_used)                                                                               \
	X(dict_keys)                                                                               \
	X(dict_values)                                                                             \
	X(dk_size)                                                                                 \
	X(dk_log2_size)                                                                            \
	X(dk_log2_index_bytes)                                                                     \
	X(dk_kind)                                                                                 \
	X(dk_nentries)                                                                             \
	X(dk_indices)                                                                              \
	X(dict_values_values)

/* All members are 4-byte ints or enums: a member missing from the list changes the count. */
#define COUNT_FIELD(name) +1
_Static_assert(sizeof(struct fp_layout) == (0 FP_LAYOUT_FIELDS(COUNT_FIELD)) * sizeof(int32_t),
	       "FP_LAYOUT_FIELDS must list every member of struct fp_layout");

json_t *fp_layout_json(const struct fp_layout *l)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
#define SET_FIELD(name)                                                                            \
	if (json_object_set_new(o, #name, json_integer((json_int_t)l->name))) {                    \
		json_decref(o);                                                                    \
		return NULL;                                                                       \
	}
	FP_LAYOUT_FIELDS(SET_FIELD)
#undef SET_FIELD
	return o;
}
