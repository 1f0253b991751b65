/*
 * `top`'s table: own and total samples per function across profile events,
 * recursion, threads, sorting by each column, and the text fallback.
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

#include "cli/cli.h"
#include "cli/top.h"

/* main -> hot_a (x3 on tid 1), main -> rec -> rec -> leaf (x1 on tid 2), main (x1 on tid 1). */
static const char first[] =
    "{\"event\":\"profile\",\"samples\":5,\"lost\":2,\"faulted\":1,\"duration_s\":1.0,\"rate\":10,"
    "\"frames\":[{\"kind\":\"python\",\"func\":\"main\",\"file\":\"/m.py\",\"line\":1},"
    "{\"kind\":\"python\",\"func\":\"hot_a\",\"file\":\"/m.py\",\"line\":5},"
    "{\"kind\":\"python\",\"func\":\"rec\",\"file\":\"/m.py\",\"line\":9},"
    "{\"kind\":\"python\",\"func\":\"rec\",\"file\":\"/m.py\",\"line\":10},"
    "{\"kind\":\"native\",\"func\":\"leaf\",\"file\":null,\"line\":0,\"library\":\"libc.so.6\"}],"
    "\"stacks\":[{\"frames\":[0,1],\"count\":3,\"thread\":\"A\",\"tid\":1},"
    "{\"frames\":[0,2,3,4],\"count\":1,\"thread\":\"B\",\"tid\":2},"
    "{\"frames\":[0],\"count\":1,\"thread\":\"A\",\"tid\":1}]}";

/* The next second: only hot_a, indexes renumbered as a new event does. */
static const char second[] =
    "{\"event\":\"profile\",\"samples\":4,\"lost\":1,\"faulted\":0,\"duration_s\":1.0,\"rate\":10,"
    "\"frames\":[{\"kind\":\"python\",\"func\":\"hot_a\",\"file\":\"/m.py\",\"line\":6},"
    "{\"kind\":\"python\",\"func\":\"main\",\"file\":\"/m.py\",\"line\":1}],"
    "\"stacks\":[{\"frames\":[1,0],\"count\":4,\"thread\":\"A\",\"tid\":1}]}";

static void add(struct cli_top *t, const char *text)
{
	json_t *ev = json_loads(text, 0, NULL);
	assert_non_null(ev);
	assert_int_equal(cli_top_add(t, ev), 0);
	json_decref(ev);
}

static const struct cli_top_fn *fn(const struct cli_top *t, const char *name)
{
	for (size_t i = 0; i < t->nfns; i++)
		if (strcmp(t->fns[i].func, name) == 0)
			return &t->fns[i];
	fail_msg("no function %s", name);
	return NULL;
}

static void test_aggregation(void **state)
{
	(void)state;
	struct cli_top t = {0};
	add(&t, first);
	assert_int_equal(t.samples_last, 5);
	assert_int_equal(t.threads_last, 2);
	assert_int_equal(fn(&t, "main")->own, 1);
	assert_int_equal(fn(&t, "main")->total, 5);
	assert_int_equal(fn(&t, "hot_a")->own, 3);
	assert_int_equal(fn(&t, "hot_a")->line, 5);
	/* Two frames of rec in one stack: its total counts the sample once. */
	assert_int_equal(fn(&t, "rec")->total, 1);
	assert_int_equal(fn(&t, "rec")->own, 0);
	assert_int_equal(fn(&t, "leaf")->own, 1);
	assert_true(fn(&t, "leaf")->native);
	assert_string_equal(fn(&t, "leaf")->file, "libc.so.6");
	assert_int_equal(t.nfns, 4);

	add(&t, second);
	assert_int_equal(t.nfns, 4);
	assert_int_equal(t.samples, 9);
	assert_int_equal(t.samples_last, 4);
	assert_int_equal(t.threads_last, 1);
	assert_int_equal(t.lost, 3);
	assert_int_equal(t.faulted, 1);
	assert_true(t.rate == 10 && t.seconds == 2);
	const struct cli_top_fn *h = fn(&t, "hot_a");
	assert_int_equal(h->own, 7);
	assert_int_equal(h->own_last, 4);
	assert_int_equal(h->total_last, 4);
	/* main was innermost only in the first second. */
	assert_int_equal(fn(&t, "main")->own, 1);
	assert_int_equal(fn(&t, "main")->own_last, 0);
	assert_int_equal(fn(&t, "main")->total, 9);
	assert_int_equal(fn(&t, "rec")->total_last, 0);
	cli_top_free(&t);
}

static void test_sorting(void **state)
{
	(void)state;
	struct cli_top t = {0};
	add(&t, first);
	add(&t, second);
	size_t n;
	size_t *o = cli_top_order(&t, CLI_TOP_OWN_TIME, &n);
	assert_int_equal(n, 4);
	/* hot_a 7, then main and leaf 1 each (by name), rec 0 */
	assert_string_equal(t.fns[o[0]].func, "hot_a");
	assert_string_equal(t.fns[o[1]].func, "leaf");
	assert_string_equal(t.fns[o[2]].func, "main");
	assert_string_equal(t.fns[o[3]].func, "rec");
	free(o);
	o = cli_top_order(&t, CLI_TOP_TOTAL_TIME, &n);
	assert_string_equal(t.fns[o[0]].func, "main");
	assert_string_equal(t.fns[o[1]].func, "hot_a");
	free(o);
	/* Last second: main and hot_a both 4 in total; the larger own time goes first. */
	o = cli_top_order(&t, CLI_TOP_TOTAL_PCT, &n);
	assert_string_equal(t.fns[o[0]].func, "hot_a");
	assert_string_equal(t.fns[o[1]].func, "main");
	free(o);
	o = cli_top_order(&t, CLI_TOP_OWN_PCT, &n);
	assert_string_equal(t.fns[o[0]].func, "hot_a");
	free(o);
	cli_top_free(&t);

	struct cli_top empty = {0};
	assert_null(cli_top_order(&empty, CLI_TOP_OWN_PCT, &n));
	assert_int_equal(n, 0);
}

static void test_bad_events(void **state)
{
	(void)state;
	struct cli_top t = {0};
	json_t *ev = json_loads("{\"frames\":{},\"stacks\":[]}", 0, NULL);
	errno = 0;
	assert_int_equal(cli_top_add(&t, ev), -1);
	assert_int_equal(errno, EINVAL);
	json_decref(ev);
	/* Out-of-range indexes and empty stacks are skipped, not fatal. */
	add(&t, "{\"frames\":[{\"func\":\"f\",\"file\":\"/f.py\"}],\"stacks\":["
		"{\"frames\":[0,7],\"count\":2,\"tid\":1},{\"frames\":[],\"count\":1,\"tid\":1},"
		"{\"frames\":[0],\"count\":0,\"tid\":1}]}");
	assert_int_equal(fn(&t, "f")->total, 2);
	assert_int_equal(t.samples, 3);
	cli_top_free(&t);
}

static void test_format_time(void **state)
{
	(void)state;
	char buf[16];
	cli_top_format_time(buf, sizeof(buf), 0);
	assert_string_equal(buf, "0.00s");
	cli_top_format_time(buf, sizeof(buf), 12.345);
	assert_string_equal(buf, "12.35s");
	cli_top_format_time(buf, sizeof(buf), 185);
	assert_string_equal(buf, "3m05s");
	cli_top_format_time(buf, sizeof(buf), 7260);
	assert_string_equal(buf, "2h01m");
}

static void test_text_table(void **state)
{
	(void)state;
	struct cli_top t = {0};
	add(&t, first);
	add(&t, second);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cli_top_print(&t, f, 42, "3.12.1", CLI_TOP_OWN_TIME, 2);
	fclose(f);
	assert_non_null(strstr(buf, " top: pid 42, Python 3.12.1: 4 samples/s, 1 thread, 3 lost, "
				    "1 faulted, 2 s sampled\n"));
	assert_non_null(strstr(buf, "   %Own  %Total   OwnTime TotalTime  Function (file:line)  "
				    "(sorted by OwnTime)\n"));
	assert_non_null(strstr(buf, "\n 100.0%  100.0%     0.70s     0.70s  hot_a (/m.py:5)\n"));
	assert_non_null(strstr(buf, "\n   0.0%    0.0%     0.10s     0.10s  leaf (libc.so.6)\n"));
	/* Two rows asked for. */
	assert_null(strstr(buf, "main ("));
	free(buf);
	cli_top_free(&t);
}

#define CMD(...)	     ((char *const[]){__VA_ARGS__, NULL})
#define NARGS(...)	     ((int)(sizeof((char *const[]){__VA_ARGS__}) / sizeof(char *)))
#define PARSE(cmd, err, ...) cli_parse_command(NARGS(__VA_ARGS__), CMD(__VA_ARGS__), 42, cmd, err)

static void test_arguments(void **state)
{
	(void)state;
	struct cli_cmd cmd;
	struct cli_error err;
	assert_int_equal(PARSE(&cmd, &err, "top"), 0);
	assert_int_equal(cmd.def->id, CLI_CMD_TOP);
	assert_int_equal(cmd.u.top.rate, 100);
	assert_int_equal(PARSE(&cmd, &err, "top", "42", "-r", "500", "--json"), 0);
	assert_int_equal(cmd.u.top.rate, 500);
	assert_true(cmd.json);
	assert_int_equal(PARSE(&cmd, &err, "top", "--rate=7"), 0);
	assert_int_equal(cmd.u.top.rate, 7);
	assert_int_equal(PARSE(&cmd, &err, "top", "-r", "0"), 2);
	assert_string_equal(err.msg, "top: the rate must be a whole number of samples per second "
				     "from 1 to 10000, not '0'");
	assert_int_equal(PARSE(&cmd, &err, "top", "-r", "100000"), 2);
	assert_int_equal(PARSE(&cmd, &err, "top", "-r"), 2);
	assert_int_equal(PARSE(&cmd, &err, "top", "43"), 2);
	assert_string_equal(err.msg, "top: pid 43 is not the attached process (42)");
	assert_int_equal(PARSE(&cmd, &err, "top", "-d", "3"), 2);
	assert_string_equal(err.msg, "top: unknown option '-d'");
	assert_string_equal(err.topic, "top");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_aggregation), cmocka_unit_test(test_sorting),
	    cmocka_unit_test(test_bad_events),	cmocka_unit_test(test_format_time),
	    cmocka_unit_test(test_text_table),	cmocka_unit_test(test_arguments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
