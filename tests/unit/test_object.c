/*
 * Remote object readers over forged address spaces: every test builds the
 * objects with the layout of each CPython version (3.6-3.12 from the static
 * tables, 3.13 from real _Py_DebugOffsets) and reads them back through
 * fp_mem_buf, then breaks them to check that bad input fails cleanly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/py/object.h"
#include "tests/fuzz/py313_debug_offsets.h"

#define BASE	 0x100000ULL
#define IMG_SIZE (1 << 20)

#define TPF_INLINE_VALUES (1ULL << 2)
#define TPF_MANAGED_DICT  (1ULL << 4)
#define TPF_HEAPTYPE	  (1ULL << 9)
#define TPF_LONG	  (1ULL << 24)
#define TPF_LIST	  (1ULL << 25)
#define TPF_TUPLE	  (1ULL << 26)
#define TPF_BYTES	  (1ULL << 27)
#define TPF_UNICODE	  (1ULL << 28)
#define TPF_DICT	  (1ULL << 29)

/* One address space: a single region at BASE, filled by a bump allocator. */
struct img {
	const struct fp_layout *l;
	struct fp_layout l313;
	uint8_t *mem;
	size_t used;
	struct fp_mem_region region;
	struct fp_mem_buf buf;
	struct fp_mem m;
	struct fp_pyctx c;
	uint64_t t_str, t_bytes, t_int, t_bool, t_float, t_none, t_tuple, t_list, t_dict, t_module,
	    t_obj;
	uint64_t none;
};

static uint64_t alloc(struct img *im, size_t n)
{
	size_t off = (im->used + 15) & ~(size_t)15;
	assert_true(off + n <= IMG_SIZE);
	im->used = off + n;
	return BASE + off;
}

static uint8_t *ptr(struct img *im, uint64_t addr)
{
	assert_true(addr >= BASE && addr - BASE < IMG_SIZE);
	return im->mem + (addr - BASE);
}

static void put(struct img *im, uint64_t addr, const void *v, size_t n)
{
	memcpy(ptr(im, addr), v, n);
}

static void put64(struct img *im, uint64_t addr, uint64_t v)
{
	put(im, addr, &v, 8);
}

static void put32(struct img *im, uint64_t addr, uint32_t v)
{
	put(im, addr, &v, 4);
}

static void put8(struct img *im, uint64_t addr, uint8_t v)
{
	put(im, addr, &v, 1);
}

static uint64_t cstr(struct img *im, const char *s)
{
	uint64_t a = alloc(im, strlen(s) + 1);
	put(im, a, s, strlen(s) + 1);
	return a;
}

/* A heap type object, big enough for every PyHeapTypeObject field we read. */
static uint64_t mk_type(struct img *im, const char *name, uint64_t flags, int64_t basicsize,
			int64_t dictoffset)
{
	const struct fp_layout *l = im->l;
	uint64_t t = alloc(im, 1024);
	put64(im, t, 1);
	put64(im, t + (uint64_t)l->tp_name, cstr(im, name));
	put64(im, t + (uint64_t)l->tp_flags, flags);
	put64(im, t + (uint64_t)l->tp_basicsize, (uint64_t)basicsize);
	put64(im, t + (uint64_t)l->tp_dictoffset, (uint64_t)dictoffset);
	return t;
}

static uint64_t mk_obj(struct img *im, uint64_t type, size_t size)
{
	uint64_t o = alloc(im, size < 16 ? 16 : size);
	put64(im, o, 1);
	put64(im, o + (uint64_t)im->l->ob_type, type);
	return o;
}

static uint64_t mk_ascii(struct img *im, const char *s)
{
	const struct fp_layout *l = im->l;
	size_t n = strlen(s);
	uint64_t o = mk_obj(im, im->t_str, (size_t)l->unicode_ascii_size + n + 1);
	put64(im, o + (uint64_t)l->unicode_length, n);
	put32(im, o + (uint64_t)l->unicode_state, 1u << 2 | 1u << 5 | 1u << 6);
	put(im, o + (uint64_t)l->unicode_ascii_size, s, n + 1);
	return o;
}

/* A compact non-ASCII str of kind 1, 2 or 4. */
static uint64_t mk_ustr(struct img *im, unsigned kind, const uint32_t *cps, size_t n)
{
	const struct fp_layout *l = im->l;
	uint64_t o = mk_obj(im, im->t_str, (size_t)l->unicode_compact_size + (n + 1) * kind);
	put64(im, o + (uint64_t)l->unicode_length, n);
	put32(im, o + (uint64_t)l->unicode_state, kind << 2 | 1u << 5);
	for (size_t i = 0; i < n; i++) {
		uint64_t a = o + (uint64_t)l->unicode_compact_size + i * kind;
		if (kind == 1)
			put8(im, a, (uint8_t)cps[i]);
		else if (kind == 2)
			put(im, a, &(uint16_t){(uint16_t)cps[i]}, 2);
		else
			put32(im, a, cps[i]);
	}
	return o;
}

/* An int from its sign and 30-bit digits, in the encoding of the layout. */
static uint64_t mk_long_digits(struct img *im, uint64_t type, int sign, const uint32_t *d,
			       size_t nd)
{
	const struct fp_layout *l = im->l;
	uint64_t o = mk_obj(im, type, (size_t)l->long_digit + 4 * (nd ? nd : 1));
	if (l->long_lv_tag != FP_NO_FIELD)
		put64(im, o + (uint64_t)l->long_lv_tag, nd << 3 | (uint64_t)(1 - sign));
	else
		put64(im, o + (uint64_t)l->var_size, (uint64_t)(sign * (int64_t)nd));
	for (size_t i = 0; i < nd; i++)
		put32(im, o + (uint64_t)l->long_digit + 4 * i, d[i]);
	return o;
}

static uint64_t mk_long(struct img *im, int64_t v)
{
	uint64_t m = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	uint32_t d[3];
	size_t nd = 0;
	for (; m; m >>= 30)
		d[nd++] = (uint32_t)(m & 0x3fffffff);
	return mk_long_digits(im, im->t_int, v < 0 ? -1 : v > 0, d, nd);
}

static uint64_t mk_bytes(struct img *im, const void *s, size_t n)
{
	const struct fp_layout *l = im->l;
	uint64_t o = mk_obj(im, im->t_bytes, (size_t)l->bytes_sval + n + 1);
	put64(im, o + (uint64_t)l->var_size, n);
	put(im, o + (uint64_t)l->bytes_sval, s, n);
	return o;
}

static uint64_t mk_float(struct img *im, double v)
{
	uint64_t o = mk_obj(im, im->t_float, (size_t)im->l->float_fval + 8);
	put(im, o + (uint64_t)im->l->float_fval, &v, 8);
	return o;
}

static uint64_t mk_seq(struct img *im, bool list, const uint64_t *items, size_t n)
{
	const struct fp_layout *l = im->l;
	uint64_t o = mk_obj(im, list ? im->t_list : im->t_tuple, (size_t)l->tuple_item + 8 * n + 8);
	put64(im, o + (uint64_t)l->var_size, n);
	uint64_t arr = o + (uint64_t)l->tuple_item;
	if (list) {
		arr = alloc(im, 8 * n + 8);
		put64(im, o + (uint64_t)l->list_item, arr);
	}
	for (size_t i = 0; i < n; i++)
		put64(im, arr + 8 * i, items[i]);
	return o;
}

/*
 * A keys object holding n entries (NULL keys or values make deleted slots).
 * split: keys of a split table, whose values live in a separate array.
 */
static uint64_t mk_keys(struct img *im, const uint64_t *keys, const uint64_t *values, size_t n,
			bool split, bool unicode)
{
	const struct fp_layout *l = im->l;
	unsigned log2 = 3;
	while ((1u << log2) * 2 < n * 3)
		log2++;
	size_t slots = (size_t)1 << log2;
	/* Both models: 1-byte indices up to 128 slots, 2-byte ones up to 32768. */
	unsigned log2_width = log2 < 8 ? 0 : 1;
	size_t ibytes = slots << log2_width;
	size_t esize = 24;
	uint64_t k;
	if (l->dict_model == FP_DICT_36) {
		k = alloc(im, (size_t)l->dk_indices + ibytes + n * esize);
		put64(im, k + (uint64_t)l->dk_size, slots);
	} else {
		unicode |= split;
		esize = unicode ? 16 : 24;
		k = alloc(im, (size_t)l->dk_indices + ibytes + n * esize);
		put8(im, k + (uint64_t)l->dk_log2_size, (uint8_t)log2);
		put8(im, k + (uint64_t)l->dk_log2_index_bytes, (uint8_t)(log2 + log2_width));
		put8(im, k + (uint64_t)l->dk_kind, split ? 2 : unicode ? 1 : 0);
	}
	put64(im, k, 1);
	put64(im, k + (uint64_t)l->dk_nentries, n);
	memset(ptr(im, k + (uint64_t)l->dk_indices), 0xff, ibytes);
	uint64_t e = k + (uint64_t)l->dk_indices + ibytes;
	for (size_t i = 0; i < n; i++, e += esize) {
		size_t ko = esize == 24 ? 8 : 0;
		if (esize == 24)
			put64(im, e, 0x1234567 + i); /* hash: never used */
		put64(im, e + ko, keys[i]);
		put64(im, e + ko + 8, split ? 0 : values[i]);
	}
	return k;
}

/* The values array of a split table (PyDictValues from 3.11). */
static uint64_t mk_values(struct img *im, const uint64_t *values, size_t n)
{
	const struct fp_layout *l = im->l;
	uint64_t v = alloc(im, (size_t)l->dict_values_values + 8 * n + 8);
	if (l->dict_values_values) {
		put8(im, v, (uint8_t)n); /* 3.13: capacity, size, embedded, valid */
		put8(im, v + 1, (uint8_t)n);
		put8(im, v + 3, 1);
	}
	for (size_t i = 0; i < n; i++)
		put64(im, v + (uint64_t)l->dict_values_values + 8 * i, values[i]);
	return v;
}

static uint64_t mk_dict_from(struct img *im, uint64_t keys, uint64_t values, size_t used)
{
	const struct fp_layout *l = im->l;
	uint64_t d = mk_obj(im, im->t_dict, 64);
	put64(im, d + (uint64_t)l->dict_used, used);
	put64(im, d + (uint64_t)l->dict_keys, keys);
	put64(im, d + (uint64_t)l->dict_values, values);
	return d;
}

static uint64_t mk_dict(struct img *im, const uint64_t *keys, const uint64_t *values, size_t n)
{
	return mk_dict_from(im, mk_keys(im, keys, values, n, false, false), 0, n);
}

static struct img *img_new(int minor)
{
	struct img *im = calloc(1, sizeof(*im));
	assert_non_null(im);
	if (minor < 13) {
		im->l = fp_layout_for(3, minor);
	} else {
		char err[128];
		assert_int_equal(fp_layout_from_debug_offsets(py313_debug_offsets,
							      sizeof(py313_debug_offsets),
							      &im->l313, err, sizeof(err)),
				 0);
		im->l = &im->l313;
	}
	assert_non_null(im->l);
	im->mem = calloc(1, IMG_SIZE);
	assert_non_null(im->mem);
	im->used = 64; /* address BASE stays unused: a pointer to it is a bug */
	im->region = (struct fp_mem_region){BASE, im->mem, IMG_SIZE};
	im->buf = (struct fp_mem_buf){&im->region, 1};
	fp_mem_buf_init(&im->m, &im->buf);
	im->c = (struct fp_pyctx){&im->m, im->l};
	im->t_str = mk_type(im, "str", TPF_UNICODE, 0, 0);
	im->t_bytes = mk_type(im, "bytes", TPF_BYTES, 0, 0);
	im->t_int = mk_type(im, "int", TPF_LONG, 0, 0);
	im->t_bool = mk_type(im, "bool", TPF_LONG, 0, 0);
	im->t_float = mk_type(im, "float", 0, 24, 0);
	im->t_none = mk_type(im, "NoneType", 0, 16, 0);
	im->t_tuple = mk_type(im, "tuple", TPF_TUPLE, 24, 0);
	im->t_list = mk_type(im, "list", TPF_LIST, 40, 0);
	im->t_dict = mk_type(im, "dict", TPF_DICT, 48, 0);
	im->t_module = mk_type(im, "module", 0, 48, 16);
	im->t_obj = mk_type(im, "object", 0, 16, 0);
	im->none = mk_obj(im, im->t_none, 16);
	return im;
}

static void img_free(struct img *im)
{
	free(im->mem);
	free(im);
}

#define FOR_EACH_VERSION(im)                                                                       \
	for (int minor_ = 6; minor_ <= 13; minor_++)                                               \
		for (struct img *im = img_new(minor_); im; img_free(im), im = NULL)

/* str */

static void test_str_kinds(void **state)
{
	(void)state;
	FOR_EACH_VERSION(im)
	{
		char out[64];
		assert_int_equal(fp_py_str(&im->c, mk_ascii(im, "hello"), out, sizeof(out)), 0);
		assert_string_equal(out, "hello");
		assert_int_equal(fp_py_str(&im->c, mk_ascii(im, ""), out, sizeof(out)), 0);
		assert_string_equal(out, "");

		uint32_t ucs1[] = {'c', 0xe9, 'l', 0xe8, 0xff};
		assert_int_equal(fp_py_str(&im->c, mk_ustr(im, 1, ucs1, 5), out, sizeof(out)), 0);
		assert_string_equal(out, "c\xc3\xa9l\xc3\xa8\xc3\xbf");

		uint32_t ucs2[] = {0x65e5, 0x672c, 'x', 0xd800, 0x3b1};
		assert_int_equal(fp_py_str(&im->c, mk_ustr(im, 2, ucs2, 5), out, sizeof(out)), 0);
		/* a lone surrogate becomes U+FFFD: the output is always valid UTF-8 */
		assert_string_equal(out, "\xe6\x97\xa5\xe6\x9c\xac"
					 "x\xef\xbf\xbd\xce\xb1");

		uint32_t ucs4[] = {0x1d11e, ' ', 0x10ffff, 0x110000, 0xe9};
		assert_int_equal(fp_py_str(&im->c, mk_ustr(im, 4, ucs4, 5), out, sizeof(out)), 0);
		assert_string_equal(out, "\xf0\x9d\x84\x9e \xf4\x8f\xbf\xbf\xef\xbf\xbd\xc3\xa9");
	}
}

static void test_str_truncation(void **state)
{
	(void)state;
	FOR_EACH_VERSION(im)
	{
		char out[8];
		assert_int_equal(fp_py_str(&im->c, mk_ascii(im, "abcdefghijkl"), out, sizeof(out)),
				 0);
		assert_string_equal(out, "abcdefg");
		/* 3 bytes per character: two fit in 7 bytes, the third is not split */
		uint32_t cjk[] = {0x65e5, 0x672c, 0x8a9e};
		assert_int_equal(fp_py_str(&im->c, mk_ustr(im, 2, cjk, 3), out, sizeof(out)), 0);
		assert_string_equal(out, "\xe6\x97\xa5\xe6\x9c\xac");
		assert_int_equal(fp_py_str(&im->c, mk_ascii(im, "abc"), out, 1), 0);
		assert_string_equal(out, "");
		assert_int_equal(fp_py_str(&im->c, mk_ascii(im, "abc"), out, 0), -EINVAL);
	}
}

static void test_str_garbage(void **state)
{
	(void)state;
	FOR_EACH_VERSION(im)
	{
		const struct fp_layout *l = im->l;
		char out[32];
		/* not a str */
		assert_int_equal(fp_py_str(&im->c, mk_long(im, 5), out, sizeof(out)), -EINVAL);
		assert_string_equal(out, "");
		/* NULL, unmapped, and a type pointer to nowhere */
		assert_int_equal(fp_py_str(&im->c, 0, out, sizeof(out)), -EFAULT);
		assert_int_equal(fp_py_str(&im->c, 0x10, out, sizeof(out)), -EFAULT);
		uint64_t s = mk_ascii(im, "abc");
		put64(im, s + (uint64_t)l->ob_type, 0xdead0000);
		assert_int_equal(fp_py_str(&im->c, s, out, sizeof(out)), -EFAULT);
		/* kind 0 (legacy, not ready), kind 3, ASCII with kind 2 */
		static const uint32_t bad_states[] = {0u << 2 | 1u << 5, 3u << 2 | 1u << 5,
						      2u << 2 | 1u << 5 | 1u << 6};
		for (size_t i = 0; i < 3; i++) {
			s = mk_ascii(im, "abc");
			put32(im, s + (uint64_t)l->unicode_state, bad_states[i]);
			assert_true(fp_py_str(&im->c, s, out, sizeof(out)) < 0);
		}
		/* negative and huge lengths */
		s = mk_ascii(im, "abc");
		put64(im, s + (uint64_t)l->unicode_length, (uint64_t)-1);
		assert_int_equal(fp_py_str(&im->c, s, out, sizeof(out)), -EINVAL);
		put64(im, s + (uint64_t)l->unicode_length, 1ULL << 62);
		assert_int_equal(fp_py_str(&im->c, s, out, sizeof(out)), -EINVAL);
		/* a length running off the end of the address space: the read fails */
		s = BASE + IMG_SIZE - (uint64_t)l->unicode_ascii_size - 4;
		memcpy(ptr(im, s), ptr(im, mk_ascii(im, "abc")), (size_t)l->unicode_ascii_size);
		put64(im, s + (uint64_t)l->unicode_length, 100);
		assert_int_equal(fp_py_str(&im->c, s, out, sizeof(out)), -EFAULT);
		/* the header itself cut by the end of the region */
		s = BASE + IMG_SIZE - 20;
		put64(im, s + (uint64_t)l->ob_type, im->t_str);
		assert_int_equal(fp_py_str(&im->c, s, out, sizeof(out)), -EFAULT);
		/* bytes >= 0x80 in an ASCII string are replaced, never copied raw */
		s = mk_ascii(im, "a\xff");
		assert_int_equal(fp_py_str(&im->c, s, out, sizeof(out)), 0);
		assert_string_equal(out, "a?");
	}
}

/* A legacy (non-compact) PyUnicodeObject whose data lives in a separate buffer. */
static void test_str_legacy(void **state)
{
	(void)state;
	FOR_EACH_VERSION(im)
	{
		const struct fp_layout *l = im->l;
		uint64_t data = cstr(im, "legacy");
		uint64_t s = mk_obj(im, im->t_str, (size_t)l->unicode_compact_size + 8);
		put64(im, s + (uint64_t)l->unicode_length, 6);
		put32(im, s + (uint64_t)l->unicode_state, 1u << 2 | 1u << 6);
		put64(im, s + (uint64_t)l->unicode_compact_size, data);
		char out[16];
		assert_int_equal(fp_py_str(&im->c, s, out, sizeof(out)), 0);
		assert_string_equal(out, "legacy");
		put64(im, s + (uint64_t)l->unicode_compact_size, 0);
		assert_int_equal(fp_py_str(&im->c, s, out, sizeof(out)), -EINVAL);
	}
}

/* int */

static void test_long_values(void **state)
{
	(void)state;
	static const int64_t vals[] = {0,
				       1,
				       -1,
				       -5,
				       (1 << 30) - 1,
				       1 << 30,
				       -(1LL << 40) - 7,
				       INT64_MAX,
				       INT64_MIN,
				       INT64_MIN + 1,
				       0x7f1234567890LL};
	FOR_EACH_VERSION(im)
	{
		for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
			int64_t v = 42;
			assert_int_equal(fp_py_long(&im->c, mk_long(im, vals[i]), &v), 0);
			assert_int_equal(v, vals[i]);
		}
	}
}

static void test_long_garbage(void **state)
{
	(void)state;
	FOR_EACH_VERSION(im)
	{
		int64_t v;
		/* 2^63 and 2^90 do not fit; -2^63 does (above) */
		uint32_t two63[] = {0, 0, 8};
		assert_int_equal(fp_py_long(&im->c, mk_long_digits(im, im->t_int, 1, two63, 3), &v),
				 -ERANGE);
		uint32_t four[] = {0, 0, 0, 1};
		assert_int_equal(fp_py_long(&im->c, mk_long_digits(im, im->t_int, -1, four, 4), &v),
				 -ERANGE);
		/* a digit with its top bits set */
		uint32_t bad[] = {0x40000000};
		assert_int_equal(fp_py_long(&im->c, mk_long_digits(im, im->t_int, 1, bad, 1), &v),
				 -EINVAL);
		/* not an int */
		assert_int_equal(fp_py_long(&im->c, mk_ascii(im, "1"), &v), -EINVAL);
		/* a digit count that runs past the region */
		uint64_t o = BASE + IMG_SIZE - (uint64_t)im->l->long_digit - 4;
		memcpy(ptr(im, o), ptr(im, mk_long(im, 7)), (size_t)im->l->long_digit + 4);
		assert_int_equal(fp_py_long(&im->c, o, &v), 0);
		assert_int_equal(v, 7);
		if (im->l->long_lv_tag != FP_NO_FIELD) {
			put64(im, o + (uint64_t)im->l->long_lv_tag, 2 << 3 | 0);
			assert_int_equal(fp_py_long(&im->c, o, &v), -EFAULT);
			put64(im, o + (uint64_t)im->l->long_lv_tag, 1 << 3 | 3); /* bad sign */
			assert_int_equal(fp_py_long(&im->c, o, &v), -EINVAL);
			put64(im, o + (uint64_t)im->l->long_lv_tag,
			      0 << 3 | 0); /* 0 digits, positive */
			assert_int_equal(fp_py_long(&im->c, o, &v), -EINVAL);
		} else {
			put64(im, o + (uint64_t)im->l->var_size, (uint64_t)-2);
			assert_int_equal(fp_py_long(&im->c, o, &v), -EFAULT);
			put64(im, o + (uint64_t)im->l->var_size, (uint64_t)INT64_MIN);
			assert_int_equal(fp_py_long(&im->c, o, &v), -ERANGE);
		}
	}
}

/* repr */

static void expect_repr(struct img *im, uint64_t obj, const char *want)
{
	char out[128];
	assert_int_equal(fp_py_repr(&im->c, obj, out, sizeof(out)), 0);
	assert_string_equal(out, want);
}

static void test_repr_scalars(void **state)
{
	(void)state;
	FOR_EACH_VERSION(im)
	{
		expect_repr(im, im->none, "None");
		expect_repr(im, mk_long_digits(im, im->t_bool, 1, (uint32_t[]){1}, 1), "True");
		expect_repr(im, mk_long_digits(im, im->t_bool, 0, NULL, 0), "False");
		expect_repr(im, mk_long(im, -5), "-5");
		expect_repr(im, mk_long(im, INT64_MIN), "-9223372036854775808");
		/* -12345678901234567890123 = -(0x29d42b64e76714244cb) in 30-bit digits */
		uint32_t big[3];
		unsigned __int128 m = ((unsigned __int128)0x29d << 64) | 0x42b64e76714244cbULL;
		for (int i = 0; i < 3; i++, m >>= 30)
			big[i] = (uint32_t)(m & 0x3fffffff);
		expect_repr(im, mk_long_digits(im, im->t_int, -1, big, 3),
			    "-12345678901234567890123");
		expect_repr(im, mk_float(im, 3.14), "3.14");
		expect_repr(im, mk_float(im, 100.0), "100.0");
		expect_repr(im, mk_float(im, -0.0), "-0.0");
		expect_repr(im, mk_float(im, 1e22), "1e+22");
		expect_repr(im, mk_float(im, 1e-7), "1e-07");
		expect_repr(im, mk_float(im, 0.0001), "0.0001");
		expect_repr(im, mk_float(im, 1e16), "1e+16");
		expect_repr(im, mk_float(im, 123456789012345.6), "123456789012345.6");
		expect_repr(im, mk_float(im, 1.0 / 0.0), "inf");
		expect_repr(im, mk_ascii(im, "it's"), "\"it's\"");
		expect_repr(im, mk_ascii(im, "a\n\\'\""), "'a\\n\\\\\\'\"'");
		expect_repr(im, mk_bytes(im, "ab\0\xff'", 5), "b\"ab\\x00\\xff'\"");
		uint64_t o = mk_obj(im, im->t_obj, 16);
		char want[64];
		snprintf(want, sizeof(want), "<object at 0x%llx>", (unsigned long long)o);
		expect_repr(im, o, want);
	}
}

static void test_repr_containers(void **state)
{
	(void)state;
	FOR_EACH_VERSION(im)
	{
		uint64_t one = mk_long(im, 1), s = mk_ascii(im, "two");
		expect_repr(im, mk_seq(im, false, (uint64_t[]){one}, 1), "(1,)");
		expect_repr(im, mk_seq(im, false, (uint64_t[]){one, s, im->none}, 3),
			    "(1, 'two', None)");
		uint64_t inner = mk_seq(im, true, (uint64_t[]){one}, 1);
		uint64_t mid = mk_seq(im, true, (uint64_t[]){one, inner}, 2);
		char want[64];
		snprintf(want, sizeof(want), "[1, [1, <list at 0x%llx>]]",
			 (unsigned long long)inner);
		expect_repr(im, mk_seq(im, true, (uint64_t[]){one, mid}, 2), want);
		uint64_t many[12];
		for (int i = 0; i < 12; i++)
			many[i] = mk_long(im, i);
		expect_repr(im, mk_seq(im, true, many, 12), "[0, 1, 2, 3, 4, 5, 6, 7, ...]");
		uint64_t d = mk_dict(im, (uint64_t[]){s, one}, (uint64_t[]){one, im->none}, 2);
		expect_repr(im, d, "{'two': 1, 1: None}");

		char out[12];
		assert_int_equal(
		    fp_py_repr(&im->c, mk_ascii(im, "abcdefghijklmnop"), out, sizeof(out)), 0);
		assert_string_equal(out, "'abcdefg...");
		uint32_t cjk[] = {0x65e5, 0x672c, 0x8a9e, 0x65e5};
		assert_int_equal(fp_py_repr(&im->c, mk_ustr(im, 2, cjk, 4), out, sizeof(out)), 0);
		assert_string_equal(out, "'\xe6\x97\xa5\xe6\x9c\xac...");
		assert_int_equal(fp_py_repr(&im->c, 0x20, out, sizeof(out)), -EFAULT);
	}
}

/* bytes, tuple */

static void test_bytes_tuple(void **state)
{
	(void)state;
	FOR_EACH_VERSION(im)
	{
		uint8_t out[4];
		size_t len;
		assert_int_equal(fp_py_bytes(&im->c, mk_bytes(im, "abcdef", 6), out, 4, &len), 0);
		assert_int_equal(len, 6);
		assert_memory_equal(out, "abcd", 4);
		uint64_t b = mk_bytes(im, "ab", 2);
		put64(im, b + (uint64_t)im->l->var_size, (uint64_t)-3);
		assert_int_equal(fp_py_bytes(&im->c, b, out, 4, &len), -EINVAL);
		assert_int_equal(fp_py_bytes(&im->c, mk_ascii(im, "ab"), out, 4, &len), -EINVAL);

		uint64_t items[2];
		size_t n;
		uint64_t t = mk_seq(im, false, (uint64_t[]){1, 2, 3}, 3);
		assert_int_equal(fp_py_tuple(&im->c, t, items, 2, &n), 0);
		assert_int_equal(n, 3);
		assert_int_equal(items[1], 2);
		put64(im, t + (uint64_t)im->l->var_size, 1ULL << 50);
		assert_int_equal(fp_py_tuple(&im->c, t, items, 2, &n), -EINVAL);
		assert_int_equal(fp_py_tuple(&im->c, mk_seq(im, true, items, 1), items, 2, &n),
				 -EINVAL);
	}
}

/* dict */

struct collected {
	uint64_t k[256], v[256];
	size_t n;
	size_t stop_at;
};

static int collect(void *arg, uint64_t k, uint64_t v)
{
	struct collected *c = arg;
	c->k[c->n] = k;
	c->v[c->n++] = v;
	return c->n == c->stop_at ? 7 : 0;
}

static void test_dict_iteration(void **state)
{
	(void)state;
	FOR_EACH_VERSION(im)
	{
		/* 100 entries, every third one deleted: spans two read chunks */
		uint64_t keys[100], vals[100];
		for (int i = 0; i < 100; i++) {
			keys[i] = mk_long(im, i);
			vals[i] = i % 3 == 1 ? 0 : mk_long(im, 1000 + i);
		}
		for (int unicode = 0; unicode < 2; unicode++) {
			uint64_t d =
			    mk_dict_from(im, mk_keys(im, keys, vals, 100, false, unicode), 0, 67);
			struct collected c = {.stop_at = 0};
			assert_int_equal(fp_py_dict_foreach(&im->c, d, 1000, collect, &c), 0);
			assert_int_equal(c.n, 67);
			for (size_t i = 0; i < c.n; i++) {
				int64_t k, v;
				assert_int_equal(fp_py_long(&im->c, c.k[i], &k), 0);
				assert_int_equal(fp_py_long(&im->c, c.v[i], &v), 0);
				assert_int_equal(v, 1000 + k);
				assert_true(k % 3 != 1);
			}
			c = (struct collected){.stop_at = 0};
			assert_int_equal(fp_py_dict_foreach(&im->c, d, 5, collect, &c), 0);
			assert_int_equal(c.n, 5);
			c = (struct collected){.stop_at = 3};
			assert_int_equal(fp_py_dict_foreach(&im->c, d, 1000, collect, &c), 7);
			assert_int_equal(c.n, 3);
		}

		/* a split table: keys shared, values in their own array */
		uint64_t names[3] = {mk_ascii(im, "a"), mk_ascii(im, "b"), mk_ascii(im, "c")};
		uint64_t v3[3] = {mk_long(im, 1), 0, mk_long(im, 3)};
		uint64_t sk = mk_keys(im, names, v3, 3, true, true);
		uint64_t d = mk_dict_from(im, sk, mk_values(im, v3, 3), 2);
		struct collected c = {.stop_at = 0};
		assert_int_equal(fp_py_dict_foreach(&im->c, d, 100, collect, &c), 0);
		assert_int_equal(c.n, 2);
		assert_int_equal(c.k[1], names[2]);
		assert_int_equal(c.v[1], v3[2]);
		uint64_t v;
		assert_int_equal(fp_py_dict_get_str(&im->c, d, "c", &v), 0);
		assert_int_equal(v, v3[2]);
		assert_int_equal(fp_py_dict_get_str(&im->c, d, "b", &v), 0);
		assert_int_equal(v, 0);

		/* empty */
		d = mk_dict(im, NULL, NULL, 0);
		c = (struct collected){.stop_at = 0};
		assert_int_equal(fp_py_dict_foreach(&im->c, d, 100, collect, &c), 0);
		assert_int_equal(c.n, 0);
	}
}

static void test_dict_garbage(void **state)
{
	(void)state;
	FOR_EACH_VERSION(im)
	{
		const struct fp_layout *l = im->l;
		uint64_t k1 = mk_ascii(im, "k");
		uint64_t v1 = mk_long(im, 1);
		struct collected c = {.stop_at = 0};
		/* not a dict */
		assert_int_equal(fp_py_dict_foreach(&im->c, v1, 10, collect, &c), -EINVAL);
		/* no keys */
		uint64_t d = mk_dict_from(im, 0, 0, 0);
		assert_int_equal(fp_py_dict_foreach(&im->c, d, 10, collect, &c), -EINVAL);
		/* more entries than slots */
		uint64_t keys = mk_keys(im, &k1, &v1, 1, false, false);
		d = mk_dict_from(im, keys, 0, 1);
		put64(im, keys + (uint64_t)l->dk_nentries, 1000);
		assert_int_equal(fp_py_dict_foreach(&im->c, d, 10, collect, &c), -EINVAL);
		put64(im, keys + (uint64_t)l->dk_nentries, (uint64_t)-1);
		assert_int_equal(fp_py_dict_foreach(&im->c, d, 10, collect, &c), -EINVAL);
		put64(im, keys + (uint64_t)l->dk_nentries, 1);
		if (l->dict_model == FP_DICT_36) {
			put64(im, keys + (uint64_t)l->dk_size, 12); /* not a power of two */
			assert_int_equal(fp_py_dict_foreach(&im->c, d, 10, collect, &c), -EINVAL);
			put64(im, keys + (uint64_t)l->dk_size, 1ULL << 40);
			assert_int_equal(fp_py_dict_foreach(&im->c, d, 10, collect, &c), -EINVAL);
		} else {
			put8(im, keys + (uint64_t)l->dk_kind, 3);
			assert_int_equal(fp_py_dict_foreach(&im->c, d, 10, collect, &c), -EINVAL);
			put8(im, keys + (uint64_t)l->dk_kind, 1);
			put8(im, keys + (uint64_t)l->dk_log2_index_bytes,
			     7); /* 16 bytes per index */
			assert_int_equal(fp_py_dict_foreach(&im->c, d, 10, collect, &c), -EINVAL);
			put8(im, keys + (uint64_t)l->dk_log2_index_bytes, 3);
			put8(im, keys + (uint64_t)l->dk_log2_size, 60);
			assert_int_equal(fp_py_dict_foreach(&im->c, d, 10, collect, &c), -EINVAL);
		}
		/* entries running off the end of memory */
		uint64_t big = BASE + IMG_SIZE - (uint64_t)l->dk_indices - 64;
		memcpy(ptr(im, big), ptr(im, mk_keys(im, &k1, &v1, 1, false, false)),
		       (size_t)l->dk_indices);
		put64(im, big + (uint64_t)l->dk_nentries, 5);
		assert_int_equal(
		    fp_py_dict_foreach(&im->c, mk_dict_from(im, big, 0, 5), 10, collect, &c),
		    -EFAULT);
		assert_int_equal(c.n, 0);
	}
}

static void test_dict_get_str(void **state)
{
	(void)state;
	FOR_EACH_VERSION(im)
	{
		uint32_t cp[] = {'n', 0xe9};
		uint64_t keys[5] = {mk_long(im, 5), mk_ascii(im, "alpha"), mk_ustr(im, 1, cp, 2),
				    mk_ascii(im, "alphb"), 0};
		/* a key whose type is not str, with the bytes of "alpha" */
		uint64_t fake = mk_ascii(im, "alpha");
		put64(im, fake + (uint64_t)im->l->ob_type, im->t_bytes);
		keys[4] = fake;
		uint64_t vals[5];
		for (int i = 0; i < 5; i++)
			vals[i] = mk_long(im, i);
		uint64_t d = mk_dict(im, (uint64_t[]){keys[4], keys[0], keys[1], keys[2], keys[3]},
				     (uint64_t[]){vals[4], vals[0], vals[1], vals[2], vals[3]}, 5);
		uint64_t v = 1;
		assert_int_equal(fp_py_dict_get_str(&im->c, d, "alpha", &v), 0);
		assert_int_equal(v, vals[1]);
		assert_int_equal(fp_py_dict_get_str(&im->c, d, "n\xc3\xa9", &v), 0);
		assert_int_equal(v, vals[2]);
		assert_int_equal(fp_py_dict_get_str(&im->c, d, "alph", &v), 0);
		assert_int_equal(v, 0);
		assert_int_equal(fp_py_dict_get_str(&im->c, d, "", &v), 0);
		assert_int_equal(v, 0);
		/* an unreadable key is skipped, not fatal */
		d = mk_dict(im, (uint64_t[]){0x77770000, keys[1]}, (uint64_t[]){vals[0], vals[1]},
			    2);
		assert_int_equal(fp_py_dict_get_str(&im->c, d, "alpha", &v), 0);
		assert_int_equal(v, vals[1]);
	}
}

/* instance attributes */

/* An instance of a class holding a = 1 and b = 'bee', laid out as the version does. */
static uint64_t mk_instance(struct img *im, bool as_dict, uint64_t *a_value)
{
	const struct fp_layout *l = im->l;
	uint64_t names[2] = {mk_ascii(im, "a"), mk_ascii(im, "b")};
	uint64_t vals[2] = {mk_long(im, 1), mk_ascii(im, "bee")};
	*a_value = vals[0];
	uint64_t shared = mk_keys(im, names, vals, 2, true, true);
	uint64_t values = mk_values(im, vals, 2);
	uint64_t dict = as_dict ? mk_dict_from(im, shared, values, 2) : 0;
	uint64_t o;
	switch (l->instdict_model) {
	case FP_INSTDICT_OFFSET: {
		uint64_t t = mk_type(im, "C", TPF_HEAPTYPE, 24, 16);
		o = mk_obj(im, t, 24);
		put64(im, o + 16, dict ? dict : mk_dict(im, names, vals, 2));
		return o;
	}
	case FP_INSTDICT_311: {
		uint64_t t = mk_type(im, "C", TPF_HEAPTYPE | TPF_MANAGED_DICT, 16, -1);
		put64(im, t + (uint64_t)l->ht_cached_keys, shared);
		uint64_t pre = alloc(im, 32 + 16);
		o = pre + 32;
		put64(im, o + (uint64_t)l->ob_type, t);
		put64(im, o - 32, dict ? 0 : values);
		put64(im, o - 24, dict);
		return o;
	}
	case FP_INSTDICT_312: {
		uint64_t t = mk_type(im, "C", TPF_HEAPTYPE | TPF_MANAGED_DICT, 16, -1);
		put64(im, t + (uint64_t)l->ht_cached_keys, shared);
		uint64_t pre = alloc(im, 32 + 16);
		o = pre + 32;
		put64(im, o + (uint64_t)l->ob_type, t);
		put64(im, o - 24, dict ? dict : values - 1);
		return o;
	}
	case FP_INSTDICT_313: {
		uint64_t t =
		    mk_type(im, "C", TPF_HEAPTYPE | TPF_MANAGED_DICT | TPF_INLINE_VALUES, 16, -1);
		put64(im, t + (uint64_t)l->ht_cached_keys, shared);
		uint64_t pre = alloc(im, 32 + 16 + 8 + 16);
		o = pre + 32;
		put64(im, o + (uint64_t)l->ob_type, t);
		put8(im, o + 16, 2);
		put8(im, o + 17, 2);
		put8(im, o + 18, 1);
		put8(im, o + 19, as_dict ? 0 : 1);
		put64(im, o + 16 + 8, vals[0]);
		put64(im, o + 16 + 16, vals[1]);
		put64(im, o - 24, dict);
		return o;
	}
	}
	fail();
	return 0;
}

static void test_getattr(void **state)
{
	(void)state;
	FOR_EACH_VERSION(im)
	{
		for (int as_dict = 0; as_dict < 2; as_dict++) {
			uint64_t a, v = 1;
			uint64_t o = mk_instance(im, as_dict, &a);
			assert_int_equal(fp_py_getattr(&im->c, o, "a", &v), 0);
			assert_int_equal(v, a);
			char out[16];
			assert_int_equal(fp_py_getattr(&im->c, o, "b", &v), 0);
			assert_int_equal(fp_py_str(&im->c, v, out, sizeof(out)), 0);
			assert_string_equal(out, "bee");
			assert_int_equal(fp_py_getattr(&im->c, o, "zz", &v), 0);
			assert_int_equal(v, 0);
		}
		/* no __dict__ at all */
		uint64_t v = 1;
		assert_int_equal(fp_py_getattr(&im->c, mk_long(im, 3), "a", &v), 0);
		assert_int_equal(v, 0);
		/* a __dict__ slot holding something that is not a dict */
		uint64_t t = mk_type(im, "D", TPF_HEAPTYPE, 24, 16);
		uint64_t o = mk_obj(im, t, 24);
		put64(im, o + 16, mk_long(im, 3));
		assert_int_equal(fp_py_getattr(&im->c, o, "a", &v), -EINVAL);
		put64(im, o + 16, 0x5550000);
		assert_int_equal(fp_py_getattr(&im->c, o, "a", &v), -EFAULT);
		/* a dict at the end of a variable-size object */
		t = mk_type(im, "E", TPF_HEAPTYPE | TPF_LONG, 24, -8);
		assert_int_equal(fp_py_getattr(&im->c, mk_obj(im, t, 32), "a", &v), -ENOTSUP);
	}
}

/* threading._active */

struct names {
	uint64_t ident[8];
	char name[8][32];
	size_t n;
};

static void on_thread(void *arg, uint64_t ident, const char *name)
{
	struct names *n = arg;
	n->ident[n->n] = ident;
	snprintf(n->name[n->n++], 32, "%s", name);
}

static void test_thread_names(void **state)
{
	(void)state;
	FOR_EACH_VERSION(im)
	{
		const struct fp_layout *l = im->l;
		uint64_t idents[3] = {mk_long(im, 0x7f0000001000), mk_long(im, 0x7f0000002000),
				      mk_long(im, 0x7f0000003000)};
		uint64_t names[2] = {mk_ascii(im, "_name"), mk_ascii(im, "_ident")};
		uint32_t wk[] = {'w', 0xf6, 'r', 'k'};
		uint64_t v1[2] = {mk_ascii(im, "MainThread"), idents[0]};
		uint64_t v2[2] = {mk_ustr(im, 1, wk, 4), idents[1]};
		uint64_t th1 = mk_dict(im, names, v1, 2), th2 = mk_dict(im, names, v2, 2);
		/* plain instances with their __dict__ at tp_dictoffset */
		uint64_t tt = mk_type(im, "Thread", TPF_HEAPTYPE, 24, 16);
		uint64_t t1 = mk_obj(im, tt, 24);
		put64(im, t1 + 16, th1);
		uint64_t t2 = mk_obj(im, tt, 24);
		put64(im, t2 + 16, th2);
		/* the third thread is half-built: no _name yet, so it is skipped */
		uint64_t t3 = mk_obj(im, tt, 24);
		put64(im, t3 + 16, mk_dict(im, NULL, NULL, 0));
		uint64_t active = mk_dict(im, idents, (uint64_t[]){t1, t2, t3}, 3);
		uint64_t md =
		    mk_dict(im, (uint64_t[]){mk_ascii(im, "_limbo"), mk_ascii(im, "_active")},
			    (uint64_t[]){mk_dict(im, NULL, NULL, 0), active}, 2);
		uint64_t mod = mk_obj(im, im->t_module, 48);
		put64(im, mod + (uint64_t)l->module_dict, md);
		uint64_t modules =
		    mk_dict(im, (uint64_t[]){mk_ascii(im, "sys"), mk_ascii(im, "threading")},
			    (uint64_t[]){im->none, mod}, 2);
		uint64_t interp = alloc(im, (size_t)l->interp_modules + 8);
		put64(im, interp + (uint64_t)l->interp_modules, modules);

		struct names n = {.n = 0};
		assert_int_equal(fp_py_thread_names(&im->c, interp, on_thread, &n), 0);
		assert_int_equal(n.n, 2);
		assert_int_equal(n.ident[0], 0x7f0000001000);
		assert_string_equal(n.name[0], "MainThread");
		assert_int_equal(n.ident[1], 0x7f0000002000);
		assert_string_equal(n.name[1], "w\xc3\xb6rk");

		/* threading not imported: nothing to report, not an error */
		put64(im, interp + (uint64_t)l->interp_modules,
		      mk_dict(im, (uint64_t[]){mk_ascii(im, "sys")}, (uint64_t[]){im->none}, 1));
		n.n = 0;
		assert_int_equal(fp_py_thread_names(&im->c, interp, on_thread, &n), 0);
		assert_int_equal(n.n, 0);
		/* "threading" bound to something that is not a module */
		put64(im, interp + (uint64_t)l->interp_modules,
		      mk_dict(im, (uint64_t[]){mk_ascii(im, "threading")}, (uint64_t[]){im->none},
			      1));
		assert_int_equal(fp_py_thread_names(&im->c, interp, on_thread, &n), -EINVAL);
		/* an interpreter pointer to nowhere */
		assert_int_equal(fp_py_thread_names(&im->c, 0x300, on_thread, &n), -EFAULT);
		assert_int_equal(n.n, 0);
	}
}

/* The buffer backend and the generic helpers. */
static void test_mem_buf(void **state)
{
	(void)state;
	uint8_t a[16] = "0123456789abcde", b[8] = "XYZ";
	struct fp_mem_region r[2] = {{0x1000, a, 16}, {0x1010, b, 8}};
	struct fp_mem_buf buf = {r, 2};
	struct fp_mem m;
	fp_mem_buf_init(&m, &buf);
	char out[16];
	assert_int_equal(fp_mem_read(&m, 0x1004, out, 12), 0);
	assert_memory_equal(out, "456789abcde", 12);
	/* adjacent regions are still two regions */
	assert_int_equal(fp_mem_read(&m, 0x100c, out, 8), -EFAULT);
	assert_int_equal(fp_mem_read(&m, 0x1010, out, 8), 0);
	assert_int_equal(fp_mem_read(&m, 0xfff, out, 2), -EFAULT);
	assert_int_equal(fp_mem_read(&m, UINT64_MAX - 2, out, 8), -EFAULT);
	assert_int_equal(fp_mem_read(&m, 0x5000, out, 0), 0);
	assert_int_equal(fp_mem_read_cstr(&m, 0x1010, out, sizeof(out)), 0);
	assert_string_equal(out, "XYZ");
	assert_int_equal(fp_mem_read_cstr(&m, 0x1000, out, 5), -ENAMETOOLONG);
	assert_string_equal(out, "0123");
	assert_int_equal(fp_mem_read_cstr(&m, 0x1008, out, sizeof(out)), 0);
	assert_string_equal(out, "89abcde");
	uint8_t unterminated[4] = "abcd";
	struct fp_mem_region r2 = {0x2000, unterminated, 4};
	struct fp_mem_buf buf2 = {&r2, 1};
	fp_mem_buf_init(&m, &buf2);
	assert_int_equal(fp_mem_read_cstr(&m, 0x2000, out, sizeof(out)), -EFAULT);

	fp_mem_buf_init(&m, &buf);
	char x[3][4];
	struct fp_mem_req q[3] = {{0x1000, x[0], 4, 1}, {0x9000, x[1], 4, 0}, {0x1010, x[2], 4, 1}};
	assert_int_equal(fp_mem_readv(&m, q, 3), -EFAULT);
	assert_int_equal(q[0].err, 0);
	assert_int_equal(q[1].err, -EFAULT);
	assert_int_equal(q[2].err, 0);
	assert_memory_equal(x[2], "XYZ", 4);
}

/* Every reader over an address space of pseudo-random words must fail or succeed, never crash. */
static void test_random_memory(void **state)
{
	(void)state;
	FOR_EACH_VERSION(im)
	{
		uint64_t seed = 0x9e3779b97f4a7c15ULL * (uint64_t)minor_;
		for (size_t i = 0; i < IMG_SIZE / 8; i++) {
			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			/* Mostly pointers into the image, so that readers get far. */
			uint64_t w = seed % 4 ? BASE + (seed >> 8) % IMG_SIZE : seed >> (seed & 63);
			memcpy(im->mem + 8 * i, &w, 8);
		}
		char out[64];
		uint64_t v;
		struct collected c;
		struct names n;
		for (int i = 0; i < 2000; i++) {
			uint64_t obj = BASE + (uint64_t)i * 509;
			c = (struct collected){.stop_at = 200};
			n.n = 0;
			fp_py_repr(&im->c, obj, out, sizeof(out));
			fp_py_dict_foreach(&im->c, obj, 200, collect, &c);
			fp_py_getattr(&im->c, obj, "_name", &v);
			if (i % 16 == 0)
				fp_py_thread_names(&im->c, obj, on_thread, &n);
			assert_true(strlen(out) < sizeof(out));
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_str_kinds),	 cmocka_unit_test(test_str_truncation),
	    cmocka_unit_test(test_str_garbage),	 cmocka_unit_test(test_str_legacy),
	    cmocka_unit_test(test_long_values),	 cmocka_unit_test(test_long_garbage),
	    cmocka_unit_test(test_repr_scalars), cmocka_unit_test(test_repr_containers),
	    cmocka_unit_test(test_bytes_tuple),	 cmocka_unit_test(test_dict_iteration),
	    cmocka_unit_test(test_dict_garbage), cmocka_unit_test(test_dict_get_str),
	    cmocka_unit_test(test_getattr),	 cmocka_unit_test(test_thread_names),
	    cmocka_unit_test(test_mem_buf),	 cmocka_unit_test(test_random_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
