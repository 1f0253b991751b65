/*
 * `fpctl ps` and `fpctl status`: requests without a target process.
 */
#include "cli.h"

struct ps_state {
	struct cli_ctx *ctx;
	struct cli_ps_render table;
};

static int on_ps(void *ud, const json_t *ev)
{
	struct ps_state *s = ud;
	if (s->ctx->g.json)
		cli_print_json(stdout, ev);
	else
		cli_ps_add(&s->table, ev);
	return 0;
}

int cli_cmd_ps(struct cli_ctx *ctx)
{
	struct ps_state s = {.ctx = ctx};
	int rc = cli_request(ctx, "ps", 0, NULL, on_ps, &s);
	if (rc == 0 && !ctx->g.json)
		cli_ps_print(&s.table, stdout, ctx->color);
	cli_ps_free(&s.table);
	return rc;
}

static int on_status(void *ud, const json_t *ev)
{
	struct cli_ctx *ctx = ud;
	if (ctx->g.json)
		cli_print_json(stdout, ev);
	else
		cli_render_status(stdout, ev);
	return 0;
}

int cli_cmd_status(struct cli_ctx *ctx)
{
	return cli_request(ctx, "status", 0, NULL, on_status, ctx);
}
