/*
 * `trace module [class] method [-i MS] [-et MS] [-d N] [-n N] [-f F] [-nm inner]`:
 * the helper (agent/py/trace.py, agent/trace.c) sends one tree per traced
 * call, already pruned, as a pre-order list of nodes with their depth; this
 * draws it:
 *
 *   2026-04-19 10:33:36.520 thread=MainThread tid=4242 daemon=False cost=12.345ms
 *   [12.300ms] Service.handle    app.py:10
 *   ├─ [8.000ms] Service.parse    app.py:20
 *   │  └─ [7.500ms] loads    <built-in>    (3 calls)
 *   └─ [4.100ms] time.sleep    <built-in>
 *
 * Box drawing and colours only on a terminal; `|-`, `|` and `` `- `` on a
 * pipe.  Ctrl-C and the -n limit end it normally (status 0), --timeout with
 * "trace: timed out after S s" (status 1, as every command): the helper
 * removes the instrumentation in every case.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentcmd.h"

static const struct cli_opt_spec trace_opts[] = {
    {"interval", "-i", "--interval", CLI_OPT_NUM, 0, 1e9, "0 to 1e9 (ms)"},
    {"entrance_time", "-et", "--entrance_time", CLI_OPT_NUM, 0, 1e9, "0 to 1e9 (ms)"},
    {"depth", "-d", "--depth", CLI_OPT_INT, 1, 1000, "1 to 1000"},
    {"limits", "-n", "--limits", CLI_OPT_INT, 1, 1000000, "1 to 1000000"},
    {"filter", "-f", "--filter", CLI_OPT_STR, 0, 0, NULL},
    {"nested", "-nm", "--nested-method", CLI_OPT_STR, 0, 0, NULL},
    {NULL, NULL, NULL, CLI_OPT_FLAG, 0, 0, NULL},
};

struct trace_out {
	struct cli_ctx *ctx;
	bool tty; /* box drawing: a terminal, whatever NO_COLOR says */
};

/* The colour of a cost by its share of the whole call, as the reference tool
 * shows where the time goes. */
static const char *cost_colour(bool color, double ms, double total)
{
	if (!color || total <= 0)
		return "";
	double w = ms / total;
	return w > 0.5 ? CLI_SGR(1, CLI_RED) : w > 0.2 ? CLI_SGR(1, "33") : CLI_SGR(1, "32");
}

/* For each node, whether a later sibling follows it (the branch continues). */
static bool *later_siblings(const json_t *nodes, size_t n)
{
	bool *later = calloc(n ? n : 1, sizeof(*later));
	size_t maxd = 0;
	for (size_t i = 0; i < n; i++) {
		size_t d = (size_t)cli_jint(json_array_get(nodes, i), "depth", 0);
		maxd = d > maxd ? d : maxd;
	}
	bool *open = calloc(maxd + 2, sizeof(*open));
	if (!later || !open) {
		free(later);
		free(open);
		return NULL;
	}
	for (size_t i = n; i-- > 0;) {
		size_t d = (size_t)cli_jint(json_array_get(nodes, i), "depth", 0);
		later[i] = open[d];
		open[d] = true;
		for (size_t k = d + 1; k <= maxd; k++)
			open[k] = false;
	}
	free(open);
	return later;
}

static void print_node(const struct trace_out *w, const json_t *nd, double total)
{
	FILE *out = stdout;
	bool color = w->ctx->color;
	double ms = json_number_value(json_object_get(nd, "ms"));
	fprintf(out, "[%s%.3fms%s] ", cost_colour(color, ms, total), ms, CLI_SGR(color, CLI_RESET));
	cli_put_safe(out, cli_jstr(nd, "name", "?"));
	const char *file = cli_jstr(nd, "file", NULL);
	if (file) {
		fprintf(out, "    %s", CLI_SGR(color, CLI_DIM));
		cli_put_safe(out, file);
		if (json_is_integer(json_object_get(nd, "line")))
			fprintf(out, ":%lld", (long long)cli_jint(nd, "line", 0));
		fputs(CLI_SGR(color, CLI_RESET), out);
	}
	json_int_t count = cli_jint(nd, "count", 1);
	if (count > 1)
		fprintf(out,
			json_is_true(json_object_get(nd, "resumable")) ? "    (entered %lld times)"
								       : "    (%lld calls)",
			(long long)count);
	fputc('\n', out);
}

static void print_tree(const struct trace_out *w, const json_t *ev)
{
	FILE *out = stdout;
	const json_t *nodes = json_object_get(ev, "nodes");
	size_t n = json_array_size(nodes);
	bool *later = later_siblings(nodes, n);
	bool *bar = NULL; /* per level above: its branch continues below */
	if (later) {
		size_t maxd = 0;
		for (size_t i = 0; i < n; i++) {
			size_t d = (size_t)cli_jint(json_array_get(nodes, i), "depth", 0);
			maxd = d > maxd ? d : maxd;
		}
		bar = calloc(maxd + 1, sizeof(*bar));
	}
	if (!later || !bar) {
		free(later);
		free(bar);
		fputs("(out of memory)\n", out);
		return;
	}
	const char *tee = w->tty ? "\u251c\u2500 " : "|- ",
		   *elbow = w->tty ? "\u2514\u2500 " : "`- ", *pipe = w->tty ? "\u2502  " : "|  ";
	double total = n ? json_number_value(json_object_get(json_array_get(nodes, 0), "ms")) : 0;
	for (size_t i = 0; i < n; i++) {
		const json_t *nd = json_array_get(nodes, i);
		size_t d = (size_t)cli_jint(nd, "depth", 0);
		fputs(CLI_SGR(w->ctx->color, CLI_DIM), out);
		for (size_t k = 1; k < d; k++)
			fputs(bar[k] ? pipe : "   ", out);
		if (d)
			fputs(later[i] ? tee : elbow, out);
		fputs(CLI_SGR(w->ctx->color, CLI_RESET), out);
		bar[d] = later[i];
		print_node(w, nd, total);
	}
	free(later);
	free(bar);
}

static void print_trace(const struct trace_out *w, const json_t *ev)
{
	FILE *out = stdout;
	bool color = w->ctx->color;
	fprintf(out, "%s%s%s thread=", CLI_SGR(color, CLI_BOLD), cli_jstr(ev, "timestamp", "?"),
		CLI_SGR(color, CLI_RESET));
	cli_put_safe(out, cli_jstr(ev, "thread", "?"));
	fprintf(out, " tid=%lld daemon=%s cost=%.3fms\n", (long long)cli_jint(ev, "tid", 0),
		json_is_true(json_object_get(ev, "daemon")) ? "True" : "False",
		json_number_value(json_object_get(ev, "cost_ms")));
	print_tree(w, ev);
	json_int_t cut = cli_jint(ev, "cut", 0), dropped = cli_jint(ev, "dropped", 0);
	if (cut)
		fprintf(out, "... %lld more nodes not shown (raise -i or use -d)\n",
			(long long)cut);
	if (dropped)
		fprintf(out,
			"... %lld calls on new paths not recorded: the tree reached its size "
			"limit\n",
			(long long)dropped);
	if (json_is_true(json_object_get(ev, "interrupted")))
		fputs(
		    "... cut short: the application changed its profile function (sys.setprofile) "
		    "during the call\n",
		    out);
	fputc('\n', out);
}

static void notice(const struct trace_out *w, const json_t *ev)
{
	const char *kind = cli_jstr(ev, "event", "");
	fputs(w->ctx->shell ? "" : "fpctl: ", stderr);
	if (strcmp(kind, "tracing") == 0) {
		fputs("tracing ", stderr);
		cli_put_safe(stderr, cli_jstr(ev, "method", "?"));
		json_int_t limit = cli_jint(ev, "limit", 0);
		fprintf(stderr, ": at most %lld call%s, ", (long long)limit, limit == 1 ? "" : "s");
		if (json_is_integer(json_object_get(ev, "depth")))
			fprintf(stderr, "%lld levels deep", (long long)cli_jint(ev, "depth", 0));
		else if (json_number_value(json_object_get(ev, "interval")) > 0)
			fprintf(stderr, "calls under %g ms hidden",
				json_number_value(json_object_get(ev, "interval")));
		else
			fputs("every call shown", stderr);
		fputs(", Ctrl-C stops\n", stderr);
	} else if (strcmp(kind, "dropped") == 0) {
		fprintf(stderr,
			"trace: %lld traced calls dropped: they came faster than they could be "
			"sent (the application was not slowed down)\n",
			(long long)cli_jint(ev, "count", 0));
	} else if (strcmp(kind, "filter_error") == 0) {
		fputs("trace: -f ", stderr);
		cli_put_safe(stderr, cli_jstr(ev, "filter", "?"));
		fputs(" failed (calls it fails on are not shown): ", stderr);
		cli_put_safe(stderr, cli_jstr(ev, "message", "?"));
		fputc('\n', stderr);
	} else {
		fputs("trace: a hook failed inside the target (the call itself went on "
		      "unaffected): ",
		      stderr);
		cli_put_safe(stderr, cli_jstr(ev, "message", "?"));
		fputc('\n', stderr);
	}
	fflush(stderr);
}

static int on_event(void *ud, const json_t *ev)
{
	struct trace_out *w = ud;
	if (w->ctx->g.json) {
		cli_print_json(stdout, ev);
	} else if (!cli_agent_generic_event(w->ctx, ev)) {
		const char *kind = cli_jstr(ev, "event", "");
		if (strcmp(kind, "trace") == 0)
			print_trace(w, ev);
		else if (strcmp(kind, "tracing") == 0 || strcmp(kind, "dropped") == 0 ||
			 strcmp(kind, "filter_error") == 0 || strcmp(kind, "hook_error") == 0)
			notice(w, ev);
	}
	fflush(stdout);
	return 0;
}

static int trace_run(struct cli_ctx *ctx, json_t *args)
{
	struct trace_out w = {.ctx = ctx, .tty = isatty(STDOUT_FILENO)};
	return cli_timeout_end(ctx, "trace",
			       cli_request_drain(ctx, "trace", ctx->pid, args, on_event, &w));
}

const struct cli_agent_cmd cli_agent_trace = {
    .opts = trace_opts,
    .min_pos = 2,
    .max_pos = 3,
    .pos_usage = "module [class] method",
    .run = trace_run,
};
