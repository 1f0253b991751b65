/*
 * `mem summary` and `mem diff`: the helper walks the heap (agent/py/mem.py)
 * and sends the rows already sorted and cut to --limit; this draws them as
 * the reference guide's table `types | # objects | total size`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentcmd.h"

static const struct cli_opt_spec mem_opts[] = {
    {"limit", NULL, "--limit", CLI_OPT_INT, 1, 1000000, "1 to 1000000"},
    {"order", NULL, "--order", CLI_OPT_STR, 0, 0, NULL},
    {"interval", NULL, "--interval", CLI_OPT_NUM, 0.1, 3600, "0.1 to 3600 (seconds)"},
    {NULL, NULL, NULL, CLI_OPT_FLAG, 0, 0, NULL},
};

static int mem_check(const json_t *args, struct cli_error *err)
{
	const char *action = json_string_value(json_array_get(json_object_get(args, "argv"), 0));
	const char *order = cli_jstr(args, "order", "descending");
	err->topic = "mem";
	if (!action || (strcmp(action, "summary") != 0 && strcmp(action, "diff") != 0)) {
		snprintf(err->msg, sizeof(err->msg),
			 "mem: the action is summary or diff, not '%.60s'", action ? action : "");
		return 2;
	}
	if (strcmp(order, "descending") != 0 && strcmp(order, "ascending") != 0) {
		snprintf(err->msg, sizeof(err->msg),
			 "mem: --order takes descending or ascending, not '%.60s'", order);
		return 2;
	}
	if (strcmp(action, "summary") == 0 && json_object_get(args, "interval")) {
		snprintf(err->msg, sizeof(err->msg),
			 "mem summary: --interval applies to mem diff only");
		return 2;
	}
	return 0;
}

/* "123 B", "1.21 KB" ... with 1024 steps as pympler prints them; sign for diffs. */
static void human_size(char *buf, size_t len, json_int_t bytes, bool sign)
{
	static const char *const units[] = {"B", "KB", "MB", "GB", "TB", "PB"};
	const char *s = bytes < 0 ? "-" : sign && bytes > 0 ? "+" : "";
	unsigned long long b = bytes < 0 ? -(unsigned long long)bytes : (unsigned long long)bytes;
	if (b < 1024) {
		snprintf(buf, len, "%s%llu B", s, b);
		return;
	}
	double v = (double)b;
	size_t u = 0;
	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%s%.2f %s", s, v, units[u]);
}

static void put_repeat(FILE *f, char c, int n)
{
	for (int i = 0; i < n; i++)
		putc(c, f);
}

/* Right-aligned text in a column of width w, made safe for the terminal. */
static void put_right(FILE *f, const char *s, int w)
{
	int n = (int)strlen(s);
	put_repeat(f, ' ', w - n);
	cli_put_safe(f, s);
}

static void print_table(struct cli_ctx *ctx, const json_t *rows, bool diff)
{
	enum { NAME, COUNT, SIZE, COLS };
	static const char *const heads[COLS] = {"types", "# objects", "total size"};
	size_t n = json_array_size(rows);
	char(*cells)[2][32] = calloc(n ? n : 1, sizeof(*cells));
	if (!cells)
		return;
	int w[COLS];
	for (int c = 0; c < COLS; c++)
		w[c] = (int)strlen(heads[c]);
	for (size_t i = 0; i < n; i++) {
		const json_t *r = json_array_get(rows, i);
		int len = (int)strlen(cli_jstr(r, "type", "?"));
		w[NAME] = len > w[NAME] ? len : w[NAME];
		snprintf(cells[i][0], sizeof(cells[i][0]), diff ? "%+lld" : "%lld",
			 (long long)cli_jint(r, "count", 0));
		human_size(cells[i][1], sizeof(cells[i][1]), cli_jint(r, "size", 0), diff);
		for (int c = COUNT; c <= SIZE; c++) {
			len = (int)strlen(cells[i][c - COUNT]);
			w[c] = len > w[c] ? len : w[c];
		}
	}
	fputs(CLI_SGR(ctx->color, CLI_BOLD), stdout);
	for (int c = 0; c < COLS; c++) {
		put_right(stdout, heads[c], w[c]);
		fputs(c + 1 < COLS ? " | " : "", stdout);
	}
	printf("%s\n", CLI_SGR(ctx->color, CLI_RESET));
	for (int c = 0; c < COLS; c++) {
		put_repeat(stdout, '=', w[c]);
		fputs(c + 1 < COLS ? " | " : "\n", stdout);
	}
	for (size_t i = 0; i < n; i++) {
		put_right(stdout, cli_jstr(json_array_get(rows, i), "type", "?"), w[NAME]);
		fputs(" | ", stdout);
		put_right(stdout, cells[i][0], w[COUNT]);
		fputs(" | ", stdout);
		put_right(stdout, cells[i][1], w[SIZE]);
		putchar('\n');
	}
	free(cells);
}

static int render_mem(struct cli_ctx *ctx, const json_t *ev, void *state)
{
	(void)state;
	const char *kind = cli_jstr(ev, "event", "");
	char size[32], size2[32];
	if (strcmp(kind, "mem_snapshot") == 0) {
		human_size(size, sizeof(size), cli_jint(ev, "size", 0), false);
		double interval = json_number_value(json_object_get(ev, "interval"));
		fprintf(stderr,
			"First snapshot: %lld objects, %s (%.1f s); the second in %g s (Ctrl-C "
			"stops)\n",
			(long long)cli_jint(ev, "objects", 0), size,
			json_number_value(json_object_get(ev, "seconds")), interval);
		fflush(stderr);
		return 0;
	}
	bool diff = strcmp(kind, "mem_diff") == 0;
	if (!diff && strcmp(kind, "mem_summary") != 0)
		return 0;
	const json_t *rows = json_object_get(ev, "rows");
	if (json_array_size(rows))
		print_table(ctx, rows, diff);
	else
		puts(diff ? "No type changed." : "No objects.");
	if (diff) {
		const json_t *b = json_object_get(ev, "before"), *a = json_object_get(ev, "after");
		json_int_t dn = cli_jint(a, "objects", 0) - cli_jint(b, "objects", 0);
		human_size(size, sizeof(size), cli_jint(a, "size", 0), false);
		human_size(size2, sizeof(size2), cli_jint(a, "size", 0) - cli_jint(b, "size", 0),
			   true);
		printf("After %g s: %lld objects (%+lld), %s (%s)\n",
		       json_number_value(json_object_get(ev, "interval")),
		       (long long)cli_jint(a, "objects", 0), (long long)dn, size, size2);
		return 0;
	}
	human_size(size, sizeof(size), cli_jint(ev, "size", 0), false);
	printf("%lld objects, %s in %lld types (walked in %.1f s)\n",
	       (long long)cli_jint(ev, "objects", 0), size, (long long)cli_jint(ev, "types", 0),
	       json_number_value(json_object_get(ev, "seconds")));
	return 0;
}

const struct cli_agent_cmd cli_agent_mem = {
    .opts = mem_opts,
    .min_pos = 1,
    .max_pos = 1,
    .pos_usage = "summary|diff [--limit N] [--order descending|ascending] [--interval S]",
    .render = render_mem,
    .check = mem_check,
};
