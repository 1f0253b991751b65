/*
 * Helper commands: option tables checked here, requests sent through fpd,
 * events handed to each command's renderer.
 */
#include "agentcmd.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* "-1" is a value (vmtool -n -1), not an option. */
static bool is_option(const char *a)
{
	if (a[0] != '-' || !a[1])
		return false;
	char *end;
	strtod(a, &end);
	return *end != '\0';
}

/* The spec entry argv word a names; *inline_val points after '=' for --long=value. */
static const struct cli_opt_spec *find_opt(const struct cli_opt_spec *opts, const char *a,
					   const char **inline_val)
{
	*inline_val = NULL;
	for (const struct cli_opt_spec *o = opts; o && o->key; o++) {
		if (o->shrt && strcmp(a, o->shrt) == 0)
			return o;
		if (!o->lng)
			continue;
		size_t n = strlen(o->lng);
		if (strncmp(a, o->lng, n) == 0 && (a[n] == '\0' || a[n] == '=')) {
			if (a[n] == '=')
				*inline_val = a + n + 1;
			return o;
		}
	}
	return NULL;
}

static const char *opt_name(const struct cli_opt_spec *o)
{
	return o->lng ? o->lng : o->shrt;
}

static int parse_value(const char *cmd, const struct cli_opt_spec *o, const char *val, json_t *args,
		       struct cli_error *err)
{
	json_t *v;
	if (o->kind == CLI_OPT_STR) {
		v = json_string(val);
	} else {
		char *end;
		errno = 0;
		double d = strtod(val, &end);
		bool bad = end == val || *end || errno || !isfinite(d);
		if (!bad && o->kind == CLI_OPT_INT && d != floor(d))
			bad = true;
		if (!bad && o->min < o->max && (d < o->min || d > o->max))
			bad = true;
		if (bad)
			return cli_usage_error(
			    err, cmd, "%s: %s takes %s%s%s, not '%.60s'", cmd, opt_name(o),
			    o->kind == CLI_OPT_INT ? "a whole number" : "a number",
			    o->range ? " from " : "", o->range ? o->range : "", val);
		v = o->kind == CLI_OPT_INT ? json_integer((json_int_t)d) : json_real(d);
	}
	if (!v || json_object_set_new(args, o->key, v))
		return cli_usage_error(err, cmd, "%s: out of memory", cmd);
	return 0;
}

static int parse_into(const struct cli_command *def, int argc, char *const argv[], json_t *args,
		      json_t *pos, struct cli_error *err)
{
	const struct cli_agent_cmd *a = def->agent;
	const char *cmd = def->name;
	int npos = 0;
	for (int i = 1; i < argc; i++) {
		const char *w = argv[i];
		if (strcmp(w, "--json") == 0)
			continue;
		if (!is_option(w)) {
			if (npos == a->max_pos && a->max_pos == 0)
				return cli_usage_error(
				    err, cmd, "%s takes no arguments, not '%.60s'", cmd, w);
			if (npos == a->max_pos)
				return cli_usage_error(
				    err, cmd, "%s: unexpected argument '%.60s' (usage: %s %s)", cmd,
				    w, cmd, a->pos_usage ? a->pos_usage : "");
			npos++;
			if (json_array_append_new(pos, json_string(w)))
				return cli_usage_error(err, cmd, "%s: out of memory", cmd);
			continue;
		}
		const char *val;
		const struct cli_opt_spec *o = find_opt(a->opts, w, &val);
		if (!o) {
			if (strncmp(w, "--socket", 8) == 0 || strncmp(w, "--timeout", 9) == 0)
				return cli_usage_error(
				    err, cmd,
				    "%s: %.40s is fpctl's own option and goes before the "
				    "command",
				    cmd, w);
			return cli_usage_error(err, cmd, "%s: unknown option '%.60s'", cmd, w);
		}
		if (o->kind == CLI_OPT_FLAG) {
			if (val)
				return cli_usage_error(err, cmd, "%s: %s takes no value", cmd,
						       opt_name(o));
			json_object_set_new(args, o->key, json_true());
			continue;
		}
		if (!val) {
			if (i + 1 >= argc)
				return cli_usage_error(err, cmd, "%s: %s needs a value", cmd,
						       opt_name(o));
			val = argv[++i];
		}
		int rc = parse_value(cmd, o, val, args, err);
		if (rc)
			return rc;
	}
	if (npos < a->min_pos)
		return cli_usage_error(err, cmd, "%s: missing arguments (usage: %s %s)", cmd, cmd,
				       a->pos_usage ? a->pos_usage : "");
	if (json_object_set(args, "argv", pos))
		return cli_usage_error(err, cmd, "%s: out of memory", cmd);
	return a->check ? a->check(args, err) : 0;
}

int cli_agent_parse(const struct cli_command *def, int argc, char *const argv[], json_t *args,
		    struct cli_error *err)
{
	json_t *out = args ? json_incref(args) : json_object();
	json_t *pos = json_array();
	int rc = out && pos ? parse_into(def, argc, argv, out, pos, err)
			    : cli_usage_error(err, def->name, "%s: out of memory", def->name);
	json_decref(pos);
	json_decref(out);
	return rc;
}

struct agent_run {
	struct cli_ctx *ctx;
	const struct cli_agent_cmd *a;
	void *state;
};

bool cli_agent_generic_event(struct cli_ctx *ctx, const json_t *ev)
{
	const char *kind = cli_jstr(ev, "event", "");
	if (strcmp(kind, "agent") == 0)
		return true; /* attach progress: only --json shows it */
	if (strcmp(kind, "gil_wait") != 0)
		return false;
	const char *pfx = ctx->shell ? "" : "fpctl: ";
	if (cli_jint(ev, "tid", 0) == 0) {
		fprintf(stderr,
			"%swaiting for the interpreter: no thread holds the GIL now (a process "
			"that has not run Python code since, or CPython 3.6 before its first "
			"thread); Ctrl-C cancels\n",
			pfx);
		fflush(stderr);
		return true;
	}
	fprintf(stderr, "%swaiting for the GIL, held by thread %lld (", pfx,
		(long long)cli_jint(ev, "tid", 0));
	cli_put_safe(stderr, cli_jstr(ev, "name", "?"));
	fputs(")", stderr);
	json_t *frames = json_object_get(ev, "frames");
	if (json_array_size(frames)) {
		fputs(" in:\n", stderr);
		size_t i;
		json_t *f;
		json_array_foreach(frames, i, f)
		{
			fputs("    ", stderr);
			cli_put_safe(stderr, cli_jstr(f, "text", "?"));
			fputc('\n', stderr);
		}
	} else {
		fputc('\n', stderr);
	}
	fputs("  (the command runs once the GIL is released; Ctrl-C cancels it)\n", stderr);
	fflush(stderr);
	return true;
}

static int on_event(void *ud, const json_t *ev)
{
	struct agent_run *r = ud;
	if (r->ctx->g.json) {
		cli_print_json(stdout, ev);
		fflush(stdout);
		return 0;
	}
	if (cli_agent_generic_event(r->ctx, ev))
		return 0;
	int rc = r->a->render ? r->a->render(r->ctx, ev, r->state) : 0;
	fflush(stdout);
	return rc;
}

int cli_cmd_agent(struct cli_ctx *ctx, const struct cli_cmd *cmd)
{
	const struct cli_command *def = cmd->def;
	struct cli_error err;
	json_t *args = json_object();
	if (!args)
		return cli_fail(ctx, 1, "memory", "%s: out of memory", def->name);
	if (cli_agent_parse(def, cmd->u.agent.argc, cmd->u.agent.argv, args, &err)) {
		json_decref(args);
		return cli_usage_fail(ctx, &err);
	}
	struct cli_ctx c = *ctx;
	c.g.json = ctx->g.json || cmd->json;
	if (def->agent->run)
		return def->agent->run(&c, args);
	struct agent_run r = {.ctx = &c, .a = def->agent};
	return cli_request(&c, def->name, ctx->pid, args, on_event, &r);
}
