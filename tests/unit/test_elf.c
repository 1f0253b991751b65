/* ELF symbols and load bias, checked on the test binary itself and libc. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/elf.h"
#include "daemon/proc.h"

/* A symbol with a known run-time address, to check the bias arithmetic. */
int fp_test_elf_marker = 42;

/*
 * The load bias from maps read before the file is opened: libelf mmaps the
 * file it reads, which would add another offset-0 mapping of the same path.
 */
static uint64_t bias_of(const struct fp_maps *m, const char *path, struct fp_elf *e)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].path && strcmp(m->v[i].path, path) == 0 && m->v[i].offset == 0)
			return m->v[i].start - fp_elf_first_load(e);
	fail_msg("%s is not mapped", path);
	return 0;
}

static void test_self_symbol(void **state)
{
	(void)state;
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = '\0';
	struct fp_maps m;
	assert_int_equal(fp_maps_read(getpid(), &m), 0);
	struct fp_elf *e = fp_elf_open(exe);
	assert_non_null(e);
	assert_true(fp_elf_has_symtab(e));
	uint64_t value, size;
	assert_int_equal(fp_elf_sym(e, "fp_test_elf_marker", &value, &size), 0);
	assert_int_equal(size, sizeof(int));
	uint64_t bias = fp_elf_is_pie(e) ? bias_of(&m, exe, e) : 0;
	assert_int_equal(bias + value, (uint64_t)(uintptr_t)&fp_test_elf_marker);
	assert_int_equal(fp_elf_sym(e, "no_such_symbol_anywhere", &value, NULL), -1);

	int copy = 0;
	assert_int_equal(fp_elf_read_vaddr(e, value, &copy, sizeof(copy)), 0);
	assert_int_equal(copy, 42);
	fp_elf_close(e);
	fp_maps_free(&m);
}

static void test_libc_dynsym(void **state)
{
	(void)state;
	struct fp_maps m;
	assert_int_equal(fp_maps_read(getpid(), &m), 0);
	const char *libc = NULL;
	for (size_t i = 0; i < m.n && !libc; i++)
		if (m.v[i].path && strstr(m.v[i].path, "/libc.so"))
			libc = m.v[i].path;
	assert_non_null(libc);
	struct fp_elf *e = fp_elf_open(libc);
	assert_non_null(e);
	assert_true(fp_elf_is_pie(e));
	uint64_t value;
	assert_int_equal(fp_elf_sym(e, "getpid", &value, NULL), 0);
	assert_int_equal(bias_of(&m, libc, e) + value, (uint64_t)(uintptr_t)&getpid);
	fp_elf_close(e);
	fp_maps_free(&m);
}

static void test_not_elf(void **state)
{
	(void)state;
	assert_null(fp_elf_open("/proc/self/status"));
	assert_null(fp_elf_open("/nonexistent/file"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_self_symbol),
	    cmocka_unit_test(test_libc_dynsym),
	    cmocka_unit_test(test_not_elf),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
