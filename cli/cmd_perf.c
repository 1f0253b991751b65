/*
 * `perf`: ask fpd for a sampling profile, then write it in the chosen format.
 * fpd sends one "profile" event when sampling stops (duration over, Ctrl-C or
 * --timeout, which only cancel the request here, or the target's exit); the
 * file is written by fpctl as the invoking user (SPEC §5), also after
 * --timeout, which then still ends with its report and status 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "profile_formats.h"

struct perf_state {
	struct cli_ctx *ctx;
	json_t *profile;
};

static int on_event(void *ud, const json_t *ev)
{
	struct perf_state *s = ud;
	if (strcmp(cli_jstr(ev, "event", ""), "profile") != 0 || s->profile)
		return 0;
	s->profile = json_incref((json_t *)ev);
	if (s->ctx->g.json)
		cli_print_json(stdout, ev);
	return 0;
}

/*
 * Opened before the request so that an unwritable path is reported before
 * any sampling, without truncating an existing file that a failed profile
 * would then have destroyed.  *created: the file is new, removed on failure.
 */
static int open_output(const char *path, bool *created)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	*created = fd >= 0;
	if (fd < 0 && errno == EEXIST)
		fd = open(path, O_WRONLY | O_CLOEXEC);
	return fd;
}

static void print_summary(const json_t *p, const char *path)
{
	printf("Wrote %lld samples to %s", (long long)cli_jint(p, "samples", 0), path);
	static const char *const extra[][2] = {
	    {"lost", "lost"}, {"faulted", "cut by a fault"}, {"dropped", "dropped (profile full)"}};
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
		json_int_t n = cli_jint(p, extra[i][0], 0);
		if (n > 0)
			printf(", %lld %s", (long long)n, extra[i][1]);
	}
	if (json_is_true(json_object_get(p, "exited")))
		fputs(" (the process exited)", stdout);
	putchar('\n');
}

int cli_cmd_perf(struct cli_ctx *ctx, const struct cli_cmd *cmd)
{
	enum cli_profile_format fmt = (enum cli_profile_format)cmd->u.perf.format;
	const char *path = cmd->u.perf.file ? cmd->u.perf.file : cli_profile_default_file(fmt);
	bool created;
	int fd = open_output(path, &created);
	if (fd < 0)
		return cli_fail(ctx, 1, "file", "perf: cannot write %s: %s", path, strerror(errno));

	json_t *args = json_pack("{s:i, s:f, s:b, s:b, s:b}", "rate", cmd->u.perf.rate, "duration",
				 cmd->u.perf.duration, "native", cmd->u.perf.native, "gil",
				 cmd->u.perf.gil, "idle", cmd->u.perf.idle);
	struct perf_state s = {.ctx = ctx};
	int rc = cli_request_drain(ctx, "perf", ctx->pid, args, on_event, &s);
	if (rc == 0 && !s.profile)
		rc = cli_fail(ctx, 1, "protocol", "perf: fpd ended the request without a profile");
	FILE *f = NULL;
	if (rc == 0) {
		f = ftruncate(fd, 0) == 0 ? fdopen(fd, "w") : NULL;
		if (f)
			fd = -1;
		errno = 0;
		if (!f || cli_profile_write(s.profile, fmt, f, path) != 0)
			rc = cli_fail(ctx, 1, "file", "perf: writing %s failed: %s", path,
				      errno == EINVAL ? "the profile from fpd is malformed"
				      : errno	      ? strerror(errno)
						      : "unknown error");
		if (f && fclose(f) != 0 && rc == 0)
			rc = cli_fail(ctx, 1, "file", "perf: writing %s failed: %s", path,
				      strerror(errno));
	}
	if (fd >= 0)
		close(fd);
	if (rc != 0 && created)
		unlink(path);
	else if (rc == 0 && !ctx->g.json)
		print_summary(s.profile, path);
	json_decref(s.profile);
	return cli_timeout_end(ctx, "perf", rc);
}
