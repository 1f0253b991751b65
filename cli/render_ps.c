/*
 * Text of `ps` (a table sized from its rows) and `status` (key: value).
 * ps event (daemon/ps.c): {"event":"process","pid":N,"user":"root","uid":0,
 *   "version":"3.11.7","build":"shared,symbols","exe":"...","helper":false}
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_ps_add(struct cli_ps_render *r, const json_t *ev)
{
	if (!r->rows)
		r->rows = json_array();
	json_array_append(r->rows, (json_t *)ev);
}

static int by_pid(const void *a, const void *b)
{
	json_int_t x = cli_jint(*(json_t *const *)a, "pid", 0);
	json_int_t y = cli_jint(*(json_t *const *)b, "pid", 0);
	return (x > y) - (x < y);
}

enum { COL_PID, COL_USER, COL_VERSION, COL_BUILD, COL_EXE, COL_HELPER, NCOLS };

static const char *const headers[NCOLS] = {"PID",   "USER",	  "VERSION",
					   "BUILD", "EXECUTABLE", "HELPER"};

static void cells(const json_t *ev, char pid[24], const char *c[NCOLS])
{
	snprintf(pid, 24, "%lld", (long long)cli_jint(ev, "pid", 0));
	c[COL_PID] = pid;
	c[COL_USER] = cli_jstr(ev, "user", "?");
	c[COL_VERSION] = cli_jstr(ev, "version", "?");
	c[COL_BUILD] = cli_jstr(ev, "build", "?");
	c[COL_EXE] = cli_jstr(ev, "exe", "?");
	c[COL_HELPER] = json_is_true(json_object_get(ev, "helper")) ? "yes" : "no";
}

static void print_row(FILE *out, const char *c[NCOLS], const size_t w[NCOLS])
{
	/* PID right-aligned as in ps(1); the last column is not padded. */
	fprintf(out, "%*s", (int)w[COL_PID], c[COL_PID]);
	for (int k = 1; k < NCOLS; k++) {
		fputs("  ", out);
		cli_put_safe(out, c[k]);
		if (k < NCOLS - 1)
			fprintf(out, "%*s", (int)(w[k] - strlen(c[k])), "");
	}
	putc('\n', out);
}

void cli_ps_print(struct cli_ps_render *r, FILE *out, bool color)
{
	size_t n = json_array_size(r->rows);
	json_t **rows = calloc(n ? n : 1, sizeof(*rows));
	if (!rows)
		return;
	for (size_t i = 0; i < n; i++)
		rows[i] = json_array_get(r->rows, i);
	qsort(rows, n, sizeof(*rows), by_pid);

	size_t w[NCOLS];
	for (int k = 0; k < NCOLS; k++)
		w[k] = strlen(headers[k]);
	for (size_t i = 0; i < n; i++) {
		char pid[24];
		const char *c[NCOLS];
		cells(rows[i], pid, c);
		for (int k = 0; k < NCOLS; k++)
			if (strlen(c[k]) > w[k])
				w[k] = strlen(c[k]);
	}
	fputs(CLI_SGR(color, CLI_BOLD), out);
	fprintf(out, "%*s", (int)w[COL_PID], headers[COL_PID]);
	for (int k = 1; k < NCOLS; k++)
		fprintf(out, "  %-*s", k < NCOLS - 1 ? (int)w[k] : 0, headers[k]);
	fprintf(out, "%s\n", CLI_SGR(color, CLI_RESET));
	for (size_t i = 0; i < n; i++) {
		char pid[24];
		const char *c[NCOLS];
		cells(rows[i], pid, c);
		print_row(out, c, w);
	}
	free(rows);
}

void cli_ps_free(struct cli_ps_render *r)
{
	json_decref(r->rows);
	r->rows = NULL;
}

void cli_render_status(FILE *out, const json_t *ev)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)ev, key, v)
	{
		if (strcmp(key, "type") == 0 || strcmp(key, "id") == 0 || strcmp(key, "event") == 0)
			continue;
		fprintf(out, "%s: ", key);
		if (json_is_string(v)) {
			cli_put_safe(out, json_string_value(v));
		} else if (json_is_real(v)) {
			fprintf(out, "%.1f", json_real_value(v));
		} else if (json_is_array(v) && json_array_size(v) == 0) {
			fputs("none", out);
		} else if (json_is_array(v)) {
			size_t i;
			json_t *e;
			json_array_foreach(v, i, e)
			{
				if (i)
					fputs(", ", out);
				if (json_is_string(e)) {
					cli_put_safe(out, json_string_value(e));
				} else {
					char *s = json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY |
								    JSON_ENSURE_ASCII);
					fputs(s ? s : "?", out);
					free(s);
				}
			}
		} else {
			char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
			fputs(s ? s : "?", out);
			free(s);
		}
		putc('\n', out);
	}
}
