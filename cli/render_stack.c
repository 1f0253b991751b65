/*
 * Text of `stack` (SPEC §3), one event at a time so that a thread prints as
 * soon as it arrives.  Events, frames outermost first (see daemon/stack.c):
 *   {"event":"process","pid":P,"version":"3.11.7","exe":"...","binary":"...",
 *    "note":null}
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
	fputs(")\n", r->out);
	const char *note = cli_jstr(ev, "note", NULL);
	if (note) {
		fprintf(r->out, "%s(note: ", CLI_SGR(r->color, CLI_RED));
		cli_put_safe(r->out, note);
		fprintf(r->out, ")%s\n", CLI_SGR(r->color, CLI_RESET));
	}
	putc('\n', r->out);
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

/* ---- stack -a: asyncio tasks per event loop (events of agent/py/asyncio_tasks.py) ---- */

static void render_task_ref(struct cli_stack_render *r, const json_t *t)
{
	const char *name = cli_jstr(t, "name", NULL);
	if (!name) {
		fprintf(r->out, "Task at 0x%llx", (unsigned long long)cli_jint(t, "id", 0));
		return;
	}
	fputs("Task \"", r->out);
	cli_put_safe(r->out, name);
	putc('"', r->out);
}

static void render_future_ref(struct cli_stack_render *r, const json_t *f)
{
	cli_put_safe(r->out, cli_jstr(f, "type", "Future"));
	fputs(" [", r->out);
	cli_put_safe(r->out, cli_jstr(f, "state", "?"));
	putc(']', r->out);
}

static void render_waiting(struct cli_stack_render *r, const json_t *task)
{
	const json_t *w = json_object_get(task, "waiting");
	const char *state = cli_jstr(task, "state", "");
	const char *kind = cli_jstr(w, "kind", "");
	if (!json_is_object(w)) {
		if (strcmp(state, "running") == 0)
			fputs("    running now\n", r->out);
		else if (strncmp(state, "pending", 7) == 0)
			fputs("    ready to run\n", r->out);
		return;
	}
	fputs("    awaiting ", r->out);
	if (strcmp(kind, "task") == 0) {
		render_task_ref(r, w);
	} else if (strcmp(kind, "gather") == 0) {
		fputs("gather of ", r->out);
		size_t i;
		const json_t *c;
		json_array_foreach(json_object_get(w, "children"), i, c)
		{
			fputs(i ? ", " : "", r->out);
			if (strcmp(cli_jstr(c, "kind", ""), "task") == 0)
				render_task_ref(r, c);
			else
				render_future_ref(r, c);
		}
	} else {
		render_future_ref(r, w);
	}
	putc('\n', r->out);
}

static void render_task(struct cli_stack_render *r, const json_t *t)
{
	fprintf(r->out, "\n%s", CLI_SGR(r->color, CLI_BOLD));
	render_task_ref(r, t);
	fputs(" [", r->out);
	cli_put_safe(r->out, cli_jstr(t, "state", "?"));
	fputs("]", r->out);
	const char *coro = cli_jstr(t, "coro", NULL);
	if (coro) {
		fputs(" coroutine ", r->out);
		cli_put_safe(r->out, coro);
	}
	const json_t *by = json_object_get(t, "awaited_by");
	size_t i;
	const json_t *x;
	json_array_foreach(by, i, x)
	{
		fputs(i ? ", " : ", awaited by ", r->out);
		render_task_ref(r, x);
	}
	const json_t *frames = json_object_get(t, "frames");
	fprintf(r->out, "%s%s\n", json_array_size(frames) ? " (most recent await last):" : "",
		CLI_SGR(r->color, CLI_RESET));
	json_array_foreach(frames, i, x)
	{
		render_frame(r, x);
	}
	render_waiting(r, t);
}

void cli_render_async_event(struct cli_stack_render *r, const json_t *ev)
{
	const char *kind = cli_jstr(ev, "event", "");
	if (strcmp(kind, "async_none") == 0) {
		cli_put_safe(r->out, cli_jstr(ev, "reason", "no asyncio event loop"));
		fputs(".\n", r->out);
		return;
	}
	if (strcmp(kind, "async_loop") != 0)
		return;
	if (r->threads++)
		putc('\n', r->out);
	const json_t *tasks = json_object_get(ev, "tasks");
	fprintf(r->out, "%sEvent loop ", CLI_SGR(r->color, CLI_BOLD));
	cli_put_safe(r->out, cli_jstr(ev, "loop_type", "?"));
	fputs(" at ", r->out);
	cli_put_safe(r->out, cli_jstr(ev, "loop_id", "?"));
	json_int_t tid = cli_jint(ev, "thread_id", 0), ident = cli_jint(ev, "thread_ident", 0);
	if (json_is_true(json_object_get(ev, "running")) && tid) {
		fprintf(r->out, ", running in thread %lld (", (long long)tid);
		cli_put_safe(r->out, cli_jstr(ev, "thread_name", "?"));
		putc(')', r->out);
	} else if (json_is_true(json_object_get(ev, "running")) && ident) {
		/* Before 3.8 Python does not know the thread's system id. */
		fputs(", running in thread ", r->out);
		cli_put_safe(r->out, cli_jstr(ev, "thread_name", "?"));
		fprintf(r->out, " (Python ident %lld)", (long long)ident);
	} else {
		fputs(json_is_true(json_object_get(ev, "closed")) ? ", closed" : ", not running",
		      r->out);
	}
	fprintf(r->out, ": %zu task%s%s\n", json_array_size(tasks),
		json_array_size(tasks) == 1 ? "" : "s", CLI_SGR(r->color, CLI_RESET));
	size_t i;
	const json_t *t;
	json_array_foreach(tasks, i, t)
	{
		render_task(r, t);
	}
}
