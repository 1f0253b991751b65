/*
 * fpctl without a daemon: command-line parsing, shell word splitting, the
 * command table, the stack/ps/status renderers, history, and `stack -f`
 * against canned frames on a socketpair.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "fp/proto.h"

#define ARGV(...)	     ((char *const[]){"fpctl", __VA_ARGS__, NULL})
#define ARGC(...)	     ((int)(sizeof((char *const[]){"fpctl", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(inv, err, ...) cli_parse_argv(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), inv, err)

static void test_global_options(void **state)
{
	(void)state;
	struct cli_invocation inv;
	struct cli_error err;
	assert_int_equal(
	    PARSE(&inv, &err, "--socket", "/tmp/s", "--json", "--timeout", "2.5", "ps"), 0);
	assert_int_equal(inv.action, CLI_ACT_PS);
	assert_string_equal(inv.g.socket, "/tmp/s");
	assert_true(inv.g.json);
	assert_true(inv.g.timeout_s == 2.5);

	assert_int_equal(PARSE(&inv, &err, "--socket=/x.sock", "status", "--json"), 0);
	assert_int_equal(inv.action, CLI_ACT_STATUS);
	assert_string_equal(inv.g.socket, "/x.sock");
	assert_true(inv.g.json);
	assert_int_equal(PARSE(&inv, &err, "ps"), 0);
	assert_null(inv.g.socket);
	assert_false(inv.g.json);

	assert_int_equal(PARSE(&inv, &err, "--version"), 0);
	assert_int_equal(inv.action, CLI_ACT_VERSION);
	assert_int_equal(PARSE(&inv, &err, "--help"), 0);
	assert_int_equal(inv.action, CLI_ACT_HELP);
	assert_null(inv.help_topic);
	assert_int_equal(PARSE(&inv, &err, "ps", "--help"), 0);
	assert_int_equal(inv.action, CLI_ACT_HELP);
	assert_string_equal(inv.help_topic, "ps");
}

static void test_global_option_errors(void **state)
{
	(void)state;
	struct cli_invocation inv;
	struct cli_error err;
	assert_int_equal(PARSE(&inv, &err, "--timeout", "0", "ps"), 2);
	assert_string_equal(err.msg, "--timeout takes a number of seconds above 0, not '0'");
	assert_int_equal(PARSE(&inv, &err, "--timeout", "5s", "ps"), 2);
	assert_int_equal(PARSE(&inv, &err, "--timeout", "nan", "ps"), 2);
	assert_int_equal(PARSE(&inv, &err, "ps", "--timeout"), 2);
	assert_string_equal(err.msg, "--timeout needs a number of seconds");
	assert_string_equal(err.topic, "ps");
	assert_int_equal(PARSE(&inv, &err, "--socket"), 2);
	assert_int_equal(PARSE(&inv, &err, "--socket="), 2);
	char longpath[200];
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(PARSE(&inv, &err, "--socket", longpath, "ps"), 2);
	assert_int_equal(PARSE(&inv, &err, "-x", "ps"), 2);
	assert_string_equal(err.msg, "unknown option '-x'");
	assert_null(err.topic);
	assert_int_equal(PARSE(&inv, &err, "ps", "extra"), 2);
	assert_string_equal(err.msg, "ps takes no arguments");
	assert_int_equal(PARSE(&inv, &err, "status", "--bogus"), 2);
	assert_string_equal(err.msg, "status: unknown option '--bogus'");
}

static void test_commands(void **state)
{
	(void)state;
	struct cli_invocation inv;
	struct cli_error err;
	assert_int_equal(cli_parse_argv(1, ARGV(NULL), &inv, &err), 2);
	assert_string_equal(err.msg, "no command given");

	assert_int_equal(PARSE(&inv, &err, "frobnicate"), 2);
	assert_string_equal(err.msg, "unknown command 'frobnicate'");
	assert_null(err.topic);

	/* A shell command typed at the top level says where it belongs. */
	assert_int_equal(PARSE(&inv, &err, "stack", "123"), 2);
	assert_string_equal(err.msg, "'stack' runs on a process: fpctl attach PID stack");
	assert_string_equal(err.topic, "stack");

	assert_int_equal(PARSE(&inv, &err, "help"), 0);
	assert_int_equal(inv.action, CLI_ACT_HELP);
	assert_null(inv.help_topic);
	assert_int_equal(PARSE(&inv, &err, "help", "stack"), 0);
	assert_string_equal(inv.help_topic, "stack");
	assert_int_equal(PARSE(&inv, &err, "help", "attach"), 0);
	assert_int_equal(PARSE(&inv, &err, "help", "nope"), 2);
	assert_string_equal(err.msg, "no command 'nope'");
	assert_int_equal(PARSE(&inv, &err, "help", "a", "b"), 2);

	assert_int_equal(PARSE(&inv, &err, "detach", "12"), 0);
	assert_int_equal(inv.action, CLI_ACT_DETACH);
	assert_int_equal(inv.pid, 12);
	assert_int_equal(PARSE(&inv, &err, "detach"), 2);
	assert_string_equal(err.msg, "detach needs a process id: fpctl detach PID");
	assert_int_equal(PARSE(&inv, &err, "detach", "x"), 2);
	assert_string_equal(err.msg, "detach: 'x' is not a process id");
	assert_int_equal(PARSE(&inv, &err, "record", "--anything"), 0);
	assert_int_equal(inv.action, CLI_ACT_PLANNED);
	assert_int_equal(PARSE(&inv, &err, "record", "--help"), 0);
	assert_int_equal(inv.action, CLI_ACT_HELP);
	assert_string_equal(inv.help_topic, "record");
}

static void test_attach_forms(void **state)
{
	(void)state;
	struct cli_invocation inv;
	struct cli_error err;
	assert_int_equal(PARSE(&inv, &err, "attach", "42"), 0);
	assert_int_equal(inv.action, CLI_ACT_SHELL);
	assert_int_equal(inv.pid, 42);

	assert_int_equal(PARSE(&inv, &err, "attach", "42", "stack", "--native", "--locals"), 0);
	assert_int_equal(inv.action, CLI_ACT_RUN);
	assert_string_equal(inv.cmd.def->name, "stack");
	assert_true(inv.cmd.u.stack.native);
	assert_true(inv.cmd.u.stack.locals);
	assert_false(inv.cmd.u.stack.async);
	assert_null(inv.cmd.u.stack.file);

	/* Global options right after attach, and after the pid. */
	assert_int_equal(PARSE(&inv, &err, "attach", "--json", "--socket", "/s", "42", "--timeout",
			       "3", "stack"),
			 0);
	assert_int_equal(inv.action, CLI_ACT_RUN);
	assert_true(inv.g.json);
	assert_string_equal(inv.g.socket, "/s");
	assert_true(inv.g.timeout_s == 3);
	assert_int_equal(inv.pid, 42);

	assert_int_equal(PARSE(&inv, &err, "attach", "--help"), 0);
	assert_int_equal(inv.action, CLI_ACT_HELP);
	assert_string_equal(inv.help_topic, "attach");

	/* gpu runs in the helper: its options are judged by its table. */
	assert_int_equal(PARSE(&inv, &err, "attach", "42", "gpu", "-d", "2", "-f", "t.json"), 0);
	assert_int_equal(inv.cmd.def->id, CLI_CMD_AGENT);
	assert_int_equal(PARSE(&inv, &err, "attach", "42", "gpu", "-zz"), 2);
	assert_string_equal(err.topic, "gpu");

	/* Helper commands are checked against their option tables. */
	assert_int_equal(PARSE(&inv, &err, "attach", "42", "getglobal", "__main__", "x", "-x", "2"),
			 0);
	assert_int_equal(inv.cmd.def->id, CLI_CMD_AGENT);
	assert_int_equal(PARSE(&inv, &err, "attach", "42", "getglobal", "__main__", "x", "-x", "9"),
			 2);
	assert_string_equal(err.topic, "getglobal");

	assert_int_equal(PARSE(&inv, &err, "attach", "42", "help", "watch"), 0);
	assert_int_equal(inv.cmd.def->id, CLI_CMD_HELP);
	assert_string_equal(inv.cmd.u.help_topic, "watch");
	assert_int_equal(PARSE(&inv, &err, "attach", "42", "stack", "--help"), 0);
	assert_int_equal(inv.cmd.def->id, CLI_CMD_HELP);
	assert_string_equal(inv.cmd.u.help_topic, "stack");
}

static void test_attach_errors(void **state)
{
	(void)state;
	struct cli_invocation inv;
	struct cli_error err;
	assert_int_equal(PARSE(&inv, &err, "attach"), 2);
	assert_string_equal(err.msg, "attach needs a process id");
	assert_string_equal(err.topic, "attach");
	assert_int_equal(PARSE(&inv, &err, "attach", "--json"), 2);
	assert_string_equal(err.msg, "attach needs a process id");

	static char *const bad[] = {"abc", "12x", "0", "-5", "+5", "99999999999", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(PARSE(&inv, &err, "attach", bad[i], "stack"), 2);
		char want[64];
		snprintf(want, sizeof(want), "'%s' is not a process id", bad[i]);
		assert_string_equal(err.msg, want);
		assert_string_equal(err.topic, "attach");
	}
	assert_int_equal(PARSE(&inv, &err, "attach", "--frob", "42"), 2);
	assert_string_equal(err.msg, "attach: unknown option '--frob'");

	assert_int_equal(PARSE(&inv, &err, "attach", "42", "nosuch"), 2);
	assert_string_equal(err.msg, "unknown command 'nosuch'");
	assert_null(err.topic);
	assert_int_equal(PARSE(&inv, &err, "attach", "42", "ps"), 2);
	assert_string_equal(err.msg, "'ps' is not a command of attach (run 'fpctl ps')");
	assert_int_equal(PARSE(&inv, &err, "attach", "42", "history"), 2);
	assert_string_equal(err.msg,
			    "'history' works only in the interactive shell (fpctl attach 42)");
	assert_string_equal(err.topic, "history");
	assert_int_equal(PARSE(&inv, &err, "attach", "42", "quit"), 2);
}

static int parse_cmd(pid_t attached, struct cli_cmd *cmd, struct cli_error *err, const char *line)
{
	char **argv;
	int argc = cli_split_words(line, &argv, err);
	assert_true(argc > 0);
	int rc = cli_parse_command(argc, argv, attached, cmd, err);
	/* Callers look only at flags and messages, not at the strings that pointed into argv. */
	free(argv);
	return rc;
}

static void test_stack_args(void **state)
{
	(void)state;
	struct cli_cmd cmd;
	struct cli_error err;
	assert_int_equal(parse_cmd(7, &cmd, &err, "stack"), 0);
	assert_false(cmd.u.stack.native || cmd.u.stack.locals || cmd.u.stack.async);
	assert_int_equal(parse_cmd(7, &cmd, &err, "stack 7 -a --json"), 0);
	assert_true(cmd.u.stack.async);
	assert_true(cmd.json);
	assert_int_equal(parse_cmd(7, &cmd, &err, "stack --async"), 0);
	assert_true(cmd.u.stack.async);

	char *const f1[] = {"stack", "-f", "out.txt", NULL};
	assert_int_equal(cli_parse_command(3, f1, 7, &cmd, &err), 0);
	assert_string_equal(cmd.u.stack.file, "out.txt");
	char *const f2[] = {"stack", "--filepath=/tmp/a b", "--native", NULL};
	assert_int_equal(cli_parse_command(3, f2, 7, &cmd, &err), 0);
	assert_string_equal(cmd.u.stack.file, "/tmp/a b");
	assert_true(cmd.u.stack.native);

	assert_int_equal(parse_cmd(7, &cmd, &err, "stack 8"), 2);
	assert_string_equal(err.msg, "stack: pid 8 is not the attached process (7)");
	assert_string_equal(err.topic, "stack");
	assert_int_equal(parse_cmd(7, &cmd, &err, "stack x"), 2);
	assert_string_equal(err.msg, "stack: 'x' is not a process id");
	assert_int_equal(parse_cmd(7, &cmd, &err, "stack 7 7"), 2);
	assert_string_equal(err.msg, "stack: unexpected argument '7'");
	assert_int_equal(parse_cmd(7, &cmd, &err, "stack -f"), 2);
	assert_string_equal(err.msg, "stack: -f needs a file name");
	assert_int_equal(parse_cmd(7, &cmd, &err, "stack --filepath="), 2);
	assert_int_equal(parse_cmd(7, &cmd, &err, "stack --nativ"), 2);
	assert_string_equal(err.msg, "stack: unknown option '--nativ'");
	assert_int_equal(parse_cmd(7, &cmd, &err, "stack --socket=/x"), 2);
	assert_string_equal(err.msg,
			    "stack: --socket=/x is fpctl's own option and goes before the command");
}

static void test_shell_commands(void **state)
{
	(void)state;
	struct cli_cmd cmd;
	struct cli_error err;
	assert_int_equal(parse_cmd(7, &cmd, &err, "history"), 0);
	assert_false(cmd.u.history.clear);
	assert_int_equal(cmd.u.history.last, 0);
	assert_int_equal(parse_cmd(7, &cmd, &err, "history -n 5"), 0);
	assert_int_equal(cmd.u.history.last, 5);
	assert_int_equal(parse_cmd(7, &cmd, &err, "history -c"), 0);
	assert_true(cmd.u.history.clear);
	assert_int_equal(parse_cmd(7, &cmd, &err, "history -n 0"), 2);
	assert_string_equal(err.msg, "history: -n takes a number above 0, not '0'");
	assert_int_equal(parse_cmd(7, &cmd, &err, "history -n"), 2);
	assert_int_equal(parse_cmd(7, &cmd, &err, "history -c -n 3"), 2);
	assert_int_equal(parse_cmd(7, &cmd, &err, "cls"), 0);
	assert_int_equal(cmd.def->id, CLI_CMD_CLS);
	assert_int_equal(parse_cmd(7, &cmd, &err, "quit now"), 2);
	assert_string_equal(err.msg, "quit takes no arguments");
	assert_int_equal(parse_cmd(7, &cmd, &err, "exit"), 0);
	assert_int_equal(cmd.def->id, CLI_CMD_QUIT);
	assert_int_equal(parse_cmd(7, &cmd, &err, "help stack"), 0);
	assert_int_equal(parse_cmd(7, &cmd, &err, "help ps"), 0);
	assert_int_equal(parse_cmd(7, &cmd, &err, "help nope"), 2);
	assert_int_equal(parse_cmd(7, &cmd, &err, "gilstat on 5 6 2 3"), 0);
	assert_int_equal(cmd.def->id, CLI_CMD_GILSTAT);
	assert_false(cmd.u.gilstat.off);
	assert_true(cmd.u.gilstat.take_ms == 5 && cmd.u.gilstat.hold_ms == 6);
	assert_true(cmd.u.gilstat.interval_s == 2 && cmd.u.gilstat.max_threads == 3);
	assert_int_equal(parse_cmd(7, &cmd, &err, "gilstat on --json"), 0);
	assert_true(cmd.json && cmd.u.gilstat.take_ms < 0 && cmd.u.gilstat.interval_s < 0);
	assert_int_equal(parse_cmd(7, &cmd, &err, "gilstat off"), 0);
	assert_true(cmd.u.gilstat.off);
	assert_int_equal(parse_cmd(7, &cmd, &err, "gilstat"), 2);
	assert_string_equal(err.msg, "gilstat needs 'on' or 'off'");
	assert_int_equal(parse_cmd(7, &cmd, &err, "gilstat off 5"), 2);
	assert_int_equal(parse_cmd(7, &cmd, &err, "gilstat on 5 5 0"), 2);
	assert_string_equal(err.msg,
			    "gilstat: interval_s must be a number from 0.1 to 3600, not '0'");
	assert_int_equal(parse_cmd(7, &cmd, &err, "gilstat on 1 1 1 2.5"), 2);
	assert_int_equal(parse_cmd(7, &cmd, &err, "gilstat on 1 1 1 1 1"), 2);
	assert_int_equal(parse_cmd(7, &cmd, &err, "gilstat start"), 2);
}

static void test_split_words(void **state)
{
	(void)state;
	char **argv;
	struct cli_error err;
	assert_int_equal(cli_split_words("  \t ", &argv, &err), 0);
	free(argv);
	assert_int_equal(cli_split_words("watch m f -f \"args[0] == 'hi'\" x\\ y ''", &argv, &err),
			 7);
	assert_string_equal(argv[0], "watch");
	assert_string_equal(argv[4], "args[0] == 'hi'");
	assert_string_equal(argv[5], "x y");
	assert_string_equal(argv[6], "");
	assert_null(argv[7]);
	free(argv);
	assert_int_equal(cli_split_words("a\"b\\\"c\"d 'e\\f'", &argv, &err), 2);
	assert_string_equal(argv[0], "ab\"cd");
	assert_string_equal(argv[1], "e\\f");
	free(argv);
	assert_int_equal(cli_split_words("stack -f 'oops", &argv, &err), -1);
	assert_string_equal(err.msg, "unterminated single quote");
	assert_int_equal(cli_split_words("x \"y", &argv, &err), -1);
	assert_string_equal(err.msg, "unterminated double quote");
}

/* Every command of SPEC §3 is in the table, documented, with the right state. */
static void test_command_table(void **state)
{
	(void)state;
	static const char *const spec[] = {
	    "help",   "stack",	"watch",   "trace", "tt",      "getglobal", "vmtool",
	    "module", "reload", "perf",	   "top",   "console", "mem",	    "gilstat",
	    "torch",  "gpu",	"history", "cls",   "quit",    "exit",
	};
	/* Every command of the shell runs. */
	for (size_t i = 0; i < sizeof(spec) / sizeof(spec[0]); i++) {
		const struct cli_command *c = cli_command_find(CLI_SHELL, spec[i]);
		assert_non_null(c);
		assert_int_equal(c->state, CLI_AVAILABLE);
		/* Available means implemented: a handler, or a helper option table. */
		assert_true(c->state == CLI_PLANNED ? c->id == CLI_CMD_OTHER : c->id != CLI_CMD_OTHER);
		assert_true((c->id == CLI_CMD_AGENT) == (c->agent != NULL));
	}
	for (enum cli_scope s = CLI_TOP; s <= CLI_SHELL; s++) {
		const struct cli_command *c;
		for (size_t i = 0; (c = cli_command_at(s, i)); i++) {
			assert_non_null(c->summary);
			assert_true(strlen(c->summary) <= 56); /* one table line in 80 columns */
			assert_non_null(c->usage);
			assert_non_null(c->description);
			assert_non_null(c->examples[0]);
			assert_non_null(c->options);
		}
	}
	static const char *const top[] = {"ps", "status", "attach", "detach", "record", "help"};
	for (size_t i = 0; i < sizeof(top) / sizeof(top[0]); i++)
		assert_non_null(cli_command_find(CLI_TOP, top[i]));
	assert_int_equal(cli_command_find(CLI_TOP, "detach")->state, CLI_AVAILABLE);
	assert_int_equal(cli_command_find(CLI_TOP, "record")->state, CLI_PLANNED);
}

static char *capture_help(const char *topic, enum cli_scope scope, int *rc)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct cli_error err;
	*rc = cli_help_topic(f, topic, scope, false, &err);
	fclose(f);
	return buf;
}

static void test_help_text(void **state)
{
	(void)state;
	int rc;
	char *t = capture_help(NULL, CLI_SHELL, &rc);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(t, "  stack      available  "));
	assert_non_null(strstr(t, "  watch      available  "));
	assert_non_null(strstr(t, "  gpu        available  "));
	assert_null(strstr(t, "  ps "));
	assert_null(strchr(t, '\033'));
	free(t);
	t = capture_help(NULL, CLI_TOP, &rc);
	assert_non_null(strstr(t, "  ps         available  "));
	assert_non_null(strstr(t, "  detach     available  "));
	assert_non_null(strstr(t, "  record     planned    "));
	assert_non_null(strstr(t, "  gilstat    available  "));
	free(t);
	t = capture_help("stack", CLI_SHELL, &rc);
	assert_non_null(
	    strstr(t, "USAGE:\n  stack [pid] [-f FILE] [--native] [-a|--async] [--locals]\n"));
	assert_non_null(strstr(t, "\nSUMMARY:\n"));
	assert_non_null(strstr(t, "\nEXAMPLES:\n"));
	assert_non_null(strstr(t, "\nOPTIONS:\n  pid  "));
	assert_null(strstr(t, "Planned"));
	free(t);
	t = capture_help("gpu", CLI_SHELL, &rc);
	assert_non_null(strstr(t, "USAGE:\n  gpu [-d SECONDS] [-f FILE.json]\n"));
	assert_null(strstr(t, "Planned"));
	free(t);
	/* Long usages wrap between tokens, never inside a bracket. */
	t = capture_help("perf", CLI_SHELL, &rc);
	for (char *line = t; *line;) {
		char *nl = strchr(line, '\n');
		assert_true(nl - line <= 80);
		line = nl + 1;
	}
	assert_non_null(strstr(t, "\n      [--format svg|collapsed|speedscope|pprof]"));
	free(t);
	t = capture_help("nope", CLI_TOP, &rc);
	assert_int_equal(rc, 2);
	free(t);
}

/* Renders a list of events (JSON text) as `stack` prints them. */
static char *render_stack(const char *const *events, size_t n)
{
	char *buf = NULL;
	size_t len = 0;
	struct cli_stack_render r = {.out = open_memstream(&buf, &len)};
	for (size_t i = 0; i < n; i++) {
		json_error_t jerr;
		json_t *ev = json_loads(events[i], 0, &jerr);
		assert_non_null(ev);
		cli_render_stack_event(&r, ev);
		json_decref(ev);
	}
	fclose(r.out);
	return buf;
}

static const char *const stack_events[] = {
    "{\"type\":\"event\",\"id\":1,\"event\":\"process\",\"pid\":123,\"version\":\"3.11.7\","
    "\"exe\":\"/usr/bin/python3.11\",\"binary\":\"/usr/lib/libpython3.11.so.1.0\"}",
    "{\"type\":\"event\",\"id\":1,\"event\":\"thread\",\"tid\":123,\"name\":\"MainThread\","
    "\"state\":\"holding GIL\",\"truncated\":0,\"error\":null,\"frames\":["
    "{\"kind\":\"python\",\"file\":\"/app/main.py\",\"line\":30,\"func\":\"<module>\","
    "\"source\":\"main()\"},"
    "{\"kind\":\"python\",\"file\":\"/app/main.py\",\"line\":12,\"func\":\"main\","
    "\"source\":null},"
    "{\"kind\":\"native\",\"file\":\"Python/ceval.c\",\"line\":4769,"
    "\"func\":\"_PyEval_EvalFrameDefault\",\"library\":\"libpython3.11.so.1.0\","
    "\"pc\":\"0x7f0000001000\"},"
    "{\"kind\":\"native\",\"file\":null,\"line\":0,\"func\":null,"
    "\"library\":\"libc.so.6\",\"pc\":\"0x7f0000002000\"}]}",
    "{\"type\":\"event\",\"id\":1,\"event\":\"thread\",\"tid\":124,\"name\":\"worker\","
    "\"state\":\"idle\",\"truncated\":17,\"error\":\"frame chain changed while reading\","
    "\"frames\":[{\"kind\":\"python\",\"file\":\"/app/w.py\",\"line\":5,\"func\":\"loop\","
    "\"source\":\"time.sleep(1)\",\"locals\":[{\"name\":\"n\",\"repr\":\"3\"},"
    "{\"name\":\"s\",\"repr\":\"'a\\u001b[2Jb'\"}]},"
    "{\"kind\":\"python\",\"file\":\"/app/w.py\",\"line\":9,\"func\":\"tick\","
    "\"source\":null,\"locals\":[]}]}",
};

static const char stack_text[] =
    "Process 123: /usr/bin/python3.11\n"
    "Python v3.11.7 (/usr/lib/libpython3.11.so.1.0)\n"
    "\n"
    "Traceback for thread 123 (MainThread) [holding GIL] (most recent call last):\n"
    "    (Python) File \"/app/main.py\", line 30, in <module>\n"
    "        main()\n"
    "    (Python) File \"/app/main.py\", line 12, in main\n"
    "    (C) File \"Python/ceval.c\", line 4769, in _PyEval_EvalFrameDefault "
    "(libpython3.11.so.1.0)\n"
    "    (C) File \"???\", line 0, in ?? (libc.so.6)\n"
    "\n"
    "Traceback for thread 124 (worker) [idle] (most recent call last):\n"
    "    ... 17 older frames not shown (stack deeper than 4096 frames)\n"
    "    (Python) File \"/app/w.py\", line 5, in loop\n"
    "        time.sleep(1)\n"
    "        Locals:\n"
    "            n = 3\n"
    "            s = 'a\\x1b[2Jb'\n"
    "    (Python) File \"/app/w.py\", line 9, in tick\n"
    "    (error: frame chain changed while reading)\n";

static void test_render_stack(void **state)
{
	(void)state;
	char *t = render_stack(stack_events, 3);
	assert_string_equal(t, stack_text);
	free(t);
}

static void test_render_stack_odd_events(void **state)
{
	(void)state;
	/* Unknown events are skipped; missing fields do not crash the renderer. */
	static const char *const ev[] = {
	    "{\"event\":\"something-new\",\"x\":1}",
	    "{\"event\":\"thread\",\"tid\":5,\"frames\":[{\"kind\":\"python\"}]}",
	    "{\"event\":\"thread\",\"tid\":6,\"name\":\"t\",\"state\":\"running\",\"frames\":[]}",
	};
	char *t = render_stack(ev, 3);
	assert_string_equal(t, "Traceback for thread 5 [unknown] (most recent call last):\n"
			       "    (Python) File \"???\", line 0, in ???\n"
			       "\n"
			       "Traceback for thread 6 (t) [running] (most recent call last):\n");
	free(t);
}

static void test_render_ps(void **state)
{
	(void)state;
	static const char *const ev[] = {
	    "{\"event\":\"process\",\"pid\":4567,\"user\":\"alice\",\"uid\":1000,\"version\":"
	    "\"3.12.1\",\"build\":\"static,stripped\",\"exe\":\"/usr/bin/python3.12\","
	    "\"helper\":true}",
	    "{\"event\":\"process\",\"pid\":89,\"user\":\"root\",\"uid\":0,\"version\":"
	    "\"3.11.7\",\"build\":\"shared,symbols,dtrace\",\"exe\":\"/opt/py/bin/python3\","
	    "\"helper\":false}",
	};
	struct cli_ps_render r = {0};
	for (size_t i = 0; i < 2; i++) {
		json_t *j = json_loads(ev[i], 0, NULL);
		cli_ps_add(&r, j);
		json_decref(j);
	}
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cli_ps_print(&r, f, false);
	fclose(f);
	cli_ps_free(&r);
	assert_string_equal(
	    buf, " PID  USER   VERSION  BUILD                  EXECUTABLE           HELPER\n"
		 "  89  root   3.11.7   shared,symbols,dtrace  /opt/py/bin/python3  no\n"
		 "4567  alice  3.12.1   static,stripped        /usr/bin/python3.12  yes\n");
	free(buf);

	/* No process: the header alone. */
	buf = NULL;
	f = open_memstream(&buf, &len);
	cli_ps_print(&r, f, false);
	fclose(f);
	assert_string_equal(buf, "PID  USER  VERSION  BUILD  EXECUTABLE  HELPER\n");
	free(buf);
}

static void test_render_status(void **state)
{
	(void)state;
	json_t *ev =
	    json_loads("{\"type\":\"event\",\"id\":1,\"event\":\"status\",\"pid\":77,"
		       "\"version\":\"0.1.0\",\"proto\":1,\"socket\":\"/run/fpd/fpd.sock\","
		       "\"uptime_s\":12.345,\"clients\":1,\"bpf\":\"unavailable: no BTF\","
		       "\"helpers\":[]}",
		       0, NULL);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cli_render_status(f, ev);
	fclose(f);
	assert_string_equal(buf, "pid: 77\n"
				 "version: 0.1.0\n"
				 "proto: 1\n"
				 "socket: /run/fpd/fpd.sock\n"
				 "uptime_s: 12.3\n"
				 "clients: 1\n"
				 "bpf: unavailable: no BTF\n"
				 "helpers: none\n");
	free(buf);
	json_decref(ev);
}

static void test_history(void **state)
{
	(void)state;
	struct cli_history h = {0};
	cli_history_add(&h, "stack");
	cli_history_add(&h, "stack");
	cli_history_add(&h, "help");
	cli_history_add(&h, "stack --native");
	assert_int_equal(h.n, 3);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cli_history_print(&h, f, 2);
	fclose(f);
	assert_string_equal(buf, "    2  help\n    3  stack --native\n");
	free(buf);

	char dir[] = "/tmp/fpctl-test-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[64];
	snprintf(path, sizeof(path), "%s/hist", dir);
	assert_int_equal(cli_history_save(&h, path), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	struct cli_history h2 = {0};
	assert_int_equal(cli_history_load(&h2, path), 0);
	assert_int_equal(h2.n, 3);
	assert_string_equal(h2.lines[2], "stack --native");
	cli_history_clear(&h2);
	unlink(path);
	assert_int_equal(cli_history_load(&h2, path), 0); /* missing file: empty history */
	assert_int_equal(h2.n, 0);
	rmdir(dir);

	for (int i = 0; i < CLI_HISTORY_MAX + 10; i++) {
		char line[16];
		snprintf(line, sizeof(line), "c%d", i);
		cli_history_add(&h, line);
	}
	assert_int_equal(h.n, CLI_HISTORY_MAX);
	assert_string_equal(h.lines[CLI_HISTORY_MAX - 1], "c1009");
	cli_history_clear(&h);
	assert_int_equal(h.n, 0);
}

/* A fake fpd: the answer frames are queued on the socket before the request is made. */
static void queue(int fd, const char *json)
{
	json_t *j = json_loads(json, 0, NULL);
	assert_non_null(j);
	assert_int_equal(fp_frame_send(fd, j), FP_FRAME_OK);
	json_decref(j);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = calloc(1, 8192);
	size_t n = fread(buf, 1, 8191, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void test_stack_to_file(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	struct cli_conn conn = {.fd = sv[0]};
	struct cli_ctx ctx = {.pid = 123, .conn = &conn, .shell = true};
	char dir[] = "/tmp/fpctl-test-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[64];
	snprintf(path, sizeof(path), "%s/stack.txt", dir);

	/* An earlier request's late frame is ignored; then request 1's events. */
	queue(sv[1], "{\"type\":\"end\",\"id\":99}");
	for (size_t i = 0; i < 3; i++) {
		json_t *ev = json_loads(stack_events[i], 0, NULL);
		assert_int_equal(fp_frame_send(sv[1], ev), FP_FRAME_OK);
		json_decref(ev);
	}
	queue(sv[1], "{\"type\":\"end\",\"id\":1}");

	char *const argv[] = {"stack", "--locals", "-f", path, NULL};
	struct cli_cmd cmd;
	struct cli_error err;
	assert_int_equal(cli_parse_command(4, argv, 123, &cmd, &err), 0);
	assert_int_equal(cli_exec(&ctx, &cmd), 0);

	char *text = slurp(path);
	assert_non_null(text);
	assert_string_equal(text, stack_text);
	free(text);

	json_t *req;
	assert_int_equal(fp_frame_recv(sv[1], &req, 1000), FP_FRAME_OK);
	assert_string_equal(cli_jstr(req, "type", ""), "request");
	assert_string_equal(cli_jstr(req, "cmd", ""), "stack");
	assert_int_equal(cli_jint(req, "id", 0), 1);
	assert_int_equal(cli_jint(req, "pid", 0), 123);
	json_t *args = json_object_get(req, "args");
	assert_true(json_is_true(json_object_get(args, "locals")));
	assert_true(json_is_false(json_object_get(args, "native")));
	json_decref(req);

	/* A failed request leaves no file and returns the error's exit status. */
	unlink(path);
	queue(sv[1], "{\"type\":\"error\",\"id\":2,\"code\":\"no_such_process\",\"exit\":3,"
		     "\"message\":\"no process with pid 123\"}");
	assert_int_equal(cli_exec(&ctx, &cmd), 3);
	assert_int_equal(access(path, F_OK), -1);

	/* An unwritable file is a command error. */
	queue(sv[1], "{\"type\":\"end\",\"id\":3}");
	char *const bad[] = {"stack", "-f", "/nonexistent-dir/x", NULL};
	assert_int_equal(cli_parse_command(3, bad, 123, &cmd, &err), 0);
	assert_int_equal(cli_exec(&ctx, &cmd), 1);

	/* fpd going away mid-request is a command error and marks the connection broken. */
	close(sv[1]);
	assert_int_equal(cli_exec(&ctx, &cmd), 1);
	assert_true(conn.broken);
	close(sv[0]);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_global_options), cmocka_unit_test(test_global_option_errors),
	    cmocka_unit_test(test_commands),	   cmocka_unit_test(test_attach_forms),
	    cmocka_unit_test(test_attach_errors),  cmocka_unit_test(test_stack_args),
	    cmocka_unit_test(test_shell_commands), cmocka_unit_test(test_split_words),
	    cmocka_unit_test(test_command_table),  cmocka_unit_test(test_help_text),
	    cmocka_unit_test(test_render_stack),   cmocka_unit_test(test_render_stack_odd_events),
	    cmocka_unit_test(test_render_ps),	   cmocka_unit_test(test_render_status),
	    cmocka_unit_test(test_history),	   cmocka_unit_test(test_stack_to_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
