/*
 * `reload module [class] method [-v]`: agent/py/reload.py recompiles the
 * function from its file and swaps the code in; this says what changed.
 */
#include <string.h>

#include "agentcmd.h"

static const struct cli_opt_spec reload_opts[] = {
    {"verbose", "-v", "--verbose", CLI_OPT_FLAG, 0, 0, NULL},
    {NULL, NULL, NULL, CLI_OPT_FLAG, 0, 0, NULL},
};

static void put_names(const char *what, const json_t *names)
{
	if (!json_array_size(names))
		return;
	printf("  %s: ", what);
	size_t i;
	json_t *n;
	json_array_foreach(names, i, n)
	{
		if (i)
			fputs(", ", stdout);
		cli_put_safe(stdout, json_string_value(n) ? json_string_value(n) : "?");
	}
	fputc('\n', stdout);
}

static int render_reload(struct cli_ctx *ctx, const json_t *ev, void *state)
{
	(void)state;
	if (strcmp(cli_jstr(ev, "event", ""), "reload") != 0)
		return 0;
	const char *role = cli_jstr(ev, "role", "function");
	const char *what = strcmp(role, "fget") == 0   ? "the getter of "
			   : strcmp(role, "fset") == 0 ? "the setter of "
			   : strcmp(role, "fdel") == 0 ? "the deleter of "
						       : "";
	json_int_t first = cli_jint(ev, "first_line", 0), last = cli_jint(ev, "last_line", 0);
	json_int_t old = cli_jint(ev, "old_first_line", 0);
	printf("%sReloaded%s %s", CLI_SGR(ctx->color, CLI_BOLD), CLI_SGR(ctx->color, CLI_RESET),
	       what);
	cli_put_safe(stdout, cli_jstr(ev, "target", "?"));
	fputs(" from ", stdout);
	cli_put_safe(stdout, cli_jstr(ev, "file", "?"));
	printf(":%lld-%lld", (long long)first, (long long)last);
	if (old != first)
		printf(" (the running code was at line %lld)", (long long)old);
	fputc('\n', stdout);
	size_t i;
	json_t *note;
	json_array_foreach(json_object_get(ev, "notes"), i, note)
	{
		fputs("  note: ", stdout);
		cli_put_safe(stdout, json_string_value(note) ? json_string_value(note) : "?");
		fputc('\n', stdout);
	}
	put_names("now also uses", json_object_get(ev, "names_added"));
	put_names("no longer uses", json_object_get(ev, "names_removed"));
	const char *source = cli_jstr(ev, "source", NULL);
	if (source) {
		/* The source as it is in the file: its own indentation, line by line. */
		fputs("Source:\n", stdout);
		cli_print_lines(stdout, source, 0);
	}
	return 0;
}

const struct cli_agent_cmd cli_agent_reload = {
    .opts = reload_opts,
    .min_pos = 2,
    .max_pos = 3,
    .pos_usage = "module [class] method",
    .render = render_reload,
};
