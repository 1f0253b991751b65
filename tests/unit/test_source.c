/*
 * Source lines: trimming, bounds, and the promise that a file is read with
 * the requester's rights, never fpd's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/source.h"

static char path[64];

static int setup(void **state)
{
	(void)state;
	snprintf(path, sizeof(path), "/tmp/fp_test_source_%d.py", (int)getpid());
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fputs("import os\n\n    x = compute(1,  2)   \n\tif x:\r\nlast line without newline", f);
	fclose(f);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

static void test_lines(void **state)
{
	(void)state;
	struct fp_sources *s = fp_sources_new(getpid(), getuid(), getgid());
	assert_non_null(s);
	assert_string_equal(fp_sources_line(s, path, 1), "import os");
	assert_string_equal(fp_sources_line(s, path, 2), "");
	assert_string_equal(fp_sources_line(s, path, 3), "x = compute(1,  2)");
	assert_string_equal(fp_sources_line(s, path, 4), "if x:");
	assert_string_equal(fp_sources_line(s, path, 5), "last line without newline");
	assert_null(fp_sources_line(s, path, 6));
	assert_null(fp_sources_line(s, path, 0));
	assert_null(fp_sources_line(s, "<string>", 1));
	assert_null(fp_sources_line(s, "/nonexistent/x.py", 1));
	fp_sources_free(s);
}

static void test_requester_rights(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	assert_int_equal(chmod(path, 0600), 0);
	/* nobody may not read a root-only file, though fpd itself could. */
	struct fp_sources *s = fp_sources_new(getpid(), 65534, 65534);
	assert_null(fp_sources_line(s, path, 1));
	fp_sources_free(s);
	s = fp_sources_new(getpid(), 0, 0);
	assert_string_equal(fp_sources_line(s, path, 1), "import os");
	fp_sources_free(s);
	/* The daemon thread's own rights are restored afterwards. */
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	fclose(f);
}

/* Without CAP_SETUID fpd cannot take the requester's rights: it must read nothing. */
static void test_fails_closed(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	assert_int_equal(chmod(path, 0644), 0);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
		struct __user_cap_data_struct data[2];
		if (syscall(SYS_capget, &hdr, data) != 0)
			_exit(2);
		data[0].effective &= ~(1u << CAP_SETUID);
		if (syscall(SYS_capset, &hdr, data) != 0)
			_exit(2);
		struct fp_sources *s = fp_sources_new(getpid(), 65534, 65534);
		const char *line = fp_sources_line(s, path, 1);
		_exit(line == NULL ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lines),
	    cmocka_unit_test(test_requester_rights),
	    cmocka_unit_test(test_fails_closed),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
