/*
 * `vmtool -a getInstances -c "module class" [-e E] [-x N] [-n N] [-r] [-v]`
 * and `vmtool -a forceGc` (agent/py/vmtool.py).
 */
#include <string.h>

#include "agentcmd.h"

static const struct cli_opt_spec vmtool_opts[] = {
    {"action", "-a", "--action", CLI_OPT_STR, 0, 0, NULL},
    {"class", "-c", "--class", CLI_OPT_STR, 0, 0, NULL},
    {"expr", "-e", "--expr", CLI_OPT_STR, 0, 0, NULL},
    {"expand", "-x", "--expand", CLI_OPT_INT, 1, 4, "1 to 4"},
    /* -1 (all) or a positive number: checked by vmtool_check. */
    {"limits", "-n", "--limits", CLI_OPT_INT, 0, 0, NULL},
    {"raw", "-r", "--raw", CLI_OPT_FLAG, 0, 0, NULL},
    {"verbose", "-v", "--verbose", CLI_OPT_FLAG, 0, 0, NULL},
    {NULL, NULL, NULL, CLI_OPT_FLAG, 0, 0, NULL},
};

static int check_fail(struct cli_error *err, const char *msg)
{
	snprintf(err->msg, sizeof(err->msg), "vmtool: %s", msg);
	err->topic = "vmtool";
	return 2;
}

static size_t count_words(const char *s)
{
	size_t n = 0;
	for (const char *p = s; *p;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		n++;
		while (*p && *p != ' ' && *p != '\t')
			p++;
	}
	return n;
}

static int vmtool_check(const json_t *args, struct cli_error *err)
{
	const char *action = cli_jstr(args, "action", NULL);
	size_t npos = json_array_size(json_object_get(args, "argv"));
	if (!action)
		return check_fail(err, "-a is required: -a getInstances or -a forceGc");
	if (strcmp(action, "forceGc") == 0) {
		static const char *const others[] = {"class",  "expr", "expand",
						     "limits", "raw",  "verbose"};
		for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
			if (json_object_get(args, others[i]))
				return check_fail(err, "-a forceGc takes no other option");
		return npos ? check_fail(err, "-a forceGc takes no argument") : 0;
	}
	if (strcmp(action, "getInstances") != 0) {
		snprintf(err->msg, sizeof(err->msg),
			 "vmtool: -a takes getInstances or forceGc, not '%.60s'", action);
		err->topic = "vmtool";
		return 2;
	}
	const char *cls = cli_jstr(args, "class", NULL);
	if (!cls)
		return check_fail(err, "getInstances needs -c \"module class\"");
	/* -c "module class", or -c module class as the reference tool spells it. */
	if (count_words(cls) + npos != 2 || count_words(cls) == 0)
		return check_fail(err, "-c takes \"module class\" (the module and the class, "
				       "quoted as one argument)");
	json_t *n = json_object_get(args, "limits");
	if (n && (json_integer_value(n) == 0 || json_integer_value(n) < -1))
		return check_fail(err, "-n takes a positive number, or -1 for all instances");
	return 0;
}

static void render_gc(const json_t *ev)
{
	json_int_t n = cli_jint(ev, "collected", 0);
	json_int_t bad = cli_jint(ev, "uncollectable", 0);
	printf("Garbage collection done: %lld unreachable object%s found", (long long)n,
	       n == 1 ? "" : "s");
	if (bad)
		printf(", %lld of them uncollectable (left in gc.garbage)\n", (long long)bad);
	else
		printf(" and freed\n");
}

static void render_instances(struct cli_ctx *ctx, const json_t *ev)
{
	json_int_t total = cli_jint(ev, "total", 0);
	json_int_t count = cli_jint(ev, "count", 0);
	char line[512];
	snprintf(line, sizeof(line), "%lld live instance%s of %s", (long long)total,
		 total == 1 ? "" : "s", cli_jstr(ev, "class", "?"));
	if (count < total) {
		size_t len = strlen(line);
		snprintf(line + len, sizeof(line) - len, " (first %lld taken; -n -1 takes all)",
			 (long long)count);
	}
	cli_print_labelled(stdout, ctx->color, "COUNT", line);
	cli_print_value(stdout, ctx->color, ev);
}

static int render_vmtool(struct cli_ctx *ctx, const json_t *ev, void *state)
{
	(void)state;
	const char *kind = cli_jstr(ev, "event", "");
	if (strcmp(kind, "gc") == 0)
		render_gc(ev);
	else if (strcmp(kind, "instances") == 0)
		render_instances(ctx, ev);
	return 0;
}

const struct cli_agent_cmd cli_agent_vmtool = {
    .opts = vmtool_opts,
    .min_pos = 0,
    .max_pos = 1,
    .pos_usage = "-a getInstances -c \"module class\" | -a forceGc",
    .render = render_vmtool,
    .check = vmtool_check,
};
