/*
 * `stack`: request, render, and -f (the text goes to a file that fpctl
 * writes as the invoking user, SPEC §5).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

json_t *cli_stack_args(const struct cli_cmd *cmd)
{
	return json_pack("{s:b, s:b}", "native", cmd->u.stack.native, "locals",
			 cmd->u.stack.locals);
}

struct stack_state {
	bool json;
	struct cli_stack_render r;
};

static int on_event(void *ud, const json_t *ev)
{
	struct stack_state *s = ud;
	if (s->json)
		cli_print_json(s->r.out, ev);
	else
		cli_render_stack_event(&s->r, ev);
	return 0;
}

/*
 * The file is written only once the whole stack has arrived, so a failed or
 * cancelled request leaves no truncated file behind.
 */
static int write_file(struct cli_ctx *ctx, const char *path, const char *buf, size_t len)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return cli_fail(ctx, 1, "file", "stack: cannot write %s: %s", path,
				strerror(errno));
	size_t n = fwrite(buf, 1, len, f);
	int e = errno;
	if (fclose(f) != 0 || n != len) {
		e = e ? e : errno;
		return cli_fail(ctx, 1, "file", "stack: writing %s failed: %s", path, strerror(e));
	}
	return 0;
}

int cli_cmd_stack(struct cli_ctx *ctx, const struct cli_cmd *cmd)
{
	if (cmd->u.stack.async)
		return cli_fail(ctx, 1, "unavailable",
				"stack -a: asyncio task listing is not available yet");
	const char *file = cmd->u.stack.file;
	struct stack_state s = {.json = ctx->g.json, .r = {.out = stdout, .color = ctx->color}};
	char *buf = NULL;
	size_t len = 0;
	if (file) {
		s.r.out = open_memstream(&buf, &len);
		s.r.color = false;
		if (!s.r.out)
			return cli_fail(ctx, 1, "memory", "stack: out of memory");
	}
	int rc = cli_request(ctx, "stack", ctx->pid, cli_stack_args(cmd), on_event, &s);
	if (!file)
		return rc;
	fclose(s.r.out);
	if (rc == 0) {
		rc = write_file(ctx, file, buf, len);
		if (rc == 0)
			printf("Write stack to %s successfully!\n", file);
	}
	free(buf);
	return rc;
}
