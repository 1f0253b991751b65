/*
 * The table-driven parser of helper commands (cli/agentcmd.c), with a table
 * of its own so that every rule is exercised whatever the real commands
 * declare.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "cli/agentcmd.h"

static const struct cli_opt_spec opts[] = {
    {.key = "expr", .shrt = "-e", .lng = "--expr", .kind = CLI_OPT_STR},
    {.key = "expand", .shrt = "-x", .lng = "--expand", .kind = CLI_OPT_INT, .min = 1, .max = 4,
     .range = "1 to 4"},
    {.key = "limit", .shrt = "-n", .lng = "--limits", .kind = CLI_OPT_INT, .min = -1, .max = 1e9},
    {.key = "interval", .lng = "--interval", .kind = CLI_OPT_NUM, .min = 0.001, .max = 3600},
    {.key = "raw", .shrt = "-r", .lng = "--raw", .kind = CLI_OPT_FLAG},
    {NULL},
};

static int check_no_both(const json_t *args, struct cli_error *err)
{
	if (json_object_get(args, "raw") && json_object_get(args, "expr")) {
		snprintf(err->msg, sizeof(err->msg), "probe: -r and -e exclude each other");
		err->topic = "probe";
		return 2;
	}
	return 0;
}

static const struct cli_agent_cmd probe = {
    .opts = opts,
    .min_pos = 2,
    .max_pos = 3,
    .pos_usage = "module [class] field",
    .check = check_no_both,
};

static const struct cli_command def = {
    .name = "probe", .state = CLI_AVAILABLE, .id = CLI_CMD_AGENT, .agent = &probe};

#define N(...) ((int)(sizeof((char *const[]){__VA_ARGS__}) / sizeof(char *)))
#define PARSE(args, err, ...)                                                                      \
	cli_agent_parse(&def, N("probe", __VA_ARGS__), (char *const[]){"probe", __VA_ARGS__, NULL}, \
			args, err)

static void test_values(void **state)
{
	(void)state;
	struct cli_error err;
	json_t *a = json_object();
	assert_int_equal(PARSE(a, &err, "__main__", "C", "f", "-x", "3", "--expr=target.a", "-n",
			       "-1", "--interval", "0.5", "--json"),
			 0);
	assert_int_equal(json_integer_value(json_object_get(a, "expand")), 3);
	assert_string_equal(json_string_value(json_object_get(a, "expr")), "target.a");
	assert_int_equal(json_integer_value(json_object_get(a, "limit")), -1);
	assert_true(json_real_value(json_object_get(a, "interval")) == 0.5);
	json_t *argv = json_object_get(a, "argv");
	assert_int_equal(json_array_size(argv), 3);
	assert_string_equal(json_string_value(json_array_get(argv, 1)), "C");
	assert_null(json_object_get(a, "raw"));
	json_decref(a);

	/* Validation alone (args NULL) applies the same rules. */
	assert_int_equal(PARSE(NULL, &err, "m", "f", "-r"), 0);
}

static void test_errors(void **state)
{
	(void)state;
	struct cli_error err;
	assert_int_equal(PARSE(NULL, &err, "m"), 2);
	assert_string_equal(err.msg, "probe: missing arguments (usage: probe module [class] field)");
	assert_string_equal(err.topic, "probe");
	assert_int_equal(PARSE(NULL, &err, "m", "c", "f", "g"), 2);
	assert_string_equal(err.msg,
			    "probe: unexpected argument 'g' (usage: probe module [class] field)");
	assert_int_equal(PARSE(NULL, &err, "m", "f", "-x", "5"), 2);
	assert_string_equal(err.msg, "probe: --expand takes a whole number from 1 to 4, not '5'");
	assert_int_equal(PARSE(NULL, &err, "m", "f", "-x", "1.5"), 2);
	assert_int_equal(PARSE(NULL, &err, "m", "f", "-x"), 2);
	assert_string_equal(err.msg, "probe: --expand needs a value");
	assert_int_equal(PARSE(NULL, &err, "m", "f", "--interval", "x"), 2);
	assert_string_equal(err.msg, "probe: --interval takes a number, not 'x'");
	assert_int_equal(PARSE(NULL, &err, "m", "f", "--bogus"), 2);
	assert_string_equal(err.msg, "probe: unknown option '--bogus'");
	assert_int_equal(PARSE(NULL, &err, "m", "f", "--raw=1"), 2);
	assert_string_equal(err.msg, "probe: --raw takes no value");
	assert_int_equal(PARSE(NULL, &err, "m", "f", "--timeout", "3"), 2);
	assert_string_equal(err.msg,
			    "probe: --timeout is fpctl's own option and goes before the command");
	assert_int_equal(PARSE(NULL, &err, "m", "f", "-r", "-e", "x"), 2);
	assert_string_equal(err.msg, "probe: -r and -e exclude each other");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_values),
	    cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
