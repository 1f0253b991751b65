/*
 * `watch module [class] method [--expr E] [-f F] [-e] [-x N] [-n N] [-r] [-v]
 * [-nm inner]`: the helper (agent/py/watch.py) instruments the method and
 * sends one record per call; this prints each in the reference tool's look:
 *
 *   ✓ 2026-04-19 10:33:36.520 method=__main__.compute cost=2.380133ms is_exp=False result={
 *     EXPR:   args,kwargs
 *     TYPE:   tuple
 *     VALUE:  ((25, 26), {})
 *   }
 *
 * Box drawing and the status mark only on a terminal.  Ctrl-C and the -n
 * limit end it normally (status 0), --timeout with "watch: timed out after S
 * s" (status 1, as every command): the helper removes the instrumentation in
 * every case.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agentcmd.h"

#define SEPARATOR_WIDTH 60
#define LABEL_INDENT	2

static const struct cli_opt_spec watch_opts[] = {
    {"expr", NULL, "--expr", CLI_OPT_STR, 0, 0, NULL},
    {"filter", "-f", "--filter", CLI_OPT_STR, 0, 0, NULL},
    {"exception", "-e", "--exception", CLI_OPT_FLAG, 0, 0, NULL},
    {"expand", "-x", "--expand", CLI_OPT_INT, 1, 4, "1 to 4"},
    {"limits", "-n", "--limits", CLI_OPT_INT, 1, 1000000, "1 to 1000000"},
    {"raw", "-r", "--raw", CLI_OPT_FLAG, 0, 0, NULL},
    {"verbose", "-v", "--verbose", CLI_OPT_FLAG, 0, 0, NULL},
    {"nested", "-nm", "--nested-method", CLI_OPT_STR, 0, 0, NULL},
    {NULL, NULL, NULL, CLI_OPT_FLAG, 0, 0, NULL},
};

struct watch_out {
	struct cli_ctx *ctx;
	bool tty; /* box drawing and marks: a terminal, whatever NO_COLOR says */
};

/* "LABEL:" padded to width, then text whose later lines align under it. */
static void field(FILE *out, bool color, int width, const char *label, const char *text)
{
	fprintf(out, "%*s%s%s:%s%*s", LABEL_INDENT, "", CLI_SGR(color, CLI_BOLD), label,
		CLI_SGR(color, CLI_RESET), (int)(width - strlen(label) - 1), "");
	cli_print_lines(out, text, LABEL_INDENT + width);
}

static void timestamp(char *buf, size_t len, double ts)
{
	time_t sec = (time_t)ts; /* ts > 0: truncation is floor */
	int ms = (int)((ts - (double)sec) * 1000.0);
	struct tm tm;
	if (!localtime_r(&sec, &tm)) {
		snprintf(buf, len, "?");
		return;
	}
	size_t n = strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03d", ms > 999 ? 999 : ms);
}

static void print_record(const struct watch_out *w, const json_t *ev)
{
	FILE *out = stdout;
	bool color = w->ctx->color;
	bool is_exp = json_is_true(json_object_get(ev, "is_exp"));
	const char *exception = cli_jstr(ev, "exception", NULL);
	char when[64];
	timestamp(when, sizeof(when), json_number_value(json_object_get(ev, "ts")));

	fputs(CLI_SGR(color, CLI_DIM), out);
	for (int i = 0; i < SEPARATOR_WIDTH; i++)
		fputs(w->tty ? "\u2500" : "-", out);
	fprintf(out, "%s\n", CLI_SGR(color, CLI_RESET));
	if (w->tty)
		fprintf(out, "%s%s%s ", is_exp ? CLI_SGR(color, CLI_RED) : CLI_SGR(color, "32"),
			is_exp ? "\u2717" : "\u2713", CLI_SGR(color, CLI_RESET));
	fprintf(out, "%s method=", when);
	cli_put_safe(out, cli_jstr(ev, "method", "?"));
	fprintf(out, " cost=%.6fms is_exp=%s%s%s result={\n",
		json_number_value(json_object_get(ev, "cost_ms")),
		CLI_SGR(color && is_exp, CLI_RED), is_exp ? "True" : "False",
		CLI_SGR(color && is_exp, CLI_RESET));

	int width = exception ? 12 : 8; /* "EXCEPTION:  " or "VALUE:  " */
	const char *filter_error = cli_jstr(ev, "filter_error", NULL);
	const char *expr_error = cli_jstr(ev, "expr_error", NULL);
	if (filter_error) {
		field(out, color, width, "FILTER", cli_jstr(ev, "filter", "?"));
		field(out, color, width, "ERROR", filter_error);
	} else {
		field(out, color, width, "EXPR", cli_jstr(ev, "expr", "?"));
		if (expr_error) {
			field(out, color, width, "ERROR", expr_error);
		} else {
			field(out, color, width, "TYPE", cli_jstr(ev, "value_type", "?"));
			field(out, color, width, "VALUE", cli_jstr(ev, "value", ""));
		}
	}
	if (exception)
		field(out, color, width, "EXCEPTION", exception);
	fputs("}\n", out);
}

static void notice(const struct watch_out *w, const json_t *ev)
{
	const char *kind = cli_jstr(ev, "event", "");
	fputs(w->ctx->shell ? "" : "fpctl: ", stderr);
	if (strcmp(kind, "watching") == 0) {
		fputs("watching ", stderr);
		cli_put_safe(stderr, cli_jstr(ev, "method", "?"));
		json_int_t limit = cli_jint(ev, "limit", 0);
		fprintf(stderr, ": at most %lld record%s, Ctrl-C stops\n", (long long)limit,
			limit == 1 ? "" : "s");
	} else if (strcmp(kind, "dropped") == 0) {
		fprintf(stderr,
			"watch: %lld records dropped: the calls came faster than they could be "
			"sent (the application was not slowed down)\n",
			(long long)cli_jint(ev, "count", 0));
	} else {
		fputs("watch: a hook failed inside the target (the call itself went on "
		      "unaffected): ",
		      stderr);
		cli_put_safe(stderr, cli_jstr(ev, "message", "?"));
		fputc('\n', stderr);
	}
	fflush(stderr);
}

static int on_event(void *ud, const json_t *ev)
{
	struct watch_out *w = ud;
	if (w->ctx->g.json) {
		cli_print_json(stdout, ev);
	} else if (!cli_agent_generic_event(w->ctx, ev)) {
		const char *kind = cli_jstr(ev, "event", "");
		if (strcmp(kind, "record") == 0)
			print_record(w, ev);
		else if (strcmp(kind, "watching") == 0 || strcmp(kind, "dropped") == 0 ||
			 strcmp(kind, "hook_error") == 0)
			notice(w, ev);
	}
	fflush(stdout);
	return 0;
}

static int watch_run(struct cli_ctx *ctx, json_t *args)
{
	struct watch_out w = {.ctx = ctx, .tty = isatty(STDOUT_FILENO)};
	return cli_timeout_end(ctx, "watch",
			       cli_request_drain(ctx, "watch", ctx->pid, args, on_event, &w));
}

const struct cli_agent_cmd cli_agent_watch = {
    .opts = watch_opts,
    .min_pos = 2,
    .max_pos = 3,
    .pos_usage = "module [class] method",
    .run = watch_run,
};
