/*
 * `module FILEPATH`: the names under which the target loaded a source file
 * (agent/py/module.py resolves the path in the target's filesystem).
 */
#include <string.h>

#include "agentcmd.h"

static const struct cli_opt_spec module_opts[] = {
    {NULL, NULL, NULL, CLI_OPT_FLAG, 0, 0, NULL},
};

static int render_module(struct cli_ctx *ctx, const json_t *ev, void *state)
{
	(void)state;
	if (strcmp(cli_jstr(ev, "event", ""), "module") != 0)
		return 0;
	const char *file = cli_jstr(ev, "file", "");
	json_t *mods = json_object_get(ev, "modules");
	if (!json_array_size(mods)) {
		cli_put_safe(stdout, cli_jstr(ev, "path", "?"));
		fputs(" is not imported in target process.\n", stdout);
		if (!json_is_true(json_object_get(ev, "exists"))) {
			fprintf(stderr, "%snote: the target sees no file ",
				ctx->shell ? "" : "fpctl: ");
			cli_put_safe(stderr, file);
			fputs(" (relative paths start at its working directory, ", stderr);
			cli_put_safe(stderr, cli_jstr(ev, "cwd", "?"));
			fputs(")\n", stderr);
		}
		return 0;
	}
	size_t i;
	json_t *m;
	json_array_foreach(mods, i, m)
	{
		const char *mfile = cli_jstr(m, "file", "");
		cli_put_safe(stdout, cli_jstr(m, "name", "?"));
		/* A match by path suffix may be another file than the one asked for. */
		if (strcmp(mfile, file) != 0) {
			fputs("  (", stdout);
			cli_put_safe(stdout, mfile);
			fputc(')', stdout);
		}
		fputc('\n', stdout);
	}
	return 0;
}

const struct cli_agent_cmd cli_agent_module = {
    .opts = module_opts,
    .min_pos = 1,
    .max_pos = 1,
    .pos_usage = "FILEPATH",
    .render = render_module,
};
