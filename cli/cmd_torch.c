/*
 * `torch profile module [class] method [-f FILE.json] [-nm inner]`,
 * `torch memory -s [-f FILE.pickle]`,
 * `torch memory -r module [class] method [-f FILE.pickle] [-nm inner]`:
 * the helper (agent/py/torch_cmd.py) runs torch in the target and sends the
 * Chrome trace or the pickled snapshot as base64 "chunk" events; fpctl
 * writes the file as the invoking user, relative to its own working
 * directory (SPEC §5).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentcmd.h"

/* The reference tool's defaults, in the current directory. */
#define TORCH_TRACE_DEFAULT    "trace.json"
#define TORCH_SNAPSHOT_DEFAULT "snapshot.pickle"

static const struct cli_opt_spec torch_opts[] = {
    {"filepath", "-f", "--filepath", CLI_OPT_STR, 0, 0, NULL},
    {"nested", "-nm", "--nested-method", CLI_OPT_STR, 0, 0, NULL},
    {"snapshot", "-s", "--snapshot", CLI_OPT_FLAG, 0, 0, NULL},
    {"record", "-r", "--record", CLI_OPT_FLAG, 0, 0, NULL},
    {NULL, NULL, NULL, CLI_OPT_FLAG, 0, 0, NULL},
};

#define TORCH_POS_USAGE                                                                            \
	"profile module [class] method | memory -s | memory -r module [class] method"

static int usage(struct cli_error *err, const char *msg, const char *arg)
{
	snprintf(err->msg, sizeof(err->msg), msg, arg);
	err->topic = "torch";
	return 2;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n > k && strcmp(s + n - k, suffix) == 0;
}

/* "profile", "snapshot" or "record", from the words and flags already parsed. */
static const char *action_of(const json_t *args)
{
	const char *sub = json_string_value(json_array_get(json_object_get(args, "argv"), 0));
	if (sub && strcmp(sub, "profile") == 0)
		return "profile";
	if (!sub || strcmp(sub, "memory") != 0)
		return NULL;
	return json_is_true(json_object_get(args, "snapshot")) ? "snapshot" : "record";
}

static int torch_check(const json_t *args, struct cli_error *err)
{
	const json_t *argv = json_object_get(args, "argv");
	size_t words = json_array_size(argv) - 1; /* after profile/memory */
	const char *sub = json_string_value(json_array_get(argv, 0));
	bool snap = json_is_true(json_object_get(args, "snapshot"));
	bool rec = json_is_true(json_object_get(args, "record"));
	bool nested = json_object_get(args, "nested") != NULL;
	const char *path = json_string_value(json_object_get(args, "filepath"));
	if (strcmp(sub, "profile") == 0) {
		if (snap || rec)
			return usage(err, "torch profile: %s belong to torch memory", "-s and -r");
		if (words < 2)
			return usage(
			    err, "torch profile: missing arguments (usage: %s)",
			    "torch profile module [class] method [-f FILE.json] [-nm inner]");
		if (path && !ends_with(path, ".json"))
			return usage(
			    err,
			    "torch profile: -f %.120s: the trace is a Chrome trace (JSON); "
			    "give a path ending in .json",
			    path);
		return 0;
	}
	if (strcmp(sub, "memory") != 0)
		return usage(err, "torch: unknown subcommand '%.60s' (profile or memory)", sub);
	if (snap == rec)
		return usage(
		    err, "torch memory: give %s",
		    "either -s (snapshot now) or -r module [class] method (record the next "
		    "call)");
	if (snap && (words || nested))
		return usage(err, "torch memory -s: %s", "takes no module, method or -nm");
	if (rec && words < 2)
		return usage(err, "torch memory -r: missing arguments (usage: %s)",
			     "torch memory -r module [class] method [-f FILE.pickle]");
	if (path && !ends_with(path, ".pickle"))
		return usage(
		    err,
		    "torch memory: -f %.120s: the snapshot is a pickle; give a path ending "
		    "in .pickle",
		    path);
	return 0;
}

struct torch_out {
	struct cli_ctx *ctx;
	const char *name; /* "torch profile" or "torch memory" */
	FILE *buf;	  /* the decoded file, until the request ends well */
	json_t *done;
	bool bad_chunk;
};

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decodes padded base64 into f; -1 on anything else. */
static int b64_decode(FILE *f, const char *s, size_t len)
{
	if (len % 4)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		int pad = 0;
		for (int j = 0; j < 4; j++) {
			unsigned char c = (unsigned char)s[i + j];
			bool last = i + 4 == len;
			if (c == '=' && last && j >= 2 && (j == 3 || s[i + 3] == '=')) {
				v[j] = 0;
				pad++;
				continue;
			}
			v[j] = pad ? -1 : b64_value(c);
			if (v[j] < 0)
				return -1;
		}
		unsigned char out[3] = {(unsigned char)(v[0] << 2 | v[1] >> 4),
					(unsigned char)(v[1] << 4 | v[2] >> 2),
					(unsigned char)(v[2] << 6 | v[3])};
		if (fwrite(out, 1, (size_t)(3 - pad), f) != (size_t)(3 - pad))
			return -1;
	}
	return 0;
}

static void notice(const struct torch_out *t, const json_t *ev)
{
	fputs(t->ctx->shell ? "" : "fpctl: ", stderr);
	if (strcmp(cli_jstr(ev, "event", ""), "waiting") == 0) {
		fprintf(stderr, "%s: waiting for the next call of ", t->name);
		cli_put_safe(stderr, cli_jstr(ev, "method", "?"));
		fputs(", Ctrl-C stops\n", stderr);
	} else {
		fprintf(stderr, "%s: a hook failed inside the target: ", t->name);
		cli_put_safe(stderr, cli_jstr(ev, "message", "?"));
		fputc('\n', stderr);
	}
	fflush(stderr);
}

static int on_event(void *ud, const json_t *ev)
{
	struct torch_out *t = ud;
	const char *kind = cli_jstr(ev, "event", "");
	if (strcmp(kind, "chunk") == 0) {
		const json_t *data = json_object_get(ev, "data");
		if (!json_is_string(data) ||
		    b64_decode(t->buf, json_string_value(data), json_string_length(data)))
			t->bad_chunk = true;
		return 0;
	}
	if (strcmp(kind, "done") == 0 && !t->done)
		t->done = json_incref((json_t *)ev);
	if (t->ctx->g.json) {
		cli_print_json(stdout, ev);
		fflush(stdout);
	} else if (!cli_agent_generic_event(t->ctx, ev) &&
		   (strcmp(kind, "waiting") == 0 || strcmp(kind, "hook_error") == 0)) {
		notice(t, ev);
	}
	return 0;
}

/*
 * Opened before the request, as perf does: an unwritable path is reported
 * before the target is touched, and an existing file is only replaced once
 * the new content is complete.  *created: the file is new, removed on
 * failure.
 */
static int open_output(const char *path, bool *created)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	*created = fd >= 0;
	if (fd < 0 && errno == EEXIST)
		fd = open(path, O_WRONLY | O_CLOEXEC);
	return fd;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static void print_summary(const struct torch_out *t, const char *path, size_t len)
{
	const json_t *d = t->done;
	const char *what = cli_jstr(d, "what", "");
	if (strcmp(what, "snapshot") == 0) {
		printf("Wrote the CUDA memory snapshot (%zu bytes) to %s\n", len, path);
		return;
	}
	printf("Wrote %s of ", strcmp(what, "profile") == 0 ? "the torch profile"
							    : "the CUDA "
							      "memory record");
	cli_put_safe(stdout, cli_jstr(d, "method", "?"));
	printf(" (one call, %.3f ms", json_number_value(json_object_get(d, "cost_ms")));
	const char *exc = cli_jstr(d, "exception", NULL);
	if (exc) {
		fputs(", raised ", stdout);
		cli_put_safe(stdout, exc);
	}
	printf(") to %s (%zu bytes)\n", path, len);
	if (strcmp(what, "profile") == 0)
		printf("Open it in chrome://tracing or https://ui.perfetto.dev\n");
	else
		printf("Open it in https://pytorch.org/memory_viz\n");
}

/* The helper's args: the action and the words after the subcommand. */
static json_t *helper_args(const json_t *args, const char *action)
{
	json_t *argv = json_array();
	const json_t *words = json_object_get(args, "argv");
	for (size_t i = 1; i < json_array_size(words); i++)
		json_array_append(argv, json_array_get(words, i));
	json_t *out = json_pack("{s:s, s:o}", "action", action, "argv", argv);
	const json_t *nested = json_object_get(args, "nested");
	if (out && nested)
		json_object_set(out, "nested", (json_t *)nested);
	return out;
}

static int torch_run(struct cli_ctx *ctx, json_t *args)
{
	const char *action = action_of(args);
	bool profile = strcmp(action, "profile") == 0;
	struct torch_out t = {.ctx = ctx, .name = profile ? "torch profile" : "torch memory"};
	const char *path = json_string_value(json_object_get(args, "filepath"));
	if (!path)
		path = profile ? TORCH_TRACE_DEFAULT : TORCH_SNAPSHOT_DEFAULT;
	bool created;
	int fd = open_output(path, &created);
	if (fd < 0) {
		int rc = cli_fail(ctx, 1, "file", "%s: cannot write %s: %s", t.name, path,
				  strerror(errno));
		json_decref(args);
		return rc;
	}
	/* args owns path: it is released last. */
	char *buf = NULL;
	size_t len = 0;
	t.buf = open_memstream(&buf, &len);
	json_t *req = t.buf ? helper_args(args, action) : NULL;
	int rc;
	if (!req)
		rc = cli_fail(ctx, 1, "memory", "%s: out of memory", t.name);
	else
		rc = cli_request_drain(ctx, "torch", ctx->pid, req, on_event, &t);
	if (t.buf && fclose(t.buf) != 0 && rc == 0)
		rc = cli_fail(ctx, 1, "memory", "%s: out of memory", t.name);
	if (rc == 0 && t.bad_chunk)
		rc = cli_fail(ctx, 1, "protocol", "%s: the helper sent malformed data", t.name);
	if (rc == 0 && !t.done && ctx->conn->timed_out)
		rc = cli_fail(ctx, 1, "timeout",
			      "%s: timed out after %g s: stopped before the call ended; nothing "
			      "written (the target is as it was)",
			      t.name, ctx->g.timeout_s);
	if (rc == 0 && !t.done)
		rc = cli_fail(ctx, 1, "cancelled",
			      "%s: stopped before the call ended; nothing written (the target is "
			      "as it was)",
			      t.name);
	if (rc == 0 && (ftruncate(fd, 0) != 0 || write_all(fd, buf, len) != 0))
		rc = cli_fail(ctx, 1, "file", "%s: writing %s failed: %s", t.name, path,
			      strerror(errno));
	if (close(fd) != 0 && rc == 0)
		rc = cli_fail(ctx, 1, "file", "%s: writing %s failed: %s", t.name, path,
			      strerror(errno));
	if (rc != 0 && created)
		unlink(path);
	else if (rc == 0 && !ctx->g.json)
		print_summary(&t, path, len);
	free(buf);
	json_decref(t.done);
	json_decref(args);
	return cli_timeout_end(ctx, t.name, rc);
}

const struct cli_agent_cmd cli_agent_torch = {
    .opts = torch_opts,
    .min_pos = 1,
    .max_pos = 4,
    .pos_usage = TORCH_POS_USAGE,
    .run = torch_run,
    .check = torch_check,
};
