/*
 * `fpctl ps`, `fpctl status` and `fpctl detach`: top-level requests.
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

static int on_detach(void *ud, const json_t *ev)
{
	struct cli_ctx *ctx = ud;
	if (ctx->g.json) {
		cli_print_json(stdout, ev);
		return 0;
	}
	json_int_t n = cli_jint(ev, "sessions", 0);
	if (n)
		printf("detached %lld helper session%s from process %d\n", (long long)n,
		       n == 1 ? "" : "s", (int)ctx->pid);
	else
		printf("no helper session was attached to process %d\n", (int)ctx->pid);
	return 0;
}

int cli_cmd_detach(struct cli_ctx *ctx)
{
	return cli_request(ctx, "detach", ctx->pid, NULL, on_detach, ctx);
}
