/*
 * `stack`: request, render, and -f (the text goes to a file that fpctl
 * writes as the invoking user, SPEC §5).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentcmd.h"
#include "cli.h"

static json_t *stack_args(const struct cli_cmd *cmd)
{
	return json_pack("{s:b, s:b, s:b}", "native", cmd->u.stack.native, "locals",
			 cmd->u.stack.locals, "async", cmd->u.stack.async);
}

struct stack_state {
	struct cli_ctx *ctx;
	FILE *file; /* -f: the text collects here until the request ends */
	struct cli_stack_render r;
	bool async; /* -a: asyncio tasks, from the in-process helper */
};

/*
 * Each event reaches stdout in one write(): a thread of thousands of frames
 * costs one system call instead of one per line, and a reader never sees
 * half a thread.
 */
static int write_stdout(const char *buf, size_t len)
{
	fflush(stdout);
	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int on_event(void *ud, const json_t *ev)
{
	struct stack_state *s = ud;
	char *buf = NULL;
	size_t len = 0;
	s->r.out = s->file ? s->file : open_memstream(&buf, &len);
	if (!s->r.out)
		return cli_fail(s->ctx, 1, "memory", "stack: out of memory");
	if (s->ctx->g.json)
		cli_print_json(s->r.out, ev);
	else if (s->async && !cli_agent_generic_event(s->ctx, ev))
		cli_render_async_event(&s->r, ev);
	else if (!s->async)
		cli_render_stack_event(&s->r, ev);
	if (s->file)
		return 0;
	fclose(s->r.out);
	int rc = write_stdout(buf, len);
	free(buf);
	if (rc)
		return cli_fail(s->ctx, 1, "output", "stack: writing the output failed: %s",
				strerror(errno));
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
	if (cmd->u.stack.async && (cmd->u.stack.native || cmd->u.stack.locals))
		return cli_fail(ctx, 2, "usage",
				"stack: -a lists asyncio tasks; --native and --locals apply to "
				"thread stacks only");
	const char *path = cmd->u.stack.file;
	struct stack_state s = {
	    .ctx = ctx, .r = {.color = ctx->color && !path}, .async = cmd->u.stack.async};
	char *buf = NULL;
	size_t len = 0;
	if (path) {
		s.file = open_memstream(&buf, &len);
		if (!s.file)
			return cli_fail(ctx, 1, "memory", "stack: out of memory");
	}
	int rc = cli_request(ctx, "stack", ctx->pid, stack_args(cmd), on_event, &s);
	if (!path)
		return rc;
	fclose(s.file);
	if (rc == 0) {
		rc = write_file(ctx, path, buf, len);
		if (rc == 0)
			printf("Write stack to %s successfully!\n", path);
	}
	free(buf);
	return rc;
}
