/*
 * `gilstat on|off`: request and render (daemon/gil.c documents the events).
 *
 * `on` runs in the foreground: a table per interval, a line per warning as it
 * arrives, until Ctrl-C, --timeout or the target's exit; each event is
 * flushed at once so that a pipe sees it live.  `off` stops the gilstats of
 * the attached process that other sessions run.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

struct gilstat_state {
	struct cli_ctx *ctx;
	pid_t pid;
};

static double jnum(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_number(v) ? json_number_value(v) : 0;
}

static void render_start(const struct gilstat_state *s, const json_t *ev)
{
	FILE *o = stdout;
	fprintf(o, "gilstat on process %d (Python %s, ", (int)s->pid, cli_jstr(ev, "version", "?"));
	cli_put_safe(o, cli_jstr(ev, "binary", "?"));
	fprintf(o, "): GIL probes placed from %s; Ctrl-C stops\n", cli_jstr(ev, "symbols", "?"));
	const char *note = cli_jstr(ev, "note", NULL);
	if (note)
		fprintf(o, "note: %s\n", note);
}

static void render_report(const struct gilstat_state *s, const json_t *ev)
{
	FILE *o = stdout;
	bool color = s->ctx->color;
	json_t *threads = json_object_get(ev, "threads");
	fprintf(o, "%s-- %.1f s, %.1f GIL switches/s%s\n", CLI_SGR(color, CLI_BOLD),
		jnum(ev, "interval_s"), jnum(ev, "switches_per_s"), CLI_SGR(color, CLI_RESET));
	if (!json_array_size(threads)) {
		fprintf(o, "no thread took or dropped the GIL\n");
	} else {
		fprintf(o, "%8s  %-16s %7s %10s %9s %10s %9s %7s\n", "TID", "NAME", "TAKES",
			"WAIT ms", "AVG ms", "HOLD ms", "AVG ms", "DROPS");
		size_t i;
		json_t *t;
		json_array_foreach(threads, i, t)
		{
			char name[17];
			snprintf(name, sizeof(name), "%s", cli_jstr(t, "name", "?"));
			fprintf(o, "%8lld  ", (long long)cli_jint(t, "tid", 0));
			cli_put_safe(o, name);
			fprintf(o, "%*s %7lld %10.1f %9.2f %10.1f %9.2f %7lld\n",
				(int)(16 - strlen(name)), "", (long long)cli_jint(t, "takes", 0),
				jnum(t, "wait_total_ms"), jnum(t, "wait_avg_ms"),
				jnum(t, "hold_total_ms"), jnum(t, "hold_avg_ms"),
				(long long)cli_jint(t, "drops", 0));
		}
	}
	json_int_t omitted = cli_jint(ev, "threads_omitted", 0);
	if (omitted)
		fprintf(o, "(%lld more threads)\n", (long long)omitted);
	json_int_t lost = cli_jint(ev, "warnings_lost", 0);
	if (lost)
		fprintf(o, "(%lld more warnings not shown)\n", (long long)lost);
	json_int_t unseen = cli_jint(ev, "releases_unseen", 0);
	if (unseen)
		fprintf(o,
			"%swarning: %lld GIL releases passed no probe (their holds are not "
			"counted): the probes miss a release path of this interpreter build%s\n",
			CLI_SGR(color, CLI_RED), (long long)unseen, CLI_SGR(color, CLI_RESET));
	const char *cost = cli_jstr(ev, "cost_warning", NULL);
	if (cost)
		fprintf(o, "%swarning: %s%s\n", CLI_SGR(color, CLI_RED), cost,
			CLI_SGR(color, CLI_RESET));
}

static void render_warning(const struct gilstat_state *s, const json_t *ev)
{
	FILE *o = stdout;
	bool wait = strcmp(cli_jstr(ev, "kind", ""), "wait") == 0;
	fprintf(o, "%sWARN%s thread %lld (", CLI_SGR(s->ctx->color, CLI_RED),
		CLI_SGR(s->ctx->color, CLI_RESET), (long long)cli_jint(ev, "tid", 0));
	cli_put_safe(o, cli_jstr(ev, "name", "?"));
	fprintf(o, ") %s %.2f ms (threshold %g ms), %lld..%lld ns\n",
		wait ? "waited for the GIL" : "held the GIL", jnum(ev, "ms"),
		jnum(ev, "threshold_ms"), (long long)cli_jint(ev, "start_ns", 0),
		(long long)cli_jint(ev, "end_ns", 0));
}

static int on_event(void *ud, const json_t *ev)
{
	struct gilstat_state *s = ud;
	const char *kind = cli_jstr(ev, "event", "");
	if (s->ctx->g.json) {
		cli_print_json(stdout, ev);
	} else if (strcmp(kind, "gilstat_start") == 0) {
		render_start(s, ev);
	} else if (strcmp(kind, "gilstat") == 0) {
		render_report(s, ev);
	} else if (strcmp(kind, "gil_warning") == 0) {
		render_warning(s, ev);
	} else if (strcmp(kind, "gilstat_stopped") == 0) {
		const char *why = cli_jstr(ev, "reason", "");
		printf("gilstat stopped: %s\n", strcmp(why, "exited") == 0 ? "the target exited"
						: strcmp(why, "off") == 0
						    ? "'gilstat off' from another session"
						    : "cancelled");
	} else if (strcmp(kind, "gilstat_off") == 0) {
		json_int_t n = cli_jint(ev, "stopped", 0);
		if (n)
			printf("stopped %lld gilstat%s on process %d\n", (long long)n,
			       n == 1 ? "" : "s", (int)s->pid);
		else
			printf("no gilstat was running on process %d\n", (int)s->pid);
	}
	fflush(stdout);
	return 0;
}

int cli_cmd_gilstat(struct cli_ctx *ctx, const struct cli_cmd *cmd)
{
	struct gilstat_state s = {.ctx = ctx, .pid = ctx->pid};
	json_t *args = json_object();
	if (!args)
		return cli_fail(ctx, 1, "memory", "gilstat: out of memory");
	if (cmd->u.gilstat.off) {
		json_object_set_new(args, "off", json_true());
	} else {
		/* Unset values stay out of the request: the daemon's defaults apply. */
		if (cmd->u.gilstat.take_ms >= 0)
			json_object_set_new(args, "take_ms", json_real(cmd->u.gilstat.take_ms));
		if (cmd->u.gilstat.hold_ms >= 0)
			json_object_set_new(args, "hold_ms", json_real(cmd->u.gilstat.hold_ms));
		if (cmd->u.gilstat.interval_s >= 0)
			json_object_set_new(args, "interval_s",
					    json_real(cmd->u.gilstat.interval_s));
		json_object_set_new(args, "max_threads", json_integer(cmd->u.gilstat.max_threads));
	}
	return cli_request(ctx, "gilstat", ctx->pid, args, on_event, &s);
}
