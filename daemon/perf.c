/*
 * `perf` and `top`: sampling profiles of a target, taken by the BPF sampler
 * (sampler.h) and aggregated here (profile.h).  The target is never stopped.
 *
 * Requests:
 *   {"cmd":"perf","pid":P,"args":{"rate":100,"duration":S,"native":b,"gil":b,"idle":b}}
 *     rate 1..10000 Hz (default 100); duration in seconds, 0 or absent: until
 *     cancelled.  Sampling also stops when the target exits; the profile of
 *     what was sampled is still sent.
 *   {"cmd":"top","pid":P,"args":{"rate":100}}
 *     until cancelled, one profile event per second holding that second.
 *
 * Event (perf: exactly one, when sampling stops; top: one per second):
 *   {"event":"profile","samples":N,"lost":n,"faulted":n,"dropped":n,
 *    "duration_s":x,"rate":r,"exited":b,"trigger":"tick"|"tick+cpu-clock"|...,
 *    "bpf":{"runs":n,"run_ns":n,"verified_insns":n},"frames":[...],"stacks":[...]}
 * "samples" is what the stacks hold; "lost" and "faulted" are the sampler's
 * (samples the kernel side could not deliver, walks cut by a fault);
 * "dropped" counts samples the profile had no room for (FP_PROFILE_MAX_BYTES);
 * "exited" says the target exited while sampled; "trigger" what took the
 * samples (sampler.h); "bpf" the program's runs (for every task on every
 * CPU: it filters) and their time, 0 unless kernel.bpf_stats_enabled is set
 * (bench/sampler.sh sets it).  Frames and stacks as in daemon/profile.h.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "profile.h"
#include "sampler.h"

#define DEFAULT_RATE 100
#define MAX_RATE     10000
/* How long one poll may wait, so that a cancel is noticed promptly. */
#define POLL_MS 100
/* A week: far beyond any profile, small enough for the arithmetic. */
#define MAX_DURATION_S (7 * 24 * 3600.0)
#define TOP_INTERVAL_S 1.0

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* rate from the request's args: 0, or -1 when answered with a usage error. */
static int parse_rate(struct fp_req *r, int *rate)
{
	json_t *v = json_object_get(r->args, "rate");
	*rate = DEFAULT_RATE;
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > MAX_RATE) {
		char *s = json_dumps(v, JSON_ENCODE_ANY);
		fp_req_fail(r, "usage", FP_EXIT_USAGE,
			    "%s: the rate must be a whole number of samples per second from 1 to "
			    "%d, not %.40s",
			    r->cmd, MAX_RATE, s ? s : "that");
		free(s);
		return -1;
	}
	*rate = (int)json_integer_value(v);
	return 0;
}

static int parse_duration(struct fp_req *r, double *duration)
{
	json_t *v = json_object_get(r->args, "duration");
	*duration = 0;
	if (!v)
		return 0;
	double d = json_number_value(v);
	if (!json_is_number(v) || !isfinite(d) || d < 0 || d > MAX_DURATION_S)
		return fp_req_fail(r, "usage", FP_EXIT_USAGE,
				   "perf: the duration must be a number of seconds from 0 (until "
				   "stopped) to %.0f",
				   MAX_DURATION_S);
	*duration = d;
	return 0;
}

static void on_sample(void *arg, const struct fp_sample_info *s)
{
	/* Out of memory counts the sample as dropped; the profile goes on. */
	fp_profile_add(arg, s);
}

/*
 * Samples into p until `until` (monotonic seconds; 0: no end), a cancel, or
 * the target's exit (*exited).  0, or -1 with errno when the sampler failed.
 */
static int sample_until(struct fp_req *r, struct fp_sampler *s, struct fp_profile *p, double until,
			bool *exited)
{
	while (!fp_req_cancelled(r)) {
		int wait = POLL_MS;
		if (until > 0) {
			double left = until - now_s();
			if (left <= 0)
				return 0;
			if (left * 1000 < wait)
				wait = (int)ceil(left * 1000);
		}
		if (fp_sampler_poll(s, wait, on_sample, p) < 0) {
			if (errno == EINTR)
				continue;
			if (errno != ESRCH)
				return -1;
			*exited = true;
			return 0;
		}
	}
	return 0;
}

/* The profile event; samples since *prev (updated), over `elapsed` seconds. */
static json_t *profile_event(struct fp_req *r, struct fp_sampler *s, const struct fp_profile *p,
			     struct fp_sampler_stats *prev, double elapsed, int rate, bool exited)
{
	struct fp_sampler_stats st;
	fp_sampler_stats(s, &st);
	json_t *ev = fp_msg_event(r->id, "profile");
	if (!ev)
		return NULL;
	json_object_set_new(ev, "samples", json_integer((json_int_t)fp_profile_samples(p)));
	json_object_set_new(ev, "lost", json_integer((json_int_t)(st.lost - prev->lost)));
	json_object_set_new(ev, "faulted", json_integer((json_int_t)(st.faulted - prev->faulted)));
	json_object_set_new(ev, "dropped", json_integer((json_int_t)fp_profile_dropped(p)));
	json_object_set_new(ev, "duration_s", json_real(elapsed));
	json_object_set_new(ev, "rate", json_integer(rate));
	json_object_set_new(ev, "exited", json_boolean(exited));
	json_object_set_new(ev, "trigger", json_string(st.trigger));
	json_t *k =
	    json_pack("{s:I, s:I, s:I}", "runs", (json_int_t)(st.kernel_runs - prev->kernel_runs),
		      "run_ns", (json_int_t)(st.kernel_ns - prev->kernel_ns), "verified_insns",
		      (json_int_t)st.kernel_insns);
	if (k)
		json_object_set_new(ev, "bpf", k);
	*prev = st;
	if (fp_profile_to_json(p, ev)) {
		json_decref(ev);
		return NULL;
	}
	return ev;
}

static int open_sampler(struct fp_req *r, const struct fp_sampler_opts *o, struct fp_sampler **s)
{
	struct fp_python py;
	if (fp_req_python(r, &py))
		return -1;
	char err[512] = "";
	if (fp_sampler_open(&py, o, s, err, sizeof(err))) {
		fp_sampler_close(*s);
		return fp_req_fail(r, "sampler", FP_EXIT_CMD, "%s: %s", r->cmd,
				   *err ? err : "the sampler could not start");
	}
	return 0;
}

int fp_cmd_perf(struct fp_req *r)
{
	struct fp_sampler_opts o = {.native = fp_req_flag(r, "native"),
				    .gil_only = fp_req_flag(r, "gil"),
				    .idle = fp_req_flag(r, "idle")};
	double duration;
	if (parse_rate(r, &o.rate_hz) || parse_duration(r, &duration))
		return -1;
	struct fp_sampler *s = NULL;
	if (open_sampler(r, &o, &s))
		return -1;
	struct fp_profile *p = fp_profile_new();
	if (!p) {
		fp_sampler_close(s);
		return fp_req_fail(r, "memory", FP_EXIT_CMD, "perf: out of memory");
	}
	double start = now_s();
	bool exited = false;
	int rc = sample_until(r, s, p, duration > 0 ? start + duration : 0, &exited);
	int e = errno;
	struct fp_sampler_stats zero = {0};
	json_t *ev = rc ? NULL : profile_event(r, s, p, &zero, now_s() - start, o.rate_hz, exited);
	fp_sampler_close(s);
	fp_profile_free(p);
	if (rc)
		return fp_req_fail(r, "sampler", FP_EXIT_CMD, "perf: sampling failed: %s",
				   strerror(e));
	if (!ev)
		return fp_req_fail(r, "memory", FP_EXIT_CMD, "perf: out of memory");
	return fp_req_emit(r, ev);
}

int fp_cmd_top(struct fp_req *r)
{
	struct fp_sampler_opts o = {0};
	if (parse_rate(r, &o.rate_hz))
		return -1;
	struct fp_sampler *s = NULL;
	if (open_sampler(r, &o, &s))
		return -1;
	struct fp_sampler_stats prev = {0};
	bool exited = false;
	int rc = 0;
	/* Intervals follow a fixed schedule, so slow emits do not make them drift. */
	double start = now_s(), next = start + TOP_INTERVAL_S;
	while (rc == 0 && !exited && !fp_req_cancelled(r)) {
		struct fp_profile *p = fp_profile_new();
		if (!p) {
			rc = fp_req_fail(r, "memory", FP_EXIT_CMD, "top: out of memory");
			break;
		}
		double begun = now_s();
		if (sample_until(r, s, p, next, &exited)) {
			rc = fp_req_fail(r, "sampler", FP_EXIT_CMD, "top: sampling failed: %s",
					 strerror(errno));
		} else if (!fp_req_cancelled(r)) {
			json_t *ev =
			    profile_event(r, s, p, &prev, now_s() - begun, o.rate_hz, exited);
			rc = ev ? fp_req_emit(r, ev)
				: fp_req_fail(r, "memory", FP_EXIT_CMD, "top: out of memory");
		}
		fp_profile_free(p);
		next += TOP_INTERVAL_S;
	}
	fp_sampler_close(s);
	return rc;
}
