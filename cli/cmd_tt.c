/*
 * `tt -t module [class] method | -l | -i IDX [-p] | -d IDX | -da` (the time
 * tunnel, agent/py/tt.py): one action per request, checked here against
 * the options that mean something for it, so that a flag that would be
 * silently ignored is an error instead.
 */
#include <stdarg.h>
#include <string.h>

#include "agentcmd.h"

/* Actions, as bits of which options apply to them. */
enum {
	TT_RECORD = 1 << 0,
	TT_LIST = 1 << 1,
	TT_SHOW = 1 << 2,
	TT_DELETE = 1 << 3,
	TT_DELETE_ALL = 1 << 4,
	TT_CAPS = 1 << 5, /* --max-records / --max-mb alone */
	TT_ANY = (1 << 6) - 1,
};

static const struct cli_opt_spec tt_opts[] = {
    {"record", "-t", NULL, CLI_OPT_FLAG, 0, 0, NULL},
    {"list", "-l", "--list", CLI_OPT_FLAG, 0, 0, NULL},
    /* Indices: any whole number; the helper says which exist. */
    {"index", "-i", "--index", CLI_OPT_INT, 0, 0, NULL},
    {"play", "-p", "--play", CLI_OPT_FLAG, 0, 0, NULL},
    {"delete", "-d", "--delete", CLI_OPT_INT, 0, 0, NULL},
    {"delete_all", "-da", "--delete_all", CLI_OPT_FLAG, 0, 0, NULL},
    {"limits", "-n", "--limits", CLI_OPT_INT, 1, 1000000, "1 to 1000000"},
    {"filter", "-f", "--filter", CLI_OPT_STR, 0, 0, NULL},
    {"method", "-m", "--method", CLI_OPT_STR, 0, 0, NULL},
    {"nested", "-nm", "--nested-method", CLI_OPT_STR, 0, 0, NULL},
    {"expand", "-x", "--expand", CLI_OPT_INT, 1, 4, "1 to 4"},
    {"raw", "-r", "--raw", CLI_OPT_FLAG, 0, 0, NULL},
    {"verbose", "-v", "--verbose", CLI_OPT_FLAG, 0, 0, NULL},
    {"max_records", NULL, "--max-records", CLI_OPT_INT, 1, 1000000, "1 to 1000000"},
    {"max_mb", NULL, "--max-mb", CLI_OPT_INT, 1, 65536, "1 to 65536 (MiB)"},
    {NULL, NULL, NULL, CLI_OPT_FLAG, 0, 0, NULL},
};

static const struct {
	const char *key, *flag;
	unsigned action; /* set for the options that choose the action */
	unsigned applies;
} tt_rules[] = {
    {"record", "-t", TT_RECORD, TT_RECORD},
    {"list", "-l", TT_LIST, TT_LIST},
    {"index", "-i", TT_SHOW, TT_SHOW},
    {"delete", "-d", TT_DELETE, TT_DELETE},
    {"delete_all", "-da", TT_DELETE_ALL, TT_DELETE_ALL},
    {"play", "-p", 0, TT_SHOW},
    {"limits", "-n", 0, TT_RECORD},
    {"filter", "-f", 0, TT_RECORD | TT_LIST},
    {"method", "-m", 0, TT_LIST},
    {"nested", "-nm", 0, TT_RECORD},
    {"expand", "-x", 0, TT_SHOW},
    {"raw", "-r", 0, TT_SHOW},
    {"verbose", "-v", 0, TT_SHOW},
    {"max_records", "--max-records", 0, TT_ANY},
    {"max_mb", "--max-mb", 0, TT_ANY},
};

#define TT_NRULES (sizeof(tt_rules) / sizeof(tt_rules[0]))

static int tt_fail(struct cli_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int tt_fail(struct cli_error *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	err->topic = "tt";
	return 2;
}

static const char *action_flag(unsigned action)
{
	for (size_t i = 0; i < TT_NRULES; i++)
		if (tt_rules[i].action == action)
			return tt_rules[i].flag;
	return "--max-records/--max-mb";
}

static int tt_check(const json_t *args, struct cli_error *err)
{
	unsigned action = 0;
	const char *first = NULL;
	for (size_t i = 0; i < TT_NRULES; i++) {
		if (!tt_rules[i].action || !json_object_get(args, tt_rules[i].key))
			continue;
		if (first)
			return tt_fail(err,
				       "tt: %s and %s cannot be combined (one of -t, -l, -i, -d, "
				       "-da at a time)",
				       first, tt_rules[i].flag);
		first = tt_rules[i].flag;
		action = tt_rules[i].action;
	}
	if (!action) {
		if (json_object_get(args, "play"))
			return tt_fail(err, "tt: -p replays a record: tt -i IDX -p");
		if (!json_object_get(args, "max_records") && !json_object_get(args, "max_mb"))
			return tt_fail(err, "tt: one of -t module [class] method, -l, -i IDX, "
					    "-d IDX or -da is needed");
		action = TT_CAPS;
	}
	for (size_t i = 0; i < TT_NRULES; i++) {
		if (tt_rules[i].action || !json_object_get(args, tt_rules[i].key) ||
		    (tt_rules[i].applies & action))
			continue;
		if (strcmp(tt_rules[i].key, "play") == 0)
			return tt_fail(err, "tt: -p replays a record: tt -i IDX -p");
		return tt_fail(err, "tt: %s does not apply to %s", tt_rules[i].flag,
			       action_flag(action));
	}
	size_t npos = json_array_size(json_object_get(args, "argv"));
	if (action == TT_RECORD && npos < 2)
		return tt_fail(err, "tt: -t needs the method: tt -t module [class] method");
	if (action != TT_RECORD && npos)
		return tt_fail(
		    err, "tt: unexpected argument '%.60s' (only -t takes module [class] method)",
		    json_string_value(json_array_get(json_object_get(args, "argv"), 0)));
	return 0;
}

/* Columns of the table; MODULE's width comes with each row and header. */
#define W_INDEX	    6
#define W_TIMESTAMP 23
#define W_COST	    10
#define W_FLAG	    6

static void put_padded(const char *s, int width)
{
	cli_put_safe(stdout, s);
	printf("%*s", width - (int)strlen(s), "");
}

static void print_header(struct cli_ctx *ctx, const json_t *ev)
{
	int mw = (int)cli_jint(ev, "module_width", 6);
	printf("%s%-*s  %-*s  %*s  %-*s  %-*s  %-*s  METHOD%s\n", CLI_SGR(ctx->color, CLI_BOLD),
	       W_INDEX, "INDEX", W_TIMESTAMP, "TIMESTAMP", W_COST, "COST(ms)", W_FLAG, "IS-RET",
	       W_FLAG, "IS-EXP", mw < 6 ? 6 : mw, "MODULE", CLI_SGR(ctx->color, CLI_RESET));
}

static const char *jbool(const json_t *ev, const char *key)
{
	return json_is_true(json_object_get(ev, key)) ? "true" : "false";
}

static void print_row(const json_t *ev)
{
	int mw = (int)cli_jint(ev, "module_width", 6);
	printf("%-*lld  ", W_INDEX, (long long)cli_jint(ev, "index", 0));
	put_padded(cli_jstr(ev, "timestamp", "?"), W_TIMESTAMP);
	printf("  %*.3f  %-*s  %-*s  ", W_COST, json_number_value(json_object_get(ev, "cost_ms")),
	       W_FLAG, jbool(ev, "is_ret"), W_FLAG, jbool(ev, "is_exp"));
	put_padded(cli_jstr(ev, "module", "?"), mw < 6 ? 6 : mw);
	fputs("  ", stdout);
	cli_put_safe(stdout, cli_jstr(ev, "method", "?"));
	json_t *of = json_object_get(ev, "replay_of");
	if (json_is_integer(of))
		printf("  (replay of %lld)", (long long)json_integer_value(of));
	putchar('\n');
}

/* "123 B", "4.0 KiB", "1.5 MiB". */
static void human_bytes(char *buf, size_t len, json_int_t n)
{
	if (n < 1024)
		snprintf(buf, len, "%lld B", (long long)n);
	else if (n < 1024 * 1024)
		snprintf(buf, len, "%.1f KiB", n / 1024.0);
	else
		snprintf(buf, len, "%.1f MiB", n / (1024.0 * 1024.0));
}

/* "the store holds 12 records, 1.2 MiB (at most 1000 records, 64.0 MiB)" */
static void print_store(FILE *f, const json_t *ev)
{
	char used[32], cap[32];
	json_int_t n = cli_jint(ev, "records", 0);
	human_bytes(used, sizeof(used), cli_jint(ev, "bytes", 0));
	human_bytes(cap, sizeof(cap), cli_jint(ev, "max_bytes", 0));
	fprintf(f, "the store holds %lld record%s, %s (at most %lld records, %s)", (long long)n,
		n == 1 ? "" : "s", used, (long long)cli_jint(ev, "max_records", 0), cap);
}

static void print_field(struct cli_ctx *ctx, const char *label, const char *text)
{
	printf("%s%-11s%s", CLI_SGR(ctx->color, CLI_BOLD), label, CLI_SGR(ctx->color, CLI_RESET));
	cli_print_lines(stdout, text, 11);
}

static void print_record(struct cli_ctx *ctx, const json_t *ev)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%lld", (long long)cli_jint(ev, "index", 0));
	print_field(ctx, "INDEX", buf);
	json_t *of = json_object_get(ev, "replay_of");
	if (json_is_integer(of)) {
		snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(of));
		print_field(ctx, "REPLAY-OF", buf);
	}
	print_field(ctx, "TIMESTAMP", cli_jstr(ev, "timestamp", "?"));
	snprintf(buf, sizeof(buf), "%.3f", json_number_value(json_object_get(ev, "cost_ms")));
	print_field(ctx, "COST(ms)", buf);
	print_field(ctx, "IS-RET", jbool(ev, "is_ret"));
	print_field(ctx, "IS-EXP", jbool(ev, "is_exp"));
	print_field(ctx, "MODULE", cli_jstr(ev, "module", "?"));
	print_field(ctx, "METHOD", cli_jstr(ev, "method", "?"));
	printf("%s%-11s%s", CLI_SGR(ctx->color, CLI_BOLD), "THREAD",
	       CLI_SGR(ctx->color, CLI_RESET));
	cli_put_safe(stdout, cli_jstr(ev, "thread", "?"));
	printf(" (ident %lld%s)\n", (long long)cli_jint(ev, "thread_id", 0),
	       json_is_true(json_object_get(ev, "daemon")) ? ", daemon" : "");
	human_bytes(buf, sizeof(buf), cli_jint(ev, "size", 0));
	print_field(ctx, "SIZE", buf);
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(ev, "notes"), i, v)
	{
		print_field(ctx, "NOT-COPIED", json_is_string(v) ? json_string_value(v) : "?");
	}
	json_array_foreach(json_object_get(ev, "values"), i, v)
	{
		putchar('\n');
		cli_print_value(stdout, ctx->color, v);
		const char *note = cli_jstr(v, "note", NULL);
		if (note)
			cli_print_labelled(stdout, ctx->color, "NOTE", note);
		const char *tb = cli_jstr(v, "traceback", NULL);
		if (tb)
			cli_print_labelled(stdout, ctx->color, "TRACE", tb);
	}
}

static void print_list_end(const json_t *ev)
{
	json_int_t shown = cli_jint(ev, "shown", 0);
	if (!shown)
		fputs("No records", stdout);
	else
		printf("%lld record%s", (long long)shown, shown == 1 ? "" : "s");
	fputs("; ", stdout);
	print_store(stdout, ev);
	puts(".");
}

static void print_end(struct cli_ctx *ctx, const json_t *ev)
{
	json_int_t n = cli_jint(ev, "recorded", 0);
	fprintf(stderr, "%s%lld call%s recorded%s; ", ctx->shell ? "" : "fpctl: ", (long long)n,
		n == 1 ? "" : "s",
		strcmp(cli_jstr(ev, "reason", ""), "limit") == 0 ? " (the -n limit)" : "");
	print_store(stderr, ev);
	fputs(". tt -i IDX shows a record.\n", stderr);
}

static int render_tt(struct cli_ctx *ctx, const json_t *ev, void *state)
{
	(void)state;
	const char *kind = cli_jstr(ev, "event", "");
	if (strcmp(kind, "tt_start") == 0 || strcmp(kind, "tt_header") == 0) {
		print_header(ctx, ev);
	} else if (strcmp(kind, "tt_row") == 0) {
		print_row(ev);
	} else if (strcmp(kind, "tt_list_end") == 0) {
		print_list_end(ev);
	} else if (strcmp(kind, "tt_end") == 0) {
		print_end(ctx, ev);
	} else if (strcmp(kind, "tt_record") == 0) {
		print_record(ctx, ev);
	} else if (strcmp(kind, "tt_replayed") == 0) {
		printf("Replayed record %lld as %lld, on ", (long long)cli_jint(ev, "index", 0),
		       (long long)cli_jint(ev, "new_index", 0));
		cli_put_safe(stdout, cli_jstr(ev, "target", "?"));
		puts(".\n");
	} else if (strcmp(kind, "tt_deleted") == 0) {
		if (json_is_integer(json_object_get(ev, "index")))
			printf("Deleted record %lld.\n", (long long)cli_jint(ev, "index", 0));
		else
			printf("Deleted %lld records.\n", (long long)cli_jint(ev, "count", 0));
	} else if (strcmp(kind, "tt_caps") == 0) {
		fputs("Caps set: ", stdout);
		print_store(stdout, ev);
		puts(".");
	} else if (strcmp(kind, "hook_error") == 0) {
		/* The instrumentation's report of our hook failing in the target. */
		fputs("tt: recording failed in ", stderr);
		cli_put_safe(stderr, cli_jstr(ev, "method", "?"));
		fputs(": ", stderr);
		cli_put_safe(stderr, cli_jstr(ev, "message", "?"));
		fputc('\n', stderr);
		fflush(stderr);
	} else if (strcmp(kind, "tt_notice") == 0) {
		cli_put_safe(stderr, cli_jstr(ev, "text", ""));
		fputc('\n', stderr);
		fflush(stderr);
	}
	return 0;
}

const struct cli_agent_cmd cli_agent_tt = {
    .opts = tt_opts,
    .min_pos = 0,
    .max_pos = 3,
    .pos_usage = "-t module [class] method | -l | -i IDX [-p] | -d IDX | -da",
    .render = render_tt,
    .check = tt_check,
};
