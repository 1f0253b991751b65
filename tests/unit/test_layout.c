/*
 * The layout tables: internal consistency of every static table, the JSON
 * dump, and fp_layout_from_debug_offsets on a crafted 3.13 _PyRuntime.
 * (That the numbers match the interpreters is tests/integration/test_layout.py.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "fp/layout.h"

#define NO FP_NO_FIELD

static const struct fp_layout *table(int minor)
{
	const struct fp_layout *l = fp_layout_for(3, minor);
	assert_non_null(l);
	assert_int_equal(l->major, 3);
	assert_int_equal(l->minor, minor);
	return l;
}

static void test_known_versions_only(void **state)
{
	(void)state;
	for (int minor = 6; minor <= 12; minor++)
		table(minor);
	assert_null(fp_layout_for(3, 5));
	assert_null(fp_layout_for(3, 13)); /* from _Py_DebugOffsets only */
	assert_null(fp_layout_for(2, 7));
	assert_null(fp_layout_for(4, 0));
	assert_null(fp_layout_for(3, -1));
}

/* A field read as a `width`-byte value at `off` must lie inside the first `size` bytes. */
static void assert_inside(int32_t off, int width, int32_t size)
{
	assert_true(off >= 0);
	assert_true(off + width <= size);
}

/* Everything the reader of each version's frame model and line table needs. */
static void check_table(const struct fp_layout *l)
{
	const int32_t *f = (const int32_t *)l;
	for (size_t i = 0; i < sizeof(*l) / sizeof(int32_t); i++)
		assert_true(f[i] >= NO);

	int minor = l->minor;
	assert_true(l->runtime_interpreters_head >= 0);
	assert_true(l->interp_threads_head >= 0 && l->interp_modules >= 0);
	assert_true(l->ts_next >= 0 && l->ts_interp >= 0 && l->ts_thread_id >= 0);
	assert_true((l->ts_native_thread_id >= 0) == (minor >= 11));

	switch (l->frame_model) {
	case FP_FRAMES_OBJECT:
		assert_true(minor <= 10);
		assert_true(l->ts_frame >= 0 && l->fo_back >= 0 && l->fo_code >= 0);
		assert_true(l->fo_lasti >= 0 && l->fo_localsplus >= 0);
		assert_int_equal(l->if_previous, NO);
		break;
	case FP_FRAMES_CFRAME:
		assert_true(minor == 11 || minor == 12);
		assert_true(l->ts_cframe >= 0 && l->cframe_current_frame >= 0);
		assert_int_equal(l->ts_frame, NO);
		break;
	case FP_FRAMES_CURRENT:
		assert_true(minor >= 13);
		assert_true(l->ts_current_frame >= 0);
		break;
	default:
		fail_msg("3.%d: no frame model", minor);
	}
	if (l->frame_model != FP_FRAMES_OBJECT) {
		assert_inside(l->if_previous, 8, l->if_size);
		assert_inside(l->if_code, 8, l->if_size);
		assert_inside(l->if_instr, 8, l->if_size);
		assert_inside(l->if_owner, 1, l->if_size);
		assert_int_equal(l->if_localsplus, l->if_size);
		/* 3.11 marks C-called frames with is_entry, later versions with an owner */
		assert_true((l->if_is_entry >= 0) == (minor == 11));
		assert_true((l->owner_cstack >= 0) == (minor >= 12));
		assert_true(l->owner_generator >= 0);
		assert_inside(l->co_qualname, 8, l->co_size);
		assert_inside(l->co_localsplusnames, 8, l->co_size);
		assert_int_equal(l->co_code_adaptive, l->co_size);
	} else {
		assert_inside(l->co_varnames, 8, l->co_size);
		assert_inside(l->co_nlocals, 4, l->co_size);
	}
	assert_inside(l->co_flags, 4, l->co_size);
	assert_inside(l->co_filename, 8, l->co_size);
	assert_inside(l->co_name, 8, l->co_size);
	assert_inside(l->co_linetable, 8, l->co_size);
	assert_inside(l->co_firstlineno, 4, l->co_size);
	assert_inside(l->co_argcount, 4, l->co_size);

	enum fp_linetable_kind lines = minor <= 9    ? FP_LINES_LNOTAB
				       : minor == 10 ? FP_LINES_310
						     : FP_LINES_311;
	assert_int_equal(l->linetable, lines);

	if (l->dict_model == FP_DICT_36) {
		assert_true(minor <= 10);
		assert_true(l->dk_size >= 0 && l->dk_log2_size == NO && l->dk_kind == NO);
	} else {
		assert_int_equal(l->dict_model, FP_DICT_311);
		assert_true(l->dk_size == NO && l->dk_log2_size >= 0 && l->dk_kind >= 0);
		assert_true(l->dk_log2_index_bytes >= 0);
	}
	assert_true(l->dk_nentries >= 0 && l->dk_indices > l->dk_nentries);
	assert_int_equal(l->instdict_model, minor <= 10	  ? FP_INSTDICT_OFFSET
					    : minor == 11 ? FP_INSTDICT_311
					    : minor == 12 ? FP_INSTDICT_312
							  : FP_INSTDICT_313);

	/* The GIL: static variables on 3.6, in _PyRuntime up to 3.11, per interpreter after. */
	if (minor == 6) {
		assert_int_equal(l->runtime_gil, NO);
		assert_int_equal(l->gil_last_holder, NO);
	} else {
		assert_true((l->runtime_gil >= 0) == (minor <= 11));
		assert_true((l->interp_gil_ptr >= 0) == (minor >= 12));
		assert_inside(l->gil_last_holder, 8, l->gil_size);
		assert_inside(l->gil_locked, 4, l->gil_size);
	}
	assert_true((l->long_lv_tag >= 0) == (minor >= 12));
	assert_true(l->unicode_compact_size > l->unicode_ascii_size);
	assert_inside(l->unicode_state, 4, l->unicode_ascii_size);
	assert_inside(l->unicode_length, 8, l->unicode_ascii_size);
}

static void test_tables_are_consistent(void **state)
{
	(void)state;
	for (int minor = 6; minor <= 12; minor++)
		check_table(table(minor));
}

static void test_json_has_every_field(void **state)
{
	(void)state;
	const struct fp_layout *l = table(12);
	json_t *j = fp_layout_json(l);
	assert_non_null(j);
	assert_int_equal(json_object_size(j), sizeof(*l) / sizeof(int32_t));
	assert_int_equal(json_integer_value(json_object_get(j, "minor")), 12);
	assert_int_equal(json_integer_value(json_object_get(j, "frame_model")), FP_FRAMES_CFRAME);
	assert_int_equal(json_integer_value(json_object_get(j, "ts_native_thread_id")),
			 l->ts_native_thread_id);
	assert_int_equal(json_integer_value(json_object_get(j, "dict_values_values")), 0);
	assert_int_equal(json_integer_value(json_object_get(j, "runtime_gil")), NO);
	json_decref(j);
}

/*
 * _PyRuntime.debug_offsets of pyenv 3.13.0, every uint64_t after the cookie
 * in order (`gdb -batch -ex 'p/d _PyRuntime.debug_offsets' libpython3.13.so`).
 */
static const uint64_t debug_offsets_3130[] = {
    0x030d00f0, 0,	   /* version, free_threaded */
    283320,	608,  632, /* runtime_state */
    194968,	7272, 7264, 7344, 7400, 7656, 7640, 7648, 16,  7752, 0, 7768, 7760, /* interp */
    304,	0,    8,    16,	  72,	152,  160,  232,  32,	    /* thread_state */
    80,		8,    0,    56,	  72,	70,			    /* interpreter_frame */
    208,	112,  120,  128,  136,	68,   52,   96,	  104, 200, /* code_object */
    16,		8,						    /* pyobject */
    416,	24,   88,   168,				    /* type_object */
    32,		24,   16,					    /* tuple_object */
    40,		24,   16,					    /* list_object */
    48,		32,   40,					    /* dict_object */
    24,		16,						    /* float_object */
    32,		16,   24,					    /* long_object */
    40,		16,   32,					    /* bytes_object */
    64,		32,   16,   40,					    /* unicode_object */
    240,	200,						    /* gc */
};

/* tools/layout_from_dwarf.py on pyenv 3.13.0's libpython. */
static const struct fp_layout expected_313 = {
    .major = 3,
    .minor = 13,
    .frame_model = FP_FRAMES_CURRENT,
    .linetable = FP_LINES_311,
    .dict_model = FP_DICT_311,
    .instdict_model = FP_INSTDICT_313,
    .runtime_interpreters_head = 632,
    .runtime_gil = NO,
    .interp_next = 7264,
    .interp_threads_head = 7344,
    .interp_modules = 7656,
    .interp_gil_ptr = 16,
    .gil_last_holder = 8,
    .gil_locked = 16,
    .gil_size = 208,
    .ts_next = 8,
    .ts_interp = 16,
    .ts_frame = NO,
    .ts_cframe = NO,
    .cframe_current_frame = NO,
    .ts_root_cframe = NO,
    .ts_current_frame = 72,
    .ts_thread_id = 152,
    .ts_native_thread_id = 160,
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
    .co_code_adaptive = 200,
    .co_size = 200,
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
    .dict_values_values = 8,
};

static uint8_t runtime[FP_DEBUG_OFFSETS_SIZE];

static void craft(void)
{
	memset(runtime, 0xaa, sizeof(runtime));
	memcpy(runtime, "xdebugpy", 8);
	memcpy(runtime + 8, debug_offsets_3130, sizeof(debug_offsets_3130));
}

static void put(size_t at, uint64_t v)
{
	memcpy(runtime + at, &v, sizeof(v));
}

static int build(struct fp_layout *l, char *err, size_t errlen)
{
	return fp_layout_from_debug_offsets(runtime, sizeof(runtime), l, err, errlen);
}

static void test_debug_offsets_313(void **state)
{
	(void)state;
	struct fp_layout l;
	char err[256] = "";
	craft();
	memset(&l, 0x55, sizeof(l));
	assert_int_equal(build(&l, err, sizeof(err)), 0);
	const int32_t *got = (const int32_t *)&l, *want = (const int32_t *)&expected_313;
	for (size_t i = 0; i < sizeof(l) / sizeof(int32_t); i++)
		if (got[i] != want[i])
			fail_msg("field %zu: %d, expected %d", i, got[i], want[i]);
	check_table(&l);

	put(8, 0x030d05c1); /* 3.13.5rc1 */
	assert_int_equal(build(&l, err, sizeof(err)), 0);
	assert_int_equal(l.minor, 13);
}

static void assert_rejected(const char *why)
{
	struct fp_layout l;
	char err[256] = "";
	assert_int_equal(build(&l, err, sizeof(err)), -1);
	if (!strstr(err, why))
		fail_msg("error '%s' does not mention '%s'", err, why);
}

static void test_debug_offsets_rejected(void **state)
{
	(void)state;
	craft();
	runtime[0] = 'X';
	assert_rejected("xdebugpy");

	craft();
	put(8, 0x030e00f0);
	assert_rejected("3.14");

	craft();
	put(8, 0x030d00b1); /* 3.13.0b1 */
	assert_rejected("pre-release");

	craft();
	put(8, 0x030c01f0);
	assert_rejected("not 3.13");

	craft();
	put(16, 1);
	assert_rejected("free-threaded");

	craft();
	put(8 + 8 * 22, 1u << 30); /* thread_state.current_frame */
	assert_rejected("implausible");

	craft();
	put(8 + 8 * 16, 7700); /* gil_runtime_state_locked before the GIL itself */
	assert_rejected("GIL");

	struct fp_layout l;
	char err[64];
	craft();
	assert_int_equal(fp_layout_from_debug_offsets(runtime, 100, &l, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "truncated"));
	/* a short error buffer is filled, truncated and terminated */
	runtime[0] = 'X';
	char tiny[8];
	assert_int_equal(fp_layout_from_debug_offsets(runtime, sizeof(runtime), &l, tiny, 8), -1);
	assert_int_equal(strlen(tiny), 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_known_versions_only),
	    cmocka_unit_test(test_tables_are_consistent),
	    cmocka_unit_test(test_json_has_every_field),
	    cmocka_unit_test(test_debug_offsets_313),
	    cmocka_unit_test(test_debug_offsets_rejected),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
