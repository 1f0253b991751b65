/*
 * The sampler's code-object cache over a forged address space (a code object
 * that dies and is replaced at the same address must be decoded again), and
 * the options it refuses.  The sampler on live targets: through `fpctl perf`
 * in tests/integration/test_sampler.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "daemon/py/codecache.h"
#include "daemon/sampler.h"

#define BASE	 0x100000ULL
#define IMG_SIZE (1 << 16)

struct img {
	struct fp_python py;
	uint8_t *mem;
	size_t used;
	struct fp_mem_region region;
	struct fp_mem_buf buf;
	struct fp_mem m;
	uint64_t t_str, t_bytes;
};

static uint64_t alloc(struct img *im, size_t n)
{
	size_t off = (im->used + 15) & ~(size_t)15;
	assert_true(off + n <= IMG_SIZE);
	im->used = off + n;
	return BASE + off;
}

static void put64(struct img *im, uint64_t addr, uint64_t v)
{
	memcpy(im->mem + (addr - BASE), &v, 8);
}

static uint64_t mk_obj(struct img *im, uint64_t type, size_t size)
{
	uint64_t o = alloc(im, size);
	put64(im, o, 1);
	put64(im, o + (uint64_t)im->py.layout.ob_type, type);
	return o;
}

/* A heap type whose tp_flags say str (1 << 28) or bytes (1 << 27). */
static uint64_t mk_type(struct img *im, uint64_t flags)
{
	uint64_t t = mk_obj(im, 0, 1024);
	put64(im, t + (uint64_t)im->py.layout.tp_flags, flags);
	return t;
}

static uint64_t mk_ascii(struct img *im, const char *s)
{
	const struct fp_layout *l = &im->py.layout;
	size_t n = strlen(s);
	uint64_t o = mk_obj(im, im->t_str, (size_t)l->unicode_ascii_size + n + 1);
	put64(im, o + (uint64_t)l->unicode_length, n);
	uint32_t state = 1u << 2 | 1u << 5 | 1u << 6; /* kind 1, compact, ascii */
	memcpy(im->mem + (o + (uint64_t)l->unicode_state - BASE), &state, 4);
	memcpy(im->mem + (o + (uint64_t)l->unicode_ascii_size - BASE), s, n + 1);
	return o;
}

static uint64_t mk_code(struct img *im, const char *file, const char *func)
{
	const struct fp_layout *l = &im->py.layout;
	uint64_t c = mk_obj(im, im->py.code_type, (size_t)l->co_size + 64);
	uint64_t empty = mk_obj(im, im->t_bytes, (size_t)l->bytes_sval + 8);
	put64(im, c + (uint64_t)l->co_filename, mk_ascii(im, file));
	put64(im, c + (uint64_t)l->co_qualname, mk_ascii(im, func));
	put64(im, c + (uint64_t)l->co_name, mk_ascii(im, func));
	put64(im, c + (uint64_t)l->co_linetable, empty);
	return c;
}

static struct img *img_new(void)
{
	struct img *im = calloc(1, sizeof(*im));
	assert_non_null(im);
	im->py.layout = *fp_layout_for(3, 11);
	im->mem = calloc(1, IMG_SIZE);
	assert_non_null(im->mem);
	im->used = 64;
	im->region = (struct fp_mem_region){BASE, im->mem, IMG_SIZE};
	im->buf = (struct fp_mem_buf){&im->region, 1};
	fp_mem_buf_init(&im->m, &im->buf);
	im->t_str = mk_type(im, 1ULL << 28);
	im->t_bytes = mk_type(im, 1ULL << 27);
	im->py.code_type = mk_type(im, 0);
	return im;
}

static void img_free(struct img *im)
{
	free(im->mem);
	free(im);
}

static void test_codecache_revalidates(void **state)
{
	(void)state;
	struct img *im = img_new();
	const struct fp_layout *l = &im->py.layout;
	struct fp_codecache cc;
	fp_codecache_init(&cc, &im->py, &im->m, false);

	uint64_t code = mk_code(im, "a.py", "f");
	const struct fp_code_info *ci = fp_codecache_get_checked(&cc, code);
	assert_non_null(ci);
	assert_string_equal(ci->file, "a.py");
	assert_string_equal(ci->func, "f");

	/* The code object dies and another takes its address. */
	uint64_t other = mk_code(im, "b.py", "g");
	memcpy(im->mem + (code - BASE), im->mem + (other - BASE), (size_t)l->co_size);
	ci = fp_codecache_get_checked(&cc, code);
	assert_string_equal(ci->func, "f"); /* trusted within an epoch */
	fp_codecache_new_epoch(&cc);
	ci = fp_codecache_get_checked(&cc, code);
	assert_non_null(ci);
	assert_string_equal(ci->file, "b.py");
	assert_string_equal(ci->func, "g");

	/* Freed memory is no longer a code object. */
	put64(im, code + (uint64_t)l->ob_type, im->t_str);
	fp_codecache_new_epoch(&cc);
	assert_null(fp_codecache_get_checked(&cc, code));
	assert_null(fp_codecache_get_checked(&cc, 0));
	assert_null(fp_codecache_get(&cc, BASE + IMG_SIZE + 4096));

	/* Line of a frame before its first instruction: the first line. */
	uint64_t fresh = mk_code(im, "c.py", "h");
	put64(im, fresh + (uint64_t)l->co_firstlineno, 7);
	ci = fp_codecache_get(&cc, fresh);
	assert_int_equal(fp_codecache_line(&cc, ci, -1), 7);
	fp_codecache_free(&cc);
	img_free(im);
}

static void test_sampler_rejects_bad_options(void **state)
{
	(void)state;
	struct fp_python py = {.pid = 1, .layout = *fp_layout_for(3, 11)};
	struct fp_sampler *s = NULL;
	char err[256];
	struct fp_sampler_opts o = {.rate_hz = 0};
	assert_int_equal(fp_sampler_open(&py, &o, &s, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "out of range"));
	o = (struct fp_sampler_opts){.rate_hz = 100, .native = true, .idle = true};
	assert_int_equal(fp_sampler_open(&py, &o, &s, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot be combined"));
	assert_null(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_codecache_revalidates),
	    cmocka_unit_test(test_sampler_rejects_bad_options),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
