/*
 * Running a parsed attach command, in the shell or one-shot.
 */
#include "agentcmd.h"
#include "cli.h"

int cli_exec(struct cli_ctx *ctx, const struct cli_cmd *cmd)
{
	if (cmd->def->state == CLI_PLANNED)
		return cli_planned_fail(ctx, cmd->def->name);
	switch (cmd->def->id) {
	case CLI_CMD_HELP: {
		struct cli_error err;
		if (cli_help_topic(stdout, cmd->u.help_topic, CLI_SHELL, ctx->color, &err))
			return cli_usage_fail(ctx, &err);
		return 0;
	}
	case CLI_CMD_STACK: {
		struct cli_ctx c = *ctx;
		c.g.json = ctx->g.json || cmd->json;
		return cli_cmd_stack(&c, cmd);
	}
	case CLI_CMD_PERF: {
		struct cli_ctx c = *ctx;
		c.g.json = ctx->g.json || cmd->json;
		return cli_cmd_perf(&c, cmd);
	}
	case CLI_CMD_GILSTAT: {
		struct cli_ctx c = *ctx;
		c.g.json = ctx->g.json || cmd->json;
		return cli_cmd_gilstat(&c, cmd);
	}
	case CLI_CMD_TOP: {
		struct cli_ctx c = *ctx;
		c.g.json = ctx->g.json || cmd->json;
		return cli_cmd_top(&c, cmd);
	}
	case CLI_CMD_AGENT:
		return cli_cmd_agent(ctx, cmd);
	default:
		return cli_fail(ctx, 2, "usage", "'%s' works only in the interactive shell",
				cmd->def->name);
	}
}
