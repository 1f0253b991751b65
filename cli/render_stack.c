/*
 * Text of `stack` (SPEC §3), one event at a time so that a thread prints as
 * soon as it arrives.  Events, frames outermost first (see daemon/stack.c):
 *   {"event":"process","pid":P,"version":"3.11.7","exe":"...","binary":"..."}
 *   {"event":"thread","tid":T,"name":"MainThread","state":"holding GIL",
 *    "truncated":0,"error":null,"frames":[...]}
 */
#include <string.h>

#include "cli.h"
#include "fp/proto.h"

static void render_process(struct cli_stack_render *r, const json_t *ev)
{
	fprintf(r->out, "Process %lld: ", (long long)cli_jint(ev, "pid", 0));
	cli_put_safe(r->out, cli_jstr(ev, "exe", "???"));
	fputs("\nPython v", r->out);
	cli_put_safe(r->out, cli_jstr(ev, "version", "???"));
	fputs(" (", r->out);
	cli_put_safe(r->out, cli_jstr(ev, "binary", "???"));
	fputs(")\n\n", r->out);
}

static void render_locals(struct cli_stack_render *r, const json_t *locals)
{
	if (json_array_size(locals) == 0)
		return;
	fputs("        Locals:\n", r->out);
	size_t i;
	const json_t *l;
	json_array_foreach(locals, i, l)
	{
		fputs("            ", r->out);
		cli_put_safe(r->out, cli_jstr(l, "name", "???"));
		fputs(" = ", r->out);
		cli_put_safe(r->out, cli_jstr(l, "repr", "???"));
		putc('\n', r->out);
	}
}

static void render_frame(struct cli_stack_render *r, const json_t *f)
{
	bool native = strcmp(cli_jstr(f, "kind", ""), "native") == 0;
	if (native)
		fprintf(r->out, "    %s(C) File \"", CLI_SGR(r->color, CLI_DIM));
	else
		fputs("    (Python) File \"", r->out);
	cli_put_safe(r->out, cli_jstr(f, "file", "???"));
	fprintf(r->out, "\", line %lld, in ", (long long)cli_jint(f, "line", 0));
	if (native) {
		cli_put_safe(r->out, cli_jstr(f, "func", "??"));
		fputs(" (", r->out);
		cli_put_safe(r->out, cli_jstr(f, "library", "???"));
		fprintf(r->out, ")%s\n", CLI_SGR(r->color, CLI_RESET));
		return;
	}
	fprintf(r->out, "%s", CLI_SGR(r->color, CLI_BOLD));
	cli_put_safe(r->out, cli_jstr(f, "func", "???"));
	fprintf(r->out, "%s\n", CLI_SGR(r->color, CLI_RESET));
	const char *src = cli_jstr(f, "source", NULL);
	if (src) {
		fputs("        ", r->out);
		cli_put_safe(r->out, src);
		putc('\n', r->out);
	}
	render_locals(r, json_object_get(f, "locals"));
}

static void render_thread(struct cli_stack_render *r, const json_t *ev)
{
	if (r->threads++)
		putc('\n', r->out);
	fprintf(r->out, "%sTraceback for thread %lld ", CLI_SGR(r->color, CLI_BOLD),
		(long long)cli_jint(ev, "tid", 0));
	const char *name = cli_jstr(ev, "name", NULL);
	if (name) {
		putc('(', r->out);
		cli_put_safe(r->out, name);
		fputs(") ", r->out);
	}
	putc('[', r->out);
	cli_put_safe(r->out, cli_jstr(ev, "state", "unknown"));
	fprintf(r->out, "] (most recent call last):%s\n", CLI_SGR(r->color, CLI_RESET));

	json_int_t cut = cli_jint(ev, "truncated", 0);
	if (cut > 0)
		fprintf(r->out,
			"    ... %lld older frames not shown (stack deeper than %d frames)\n",
			(long long)cut, FP_STACK_MAX_FRAMES);
	size_t i;
	const json_t *f;
	json_array_foreach(json_object_get(ev, "frames"), i, f)
	{
		render_frame(r, f);
	}
	const char *err = cli_jstr(ev, "error", NULL);
	if (err) {
		fprintf(r->out, "    %s(error: ", CLI_SGR(r->color, CLI_RED));
		cli_put_safe(r->out, err);
		fprintf(r->out, ")%s\n", CLI_SGR(r->color, CLI_RESET));
	}
}

void cli_render_stack_event(struct cli_stack_render *r, const json_t *ev)
{
	const char *kind = cli_jstr(ev, "event", "");
	if (strcmp(kind, "process") == 0)
		render_process(r, ev);
	else if (strcmp(kind, "thread") == 0)
		render_thread(r, ev);
}
