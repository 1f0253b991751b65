/*
 * fpctl: the client of fpd.  See `fpctl help` and SPEC §1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli.h"
#include "fp/proto.h"
#include "fp/version.h"

/* Whether the command needs fpd at all; help and planned commands do not. */
static bool needs_daemon(const struct cli_invocation *inv)
{
	switch (inv->action) {
	case CLI_ACT_PS:
	case CLI_ACT_STATUS:
	case CLI_ACT_SHELL:
		return true;
	case CLI_ACT_DETACH:
		return true;
	case CLI_ACT_RUN:
		if (inv->cmd.def->state != CLI_AVAILABLE)
			return false;
		switch (inv->cmd.def->id) {
		case CLI_CMD_GILSTAT:
		case CLI_CMD_PERF:
		case CLI_CMD_TOP:
		case CLI_CMD_STACK:
		case CLI_CMD_AGENT:
			return true;
		default:
			return false;
		}
	default:
		return false;
	}
}

int main(int argc, char **argv)
{
	/* Scripts read the output as it comes, also through a pipe. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	struct cli_invocation inv;
	struct cli_error err;
	int rc = cli_parse_argv(argc, argv, &inv, &err);
	const char *no_color = getenv("NO_COLOR");
	struct cli_ctx ctx = {
	    .g = inv.g,
	    .color = isatty(STDOUT_FILENO) && !(no_color && *no_color),
	    .pid = inv.pid,
	};
	if (rc)
		return cli_usage_fail(&ctx, &err);

	switch (inv.action) {
	case CLI_ACT_HELP:
		if (cli_help_topic(stdout, inv.help_topic, CLI_TOP, ctx.color, &err))
			return cli_usage_fail(&ctx, &err);
		return 0;
	case CLI_ACT_VERSION:
		printf("fpctl %s (protocol %d)\n", FP_VERSION, FP_PROTO_VERSION);
		return 0;
	case CLI_ACT_PLANNED:
		return cli_planned_fail(&ctx, inv.planned);
	default:
		break;
	}
	if (!needs_daemon(&inv))
		return cli_exec(&ctx, &inv.cmd);

	const char *env = getenv("FPD_SOCKET");
	ctx.socket = inv.g.socket ? inv.g.socket : env && *env ? env : FP_DEFAULT_SOCKET;
	if (cli_signals_install() != 0)
		return cli_fail(&ctx, 1, "signals", "cannot set up signal handling");
	struct cli_conn conn;
	rc = cli_connect(&ctx, &conn);
	if (rc)
		return rc;
	switch (inv.action) {
	case CLI_ACT_PS:
		rc = cli_cmd_ps(&ctx);
		break;
	case CLI_ACT_STATUS:
		rc = cli_cmd_status(&ctx);
		break;
	case CLI_ACT_SHELL:
		rc = cli_shell(&ctx);
		break;
	case CLI_ACT_DETACH:
		rc = cli_cmd_detach(&ctx);
		break;
	default:
		rc = cli_exec(&ctx, &inv.cmd);
		break;
	}
	cli_disconnect(&ctx);
	return rc;
}
