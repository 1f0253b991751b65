/*
 * `gpu [-d SECONDS] [-f FILE.json]`: the helper captures CUDA activity
 * through libfpcupti.so (agent/py/gpu.py) and streams Chrome trace events
 * back; fpctl writes them to FILE, as the user who ran it (SPEC §5), and
 * prints the kernels that took the most GPU time.
 *
 * The trace goes to a temporary file next to FILE, renamed over it only once
 * the capture ended well: a failed or interrupted run leaves FILE as it was.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentcmd.h"

#define GPU_DEFAULT_FILE "gpu_trace.json"
#define GPU_LIBNAME	 "libfpcupti.so"

static const struct cli_opt_spec gpu_opts[] = {
    {"duration", "-d", "--duration", CLI_OPT_NUM, 0.1, 3600, "0.1 to 3600 (seconds)"},
    {"file", "-f", "--filepath", CLI_OPT_STR, 0, 0, NULL},
    {NULL, NULL, NULL, CLI_OPT_FLAG, 0, 0, NULL},
};

struct gpu_out {
	struct cli_ctx *ctx;
	FILE *f;
	long long events;
	int write_failed;
};

/*
 * libfpcupti.so next to fpctl (build tree), else in ../lib/fpd (installed),
 * where `make install` puts it next to libfpagent.so.  "" when not built.
 */
static void find_lib(char *out, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	out[0] = '\0';
	if (n <= 0)
		return;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	snprintf(out, len, "%s/" GPU_LIBNAME, exe);
	if (access(out, R_OK) == 0)
		return;
	snprintf(out, len, "%s/../lib/fpd/" GPU_LIBNAME, exe);
	if (access(out, R_OK) != 0)
		out[0] = '\0';
}

static void put_ms(char *buf, size_t len, double us)
{
	snprintf(buf, len, us >= 1000 ? "%.3f ms" : "%.3f us", us >= 1000 ? us / 1000 : us);
}

static void print_summary(struct cli_ctx *ctx, const json_t *ev)
{
	const json_t *rows = json_object_get(ev, "kernels");
	printf("Process %lld, %g s: %lld launches, %lld distinct kernels, %lld copies (%lld "
	       "bytes)\n",
	       (long long)cli_jint(ev, "pid", 0),
	       json_number_value(json_object_get(ev, "duration")),
	       (long long)cli_jint(ev, "launches", 0), (long long)cli_jint(ev, "kernel_names", 0),
	       (long long)cli_jint(ev, "memcpy", 0), (long long)cli_jint(ev, "memcpy_bytes", 0));
	if (cli_jint(ev, "dropped", 0))
		printf("(%lld records dropped: the capture's memory cap was reached)\n",
		       (long long)cli_jint(ev, "dropped", 0));
	if (!json_array_size(rows)) {
		puts("No kernel ran on the GPU.");
		return;
	}
	printf("%s%14s %8s %14s  %s%s\n", CLI_SGR(ctx->color, CLI_BOLD), "GPU time", "launches",
	       "average", "kernel", CLI_SGR(ctx->color, CLI_RESET));
	size_t i;
	const json_t *r;
	json_array_foreach(rows, i, r)
	{
		char total[32], avg[32];
		put_ms(total, sizeof(total), json_number_value(json_object_get(r, "total_us")));
		put_ms(avg, sizeof(avg), json_number_value(json_object_get(r, "avg_us")));
		printf("%14s %8lld %14s  ", total, (long long)cli_jint(r, "count", 0), avg);
		/* Templated kernel names run to kilobytes: the table keeps the start. */
		char name[121];
		snprintf(name, sizeof(name), "%s", cli_jstr(r, "name", "?"));
		cli_put_safe(stdout, name);
		putchar('\n');
	}
}

static int on_gpu_event(void *ud, const json_t *ev)
{
	struct gpu_out *o = ud;
	const char *kind = cli_jstr(ev, "event", "");
	if (strcmp(kind, "gpu_trace") == 0) {
		size_t i;
		const json_t *e;
		json_array_foreach(json_object_get(ev, "events"), i, e)
		{
			if (o->events++ && fputc(',', o->f) == EOF)
				o->write_failed = 1;
			if (json_dumpf(e, o->f, JSON_COMPACT) != 0)
				o->write_failed = 1;
		}
		return 0;
	}
	if (o->ctx->g.json) {
		cli_print_json(stdout, ev);
	} else if (cli_agent_generic_event(o->ctx, ev)) {
		return 0;
	} else if (strcmp(kind, "gpu_started") == 0) {
		fprintf(stderr, "Capturing GPU activity of process %lld for %g s (Ctrl-C stops)\n",
			(long long)cli_jint(ev, "pid", 0),
			json_number_value(json_object_get(ev, "duration")));
	} else if (strcmp(kind, "gpu_summary") == 0) {
		print_summary(o->ctx, ev);
	}
	fflush(stdout);
	fflush(stderr);
	return 0;
}

static int run_gpu(struct cli_ctx *ctx, json_t *args)
{
	/* A copy: cli_request_drain frees args. */
	char file[PATH_MAX], lib[PATH_MAX + 32], tmp[PATH_MAX + 8];
	int flen = snprintf(file, sizeof(file), "%s", cli_jstr(args, "file", GPU_DEFAULT_FILE));
	find_lib(lib, sizeof(lib));
	if (lib[0])
		json_object_set_new(args, "lib", json_string(lib));
	if (flen <= 0 || flen >= (int)sizeof(file)) {
		json_decref(args);
		return cli_fail(ctx, 2, "usage", "gpu: -f needs a file name of up to %d bytes",
				PATH_MAX - 1);
	}
	snprintf(tmp, sizeof(tmp), "%s.XXXXXX", file);
	int fd = mkstemp(tmp);
	if (fd < 0) {
		int e = errno;
		json_decref(args);
		return cli_fail(ctx, 1, "file", "gpu: cannot write %s: %s", file, strerror(e));
	}
	mode_t mask = umask(0);
	umask(mask);
	/* mkstemp makes 0600; the trace gets a plain new file's mode (or stays private). */
	(void)!fchmod(fd, 0666 & ~mask);
	struct gpu_out o = {.ctx = ctx, .f = fdopen(fd, "w")};
	if (!o.f) {
		close(fd);
		unlink(tmp);
		json_decref(args);
		return cli_fail(ctx, 1, "memory", "gpu: out of memory");
	}
	fputs("{\"traceEvents\":[", o.f);
	int rc = cli_request_drain(ctx, "gpu", ctx->pid, args, on_gpu_event, &o);
	fputs("],\"displayTimeUnit\":\"ns\"}\n", o.f);
	int closed = fclose(o.f);
	if (rc == 0 && (o.write_failed || closed != 0)) {
		unlink(tmp);
		return cli_fail(ctx, 1, "file", "gpu: writing %s failed", file);
	}
	if (rc != 0 || rename(tmp, file) != 0) {
		int e = errno;
		unlink(tmp);
		return rc ? rc
			  : cli_fail(ctx, 1, "file", "gpu: cannot write %s: %s", file, strerror(e));
	}
	if (!ctx->g.json)
		printf("Trace: %s (%lld events; open it in https://ui.perfetto.dev or "
		       "chrome://tracing)\n",
		       file, o.events);
	return cli_timeout_end(ctx, "gpu", 0);
}

const struct cli_agent_cmd cli_agent_gpu = {
    .opts = gpu_opts,
    .min_pos = 0,
    .max_pos = 0,
    .pos_usage = "[-d SECONDS] [-f FILE.json]",
    .run = run_gpu,
};
