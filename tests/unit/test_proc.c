/* /proc parsing: maps lines of every shape, and the live readers on ourselves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "daemon/proc.h"

static void test_maps_parse(void **state)
{
	(void)state;
	const char *text =
	    "55d0c0a00000-55d0c0a2e000 r--p 00000000 fe:00 1234   /usr/bin/python3.11\n"
	    "7f0000000000-7f0000001000 rw-p 00000000 00:00 0 \n"
	    "7f0000001000-7f0000002000 r-xp 00001000 fe:00 99 /opt/my dir/lib x.so (deleted)\n"
	    "garbage line\n"
	    "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0  [vsyscall]\n"
	    "10-5 r--p 0 00:00 0 /backwards\n"
	    "7f0000003000-7f0000004000 r--p";
	struct fp_maps m;
	assert_int_equal(fp_maps_parse(text, strlen(text), &m), 0);
	assert_int_equal(m.n, 4);
	assert_int_equal(m.v[0].start, 0x55d0c0a00000ULL);
	assert_int_equal(m.v[0].end, 0x55d0c0a2e000ULL);
	assert_int_equal(m.v[0].inode, 1234);
	assert_string_equal(m.v[0].perms, "r--p");
	assert_string_equal(m.v[0].path, "/usr/bin/python3.11");
	assert_null(m.v[1].path);
	assert_int_equal(m.v[2].offset, 0x1000);
	assert_string_equal(m.v[2].path, "/opt/my dir/lib x.so (deleted)");
	assert_string_equal(m.v[3].path, "[vsyscall]");
	assert_ptr_equal(fp_maps_find(&m, 0x7f0000001800ULL), &m.v[2]);
	assert_null(fp_maps_find(&m, 0x1000));
	fp_maps_free(&m);
}

static void test_maps_empty(void **state)
{
	(void)state;
	struct fp_maps m;
	assert_int_equal(fp_maps_parse("", 0, &m), 0);
	assert_int_equal(m.n, 0);
	fp_maps_free(&m);
}

static void test_self(void **state)
{
	(void)state;
	struct fp_proc_info info;
	assert_int_equal(fp_proc_info(getpid(), &info), 0);
	assert_int_equal(info.uid, getuid());
	assert_true(info.state == 'R' || info.state == 'S');
	assert_non_null(strstr(info.exe, "test_proc"));

	struct fp_task *tasks;
	size_t n;
	assert_int_equal(fp_proc_tasks(getpid(), &tasks, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(tasks[0].tid, getpid());
	free(tasks);

	struct fp_maps m;
	assert_int_equal(fp_maps_read(getpid(), &m), 0);
	assert_non_null(fp_maps_find(&m, (uint64_t)(uintptr_t)&test_self));
	fp_maps_free(&m);

	/* A thread reading its own syscall file is inside read(2) as it does. */
	struct fp_syscall sc;
	assert_int_equal(fp_proc_syscall(getpid(), getpid(), &sc), 0);
	assert_int_equal(sc.nr, SYS_read);
}

static void test_missing_process(void **state)
{
	(void)state;
	struct fp_proc_info info;
	assert_int_equal(fp_proc_info(0x3ffffff0, &info), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_maps_parse),
	    cmocka_unit_test(test_maps_empty),
	    cmocka_unit_test(test_self),
	    cmocka_unit_test(test_missing_process),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
