/*
 * What every command prints through: error lines, JSON lines, strings that
 * came from a target.
 */
#include <stdarg.h>
#include <stdlib.h>

#include "cli.h"
#include "fp/proto.h"

int cli_fail(const struct cli_ctx *ctx, int exit_status, const char *code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Scripts parse stdout; a person reads stderr.  --json serves both. */
	if (ctx->g.json) {
		json_t *e = fp_msg_error(0, code, exit_status, "%s", msg);
		cli_print_json(stdout, e);
		json_decref(e);
	}
	fprintf(stderr, "%s%s\n", ctx->shell ? "" : "fpctl: ", msg);
	return exit_status;
}

int cli_usage_fail(const struct cli_ctx *ctx, const struct cli_error *err)
{
	const char *help = ctx->shell ? "help" : "fpctl help";
	if (err->topic)
		return cli_fail(ctx, 2, "usage", "%s; see '%s %s'", err->msg, help, err->topic);
	return cli_fail(ctx, 2, "usage", "%s; see '%s'", err->msg, help);
}

int cli_planned_fail(const struct cli_ctx *ctx, const char *name)
{
	return cli_fail(ctx, 1, "unavailable", "%s: not available yet in this version of fpd",
			name);
}

void cli_print_json(FILE *f, const json_t *frame)
{
	/* JSON_ENSURE_ASCII keeps every line ASCII, whatever the target's strings hold. */
	char *s = json_dumps(frame, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (!s)
		return;
	fprintf(f, "%s\n", s);
	free(s);
}

void cli_put_safe(FILE *f, const char *s)
{
	/* Runs of printable bytes go out in one call: a stack dump is mostly those. */
	const char *p = s;
	while (*p) {
		size_t n = 0;
		while (p[n] && !(((unsigned char)p[n] < 0x20 && p[n] != '\t') || p[n] == 0x7f))
			n++;
		if (n)
			fwrite(p, 1, n, f);
		p += n;
		if (*p)
			fprintf(f, "\\x%02x", (unsigned char)*p++);
	}
}

const char *cli_jstr(const json_t *obj, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s ? s : dflt;
}

json_int_t cli_jint(const json_t *obj, const char *key, json_int_t dflt)
{
	json_t *v = json_object_get(obj, key);
	return json_is_integer(v) ? json_integer_value(v) : dflt;
}
