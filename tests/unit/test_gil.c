/*
 * Where gilstat places its probes: take_gil/drop_gil from .symtab in the
 * pyenv libpythons, and the stripped-binary heuristic on Debian's python3.11,
 * each checked against the disassembly facts recorded in
 * ../shared/research/bpf-notes.md.  Interpreters that are not installed are
 * skipped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/gil.h"

/*
 * Debian's 3.11.2 as objdump shows it: take_gil at 0x4cea20; drop_gil inlined
 * in PyEval_SaveThread (its call of pthread_mutex_lock at 0x4fe23f) and out of line at 0x618270
 * (called just before take_gil at 0x50652a), then four more inlined copies (the lock calls).  File
 * offsets are vaddr - 0x400000 in this executable.
 */
static const uint64_t debian_311_take = 0x4cea20 - 0x400000;
static const uint64_t debian_311_drops[] = {0x4fe23f - 0x400000, 0x618270 - 0x400000,
					    0x57e077 - 0x400000, 0x58c241 - 0x400000,
					    0x598122 - 0x400000, 0x62d650 - 0x400000};

static void test_debian_stripped(void **state)
{
	(void)state;
	const char *bin = "/usr/bin/python3.11";
	if (access(bin, R_OK) != 0)
		skip();
	struct fp_gil_probes p;
	char err[512];
	int rc = fp_gil_resolve(getpid(), bin, &p, err, sizeof(err));
	if (rc != 0)
		fail_msg("%s", err);
	if (strcmp(p.symbols, "heuristic") != 0)
		skip(); /* a debug file is installed: the heuristic is not used */
	/* Other builds of 3.11 put things elsewhere; the shape must still hold. */
	assert_true(p.ndrop >= 1 && p.ndrop <= FP_GIL_MAX_DROP_SITES);
	assert_non_null(strstr(p.note, "inlined"));
	assert_int_equal(p.ntake, 1);
	if (p.take_off[0] != debian_311_take)
		return;
	assert_int_equal(p.ndrop, sizeof(debian_311_drops) / sizeof(debian_311_drops[0]));
	for (size_t i = 0; i < p.ndrop; i++)
		assert_int_equal(p.drop_off[i], debian_311_drops[i]);
	/* Its 8 calls of pthread_cond_signal: these 6 releases and 2 in take_gil. */
	assert_non_null(strstr(p.note, "all 8 calls of pthread_cond_signal"));
}

static void test_pyenv_symtab(void **state)
{
	(void)state;
	static const char *const libs[] = {
	    "3.6.15/lib/libpython3.6m.so.1.0",	"3.7.16/lib/libpython3.7m.so.1.0",
	    "3.8.18/lib/libpython3.8.so.1.0",	"3.9.18/lib/libpython3.9.so.1.0",
	    "3.10.13/lib/libpython3.10.so.1.0", "3.11.7/lib/libpython3.11.so.1.0",
	    "3.12.1/lib/libpython3.12.so.1.0",	"3.13.0/lib/libpython3.13.so.1.0",
	};
	int found = 0;
	for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
		char path[256];
		snprintf(path, sizeof(path), "/root/.pyenv/versions/%s", libs[i]);
		if (access(path, R_OK) != 0)
			continue;
		struct fp_gil_probes p;
		char err[512];
		if (fp_gil_resolve(getpid(), path, &p, err, sizeof(err)) != 0)
			fail_msg("%s: %s", path, err);
		assert_string_equal(p.symbols, "symtab");
		/* 3.8 has take_gil and take_gil.constprop.0, each called. */
		assert_int_equal(p.ntake, strstr(path, "/3.8.") ? 2 : 1);
		assert_int_equal(p.ndrop, 1);
		assert_true(p.take_off[0] != 0 && p.drop_off[0] != 0 &&
			    p.take_off[0] != p.drop_off[0]);
		assert_string_equal(p.note, "");
		found++;
	}
	if (!found)
		skip();
}

/*
 * MiniDebugInfo as Fedora builds it: a stripped libpython carrying an
 * xz-compressed ELF with just take_gil and drop_gil in its .symtab.  Made
 * here with binutils and xz from the pyenv 3.11 libpython; skipped without them.
 */
static void test_minidebuginfo(void **state)
{
	(void)state;
	const char *lib = "/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0";
	char dir[] = "/tmp/fpd-test-gil.XXXXXX";
	if (access(lib, R_OK) != 0 || !mkdtemp(dir))
		skip();
	char cmd[2048];
	snprintf(cmd, sizeof(cmd),
		 "cd %s && printf 'take_gil\ndrop_gil\n' >keep && "
		 "objcopy --only-keep-debug %s full.debug && "
		 "objcopy -S --keep-symbols=keep full.debug mini && xz mini && "
		 "strip --strip-all %s -o stripped.so && "
		 "objcopy --add-section .gnu_debugdata=mini.xz stripped.so lib.so",
		 dir, lib, lib);
	int made = system(cmd);
	char path[256];
	snprintf(path, sizeof(path), "%s/lib.so", dir);
	struct fp_gil_probes p, ref;
	char err[512];
	int rc = made == 0 ? fp_gil_resolve(getpid(), path, &p, err, sizeof(err)) : 0;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0 || made != 0)
		skip(); /* binutils or xz missing */
	if (rc != 0)
		fail_msg("%s", err);
	assert_string_equal(p.symbols, "minidebuginfo");
	assert_int_equal(fp_gil_resolve(getpid(), lib, &ref, err, sizeof(err)), 0);
	assert_int_equal(p.ntake, 1);
	assert_int_equal(p.ndrop, 1);
	assert_int_equal(p.take_off[0], ref.take_off[0]);
	assert_int_equal(p.drop_off[0], ref.drop_off[0]);
}

static void test_not_an_interpreter(void **state)
{
	(void)state;
	struct fp_gil_probes p;
	char err[512];
	assert_int_equal(fp_gil_resolve(getpid(), "/bin/true", &p, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot place the GIL probes"));
	assert_null(strchr(err, '\n'));
	assert_int_equal(fp_gil_resolve(getpid(), "/nonexistent", &p, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "opening /nonexistent failed"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_debian_stripped),
	    cmocka_unit_test(test_pyenv_symtab),
	    cmocka_unit_test(test_minidebuginfo),
	    cmocka_unit_test(test_not_an_interpreter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
