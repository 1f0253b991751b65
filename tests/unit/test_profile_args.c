/* `perf`'s command line: defaults, every option, and one clear line per mistake. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/profile_formats.h"

static int parse(struct cli_cmd *cmd, struct cli_error *err, const char *line)
{
	char **argv;
	int argc = cli_split_words(line, &argv, err);
	assert_true(argc > 0);
	int rc = cli_parse_command(argc, argv, 7, cmd, err);
	/* The strings pointed into argv: keep only what the tests compare. */
	static char file[64];
	if (rc == 0 && cmd->u.perf.file) {
		snprintf(file, sizeof(file), "%s", cmd->u.perf.file);
		cmd->u.perf.file = file;
	}
	free(argv);
	return rc;
}

static void test_defaults(void **state)
{
	(void)state;
	struct cli_cmd cmd;
	struct cli_error err;
	assert_int_equal(parse(&cmd, &err, "perf"), 0);
	assert_int_equal(cmd.def->id, CLI_CMD_PERF);
	assert_int_equal(cmd.def->state, CLI_AVAILABLE);
	assert_null(cmd.u.perf.file);
	assert_int_equal(cmd.u.perf.format, CLI_PROFILE_SVG);
	assert_int_equal(cmd.u.perf.rate, 100);
	assert_true(cmd.u.perf.duration == 0);
	assert_false(cmd.u.perf.native || cmd.u.perf.gil || cmd.u.perf.idle || cmd.json);
}

static void test_options(void **state)
{
	(void)state;
	struct cli_cmd cmd;
	struct cli_error err;
	assert_int_equal(parse(&cmd, &err,
			       "perf 7 -f out.pb.gz -r 1000 -d 2.5 --format pprof --native --gil "
			       "--idle --json"),
			 0);
	assert_string_equal(cmd.u.perf.file, "out.pb.gz");
	assert_int_equal(cmd.u.perf.format, CLI_PROFILE_PPROF);
	assert_int_equal(cmd.u.perf.rate, 1000);
	assert_true(cmd.u.perf.duration == 2.5);
	assert_true(cmd.u.perf.native && cmd.u.perf.gil && cmd.u.perf.idle && cmd.json);
	assert_int_equal(parse(&cmd, &err,
			       "perf --rate=1 --duration=0 --format=collapsed "
			       "--filepath=x"),
			 0);
	assert_int_equal(cmd.u.perf.rate, 1);
	assert_int_equal(cmd.u.perf.format, CLI_PROFILE_COLLAPSED);
	assert_string_equal(cmd.u.perf.file, "x");
	assert_int_equal(parse(&cmd, &err, "perf -r 10000 --format speedscope"), 0);
	assert_int_equal(cmd.u.perf.format, CLI_PROFILE_SPEEDSCOPE);
	/* --help anywhere is the command's help. */
	assert_int_equal(parse(&cmd, &err, "perf -r 0 --help"), 0);
	assert_int_equal(cmd.def->id, CLI_CMD_HELP);
	assert_string_equal(cmd.u.help_topic, "perf");
}

static void expect_usage(const char *line, const char *msg)
{
	struct cli_cmd cmd;
	struct cli_error err;
	assert_int_equal(parse(&cmd, &err, line), 2);
	assert_string_equal(err.msg, msg);
	assert_string_equal(err.topic, "perf");
	assert_null(strchr(err.msg, '\n'));
}

static void test_errors(void **state)
{
	(void)state;
	static const char rate[] =
	    "perf: the rate must be a whole number of samples per second from 1 to 10000, not ";
	char want[256];
	snprintf(want, sizeof(want), "%s'0'", rate);
	expect_usage("perf -r 0", want);
	snprintf(want, sizeof(want), "%s'100000'", rate);
	expect_usage("perf -r 100000", want);
	snprintf(want, sizeof(want), "%s'1.5'", rate);
	expect_usage("perf --rate 1.5", want);
	snprintf(want, sizeof(want), "%s''", rate);
	expect_usage("perf -r", want);
	expect_usage(
	    "perf -d -1",
	    "perf: -d takes a number of seconds from 0 (until Ctrl-C) to 604800, not '-1'");
	expect_usage("perf -d soon", "perf: -d takes a number of seconds from 0 (until Ctrl-C) to "
				     "604800, not 'soon'");
	expect_usage("perf --format png",
		     "perf: unknown format 'png' (svg, collapsed, speedscope or pprof)");
	expect_usage("perf -f", "perf: -f needs a file name");
	expect_usage("perf -f ''", "perf: -f needs a file name");
	expect_usage("perf --frobnicate", "perf: unknown option '--frobnicate'");
	expect_usage("perf 8", "perf: pid 8 is not the attached process (7)");
	expect_usage("perf 7 7", "perf: unexpected argument '7'");
	expect_usage("perf abc", "perf: 'abc' is not a process id");
	expect_usage("perf --timeout 3",
		     "perf: --timeout is fpctl's own option and goes before the command");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_options),
	    cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
