/*
 * `getglobal module [class] field [-e E] [-x N] [-r] [-v]`: the helper
 * (agent/py/getglobal.py) finds and renders the value; this prints it.
 */
#include <string.h>

#include "agentcmd.h"

static const struct cli_opt_spec getglobal_opts[] = {
    {"expr", "-e", "--expr", CLI_OPT_STR, 0, 0, NULL},
    {"expand", "-x", "--expand", CLI_OPT_INT, 1, 4, "1 to 4"},
    {"raw", "-r", "--raw", CLI_OPT_FLAG, 0, 0, NULL},
    {"verbose", "-v", "--verbose", CLI_OPT_FLAG, 0, 0, NULL},
    {NULL, NULL, NULL, CLI_OPT_FLAG, 0, 0, NULL},
};

static int render_getglobal(struct cli_ctx *ctx, const json_t *ev, void *state)
{
	(void)state;
	if (strcmp(cli_jstr(ev, "event", ""), "value") == 0)
		cli_print_value(stdout, ctx->color, ev);
	return 0;
}

const struct cli_agent_cmd cli_agent_getglobal = {
    .opts = getglobal_opts,
    .min_pos = 2,
    .max_pos = 3,
    .pos_usage = "module [class] field",
    .render = render_getglobal,
};
