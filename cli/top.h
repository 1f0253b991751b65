/*
 * `top`: the per-function table behind the live view, kept apart from the
 * screen so that the aggregation and the sorting are unit-tested.
 */
#ifndef FP_CLI_TOP_H
#define FP_CLI_TOP_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* The columns, in the order of the keys 1-4 that sort by them. */
enum cli_top_sort {
	CLI_TOP_OWN_PCT = 1,
	CLI_TOP_TOTAL_PCT,
	CLI_TOP_OWN_TIME,
	CLI_TOP_TOTAL_TIME,
};

/* A function: every frame of the same name and file. */
struct cli_top_fn {
	char *func, *file; /* file: the library for native frames without one; may be "" */
	json_int_t line;   /* of its first sample: a current line would flicker */
	bool native;
	uint64_t own, total;	       /* samples since the start: innermost / anywhere */
	uint64_t own_last, total_last; /* the same in the latest event */
	uint64_t stamp;		       /* the last stack counted in total (recursion counts once) */
};

struct cli_top {
	struct cli_top_fn *fns;
	size_t nfns, capfns;
	size_t *slot; /* open addressing over fns, index + 1 */
	size_t nslots;
	uint64_t samples, samples_last;
	uint64_t lost, faulted;	      /* since the start */
	size_t threads_last;	      /* distinct threads in the latest event */
	double rate;		      /* samples per second per thread, from the events */
	double seconds, seconds_last; /* sampled time */
	uint64_t events;
	uint64_t stamp;
	bool exited; /* the target exited */
};

/* Adds one profile event.  Returns 0, or -1 with errno (EINVAL, ENOMEM). */
int cli_top_add(struct cli_top *t, const json_t *profile);

/*
 * Indexes into t->fns by the column `key`, largest first; ties go to the
 * larger cumulative own time, then by name.  NULL when out of memory or
 * empty (*n = 0).  Free it.
 */
size_t *cli_top_order(const struct cli_top *t, enum cli_top_sort key, size_t *n);

/* "12.5s", "3m05s", "2h01m": a width of at most 7 columns. */
void cli_top_format_time(char *buf, size_t len, double seconds);

/*
 * The text table of the fallback on a pipe: one header line, the column
 * titles, then at most max_rows functions by key.  version may be "".
 */
void cli_top_print(const struct cli_top *t, FILE *out, pid_t pid, const char *version,
		   enum cli_top_sort key, size_t max_rows);

void cli_top_free(struct cli_top *t);

#endif
