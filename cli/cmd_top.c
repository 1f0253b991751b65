/*
 * `top`: a live view of the hottest functions, like py-spy top.  fpd sends
 * one profile event per second (that second's samples, daemon/perf.c); the
 * table keeps cumulative own and total samples per function and shows the
 * latest second's shares next to them.
 *
 * On a terminal it is a full-screen ncurses view: keys 1-4 sort by a column,
 * q or Ctrl-C quits.  On a pipe (or with --json) it prints a text table (or
 * the events) every second until Ctrl-C, which ends it normally, or
 * --timeout, which ends it with "top: timed out after S s" and status 1 as it
 * ends every command.
 *
 * The request loop is its own, not cli_request(): it must also wake on the
 * keyboard, and a quit is the normal way out, not a cancelled command.
 */
#include <curses.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "fp/proto.h"
#include "top.h"

#define CANCEL_WAIT_MS 2000
#define FRAME_WAIT_MS  30000
#define TEXT_ROWS      20

/* ---- the table ---- */

static uint64_t hash_key(const char *func, const char *file)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (const char *p = func; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
	h = (h ^ 0xff) * 0x100000001b3ULL;
	for (const char *p = file; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
	return h;
}

static int grow_slots(struct cli_top *t)
{
	size_t n = t->nslots ? t->nslots * 2 : 256;
	size_t *slot = calloc(n, sizeof(*slot));
	if (!slot)
		return -1;
	for (size_t i = 0; i < t->nfns; i++) {
		size_t j = hash_key(t->fns[i].func, t->fns[i].file) & (n - 1);
		while (slot[j])
			j = (j + 1) & (n - 1);
		slot[j] = i + 1;
	}
	free(t->slot);
	t->slot = slot;
	t->nslots = n;
	return 0;
}

/* The function of one frame of the event, added if new; NULL when out of memory. */
static struct cli_top_fn *intern(struct cli_top *t, const json_t *frame)
{
	const char *func = cli_jstr(frame, "func", NULL);
	const char *file = cli_jstr(frame, "file", NULL);
	bool native = strcmp(cli_jstr(frame, "kind", "python"), "native") == 0;
	if (!func || !*func)
		func = "[unknown]";
	if (!file || !*file)
		file = cli_jstr(frame, "library", "");
	if ((t->nfns + 1) * 2 > t->nslots && grow_slots(t))
		return NULL;
	size_t mask = t->nslots - 1, j = hash_key(func, file) & mask;
	for (; t->slot[j]; j = (j + 1) & mask) {
		struct cli_top_fn *f = &t->fns[t->slot[j] - 1];
		if (strcmp(f->func, func) == 0 && strcmp(f->file, file) == 0)
			return f;
	}
	if (t->nfns == t->capfns) {
		size_t cap = t->capfns ? t->capfns * 2 : 64;
		struct cli_top_fn *fns = realloc(t->fns, cap * sizeof(*fns));
		if (!fns)
			return NULL;
		t->fns = fns;
		t->capfns = cap;
	}
	struct cli_top_fn *f = &t->fns[t->nfns];
	*f = (struct cli_top_fn){.func = strdup(func),
				 .file = strdup(file),
				 .line = cli_jint(frame, "line", 0),
				 .native = native};
	if (!f->func || !f->file) {
		free(f->func);
		free(f->file);
		return NULL;
	}
	t->slot[j] = ++t->nfns;
	return f;
}

static int cmp_tid(const void *a, const void *b)
{
	json_int_t x = *(const json_int_t *)a, y = *(const json_int_t *)b;
	return (x > y) - (x < y);
}

int cli_top_add(struct cli_top *t, const json_t *profile)
{
	const json_t *frames = json_object_get(profile, "frames");
	const json_t *stacks = json_object_get(profile, "stacks");
	if (!json_is_array(frames) || !json_is_array(stacks)) {
		errno = EINVAL;
		return -1;
	}
	size_t nframes = json_array_size(frames), nstacks = json_array_size(stacks);
	/* Event frame index -> function index (the fns array may move while it grows). */
	size_t *map = malloc((nframes ? nframes : 1) * sizeof(*map));
	json_int_t *tids = malloc((nstacks ? nstacks : 1) * sizeof(*tids));
	if (!map || !tids) {
		free(map);
		free(tids);
		errno = ENOMEM;
		return -1;
	}
	for (size_t i = 0; i < nframes; i++) {
		const struct cli_top_fn *f = intern(t, json_array_get(frames, i));
		if (!f) {
			free(map);
			free(tids);
			errno = ENOMEM;
			return -1;
		}
		map[i] = (size_t)(f - t->fns);
	}
	for (size_t i = 0; i < t->nfns; i++)
		t->fns[i].own_last = t->fns[i].total_last = 0;
	t->samples_last = 0;
	size_t ntids = 0;
	for (size_t i = 0; i < nstacks; i++) {
		const json_t *st = json_array_get(stacks, i);
		const json_t *idx = json_object_get(st, "frames");
		json_int_t count = cli_jint(st, "count", 0);
		if (count <= 0 || !json_is_array(idx))
			continue;
		tids[ntids++] = cli_jint(st, "tid", 0);
		t->samples_last += (uint64_t)count;
		t->stamp++;
		size_t depth = json_array_size(idx);
		for (size_t k = 0; k < depth; k++) {
			json_t *v = json_array_get(idx, k);
			if (!json_is_integer(v) || json_integer_value(v) < 0 ||
			    (size_t)json_integer_value(v) >= nframes)
				continue;
			struct cli_top_fn *f = &t->fns[map[json_integer_value(v)]];
			if (k == depth - 1)
				f->own_last += (uint64_t)count;
			/* A recursive function is on the stack once as far as time goes. */
			if (f->stamp != t->stamp) {
				f->stamp = t->stamp;
				f->total_last += (uint64_t)count;
			}
		}
	}
	for (size_t i = 0; i < t->nfns; i++) {
		t->fns[i].own += t->fns[i].own_last;
		t->fns[i].total += t->fns[i].total_last;
	}
	qsort(tids, ntids, sizeof(*tids), cmp_tid);
	t->threads_last = 0;
	for (size_t i = 0; i < ntids; i++)
		t->threads_last += i == 0 || tids[i] != tids[i - 1];
	free(map);
	free(tids);
	t->samples += t->samples_last;
	t->lost += (uint64_t)cli_jint(profile, "lost", 0);
	t->faulted += (uint64_t)cli_jint(profile, "faulted", 0);
	json_t *v = json_object_get(profile, "rate");
	if (json_is_number(v) && json_number_value(v) > 0)
		t->rate = json_number_value(v);
	v = json_object_get(profile, "duration_s");
	t->seconds_last = json_is_number(v) ? json_number_value(v) : 0;
	t->seconds += t->seconds_last;
	t->exited = t->exited || json_is_true(json_object_get(profile, "exited"));
	t->events++;
	return 0;
}

static uint64_t sort_value(const struct cli_top_fn *f, enum cli_top_sort key)
{
	switch (key) {
	case CLI_TOP_OWN_PCT:
		return f->own_last;
	case CLI_TOP_TOTAL_PCT:
		return f->total_last;
	case CLI_TOP_TOTAL_TIME:
		return f->total;
	default:
		return f->own;
	}
}

struct order_ctx {
	const struct cli_top *t;
	enum cli_top_sort key;
};

/* qsort has no context argument; the comparison is only ever run by one thread. */
static struct order_ctx order_ctx;

static int by_key(const void *pa, const void *pb)
{
	const struct cli_top_fn *a = &order_ctx.t->fns[*(const size_t *)pa];
	const struct cli_top_fn *b = &order_ctx.t->fns[*(const size_t *)pb];
	uint64_t x = sort_value(a, order_ctx.key), y = sort_value(b, order_ctx.key);
	if (x != y)
		return x < y ? 1 : -1;
	if (a->own != b->own)
		return a->own < b->own ? 1 : -1;
	int c = strcmp(a->func, b->func);
	return c ? c : strcmp(a->file, b->file);
}

size_t *cli_top_order(const struct cli_top *t, enum cli_top_sort key, size_t *n)
{
	*n = 0;
	if (!t->nfns)
		return NULL;
	size_t *idx = malloc(t->nfns * sizeof(*idx));
	if (!idx)
		return NULL;
	for (size_t i = 0; i < t->nfns; i++)
		idx[i] = i;
	order_ctx = (struct order_ctx){t, key};
	qsort(idx, t->nfns, sizeof(*idx), by_key);
	*n = t->nfns;
	return idx;
}

void cli_top_format_time(char *buf, size_t len, double s)
{
	if (s < 100)
		snprintf(buf, len, "%.2fs", s);
	else if (s < 3600)
		snprintf(buf, len, "%dm%02ds", (int)(s / 60), (int)s % 60);
	else
		snprintf(buf, len, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
}

static double pct(uint64_t n, uint64_t of)
{
	return of ? 100.0 * (double)n / (double)of : 0.0;
}

/* Sampled seconds of n samples: each sample stands for 1/rate s of one thread. */
static double secs(const struct cli_top *t, uint64_t n)
{
	return t->rate > 0 ? (double)n / t->rate : 0;
}

static const char *const column_names[] = {"", "%Own", "%Total", "OwnTime", "TotalTime"};

/* The five columns of one function, "function (file:line)" last. */
static void format_row(const struct cli_top *t, const struct cli_top_fn *f, char *nums, size_t nlen)
{
	char own[16], total[16];
	cli_top_format_time(own, sizeof(own), secs(t, f->own));
	cli_top_format_time(total, sizeof(total), secs(t, f->total));
	snprintf(nums, nlen, "%6.1f%% %6.1f%% %9s %9s  ", pct(f->own_last, t->samples_last),
		 pct(f->total_last, t->samples_last), own, total);
}

static void put_place(FILE *out, const struct cli_top_fn *f)
{
	cli_put_safe(out, f->func);
	if (!*f->file)
		return;
	fputs(" (", out);
	cli_put_safe(out, f->file);
	if (f->line > 0 && !f->native)
		fprintf(out, ":%lld", (long long)f->line);
	putc(')', out);
}

static void header_text(const struct cli_top *t, pid_t pid, const char *version, char *buf,
			size_t len)
{
	snprintf(buf, len,
		 "pid %d%s%s: %.0f samples/s, %zu thread%s, %llu lost, %llu faulted, %.0f s "
		 "sampled%s",
		 (int)pid, *version ? ", Python " : "", version,
		 t->seconds_last > 0 ? (double)t->samples_last / t->seconds_last : 0,
		 t->threads_last, t->threads_last == 1 ? "" : "s", (unsigned long long)t->lost,
		 (unsigned long long)t->faulted, t->seconds, t->exited ? " (process exited)" : "");
}

void cli_top_print(const struct cli_top *t, FILE *out, pid_t pid, const char *version,
		   enum cli_top_sort key, size_t max_rows)
{
	char head[256];
	header_text(t, pid, version, head, sizeof(head));
	time_t now = time(NULL);
	struct tm tm;
	char clock[16] = "";
	if (localtime_r(&now, &tm))
		strftime(clock, sizeof(clock), "%H:%M:%S", &tm);
	fprintf(out, "%s top: %s\n", clock, head);
	fprintf(out, "%7s %7s %9s %9s  %s  (sorted by %s)\n", "%Own", "%Total", "OwnTime",
		"TotalTime", "Function (file:line)", column_names[key]);
	size_t n;
	size_t *order = cli_top_order(t, key, &n);
	size_t shown = 0;
	for (size_t i = 0; i < n && shown < max_rows; i++) {
		const struct cli_top_fn *f = &t->fns[order[i]];
		if (!f->total)
			continue;
		char nums[64];
		format_row(t, f, nums, sizeof(nums));
		fputs(nums, out);
		put_place(out, f);
		putc('\n', out);
		shown++;
	}
	if (!t->samples_last)
		fputs(
		    "(no samples in the last second: the process is idle or not running Python)\n",
		    out);
	putc('\n', out);
	free(order);
}

void cli_top_free(struct cli_top *t)
{
	for (size_t i = 0; i < t->nfns; i++) {
		free(t->fns[i].func);
		free(t->fns[i].file);
	}
	free(t->fns);
	free(t->slot);
	memset(t, 0, sizeof(*t));
}

/* ---- the screen ---- */

struct top_ui {
	struct cli_ctx *ctx;
	struct cli_top table;
	enum cli_top_sort key;
	char version[32]; /* the target's CPython version, "" if unknown */
	bool curses;	  /* the full-screen view is up */
	bool keys;	  /* stdin is the terminal: read keys from it */
};

/* Writes s into at most `width` columns from the cursor; control bytes show as '?'. */
static void put_clipped(const char *s, int width)
{
	for (; *s && width > 0; s++, width--)
		addch((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : (chtype)(unsigned char)*s);
}

static void draw(struct top_ui *u)
{
	const struct cli_top *t = &u->table;
	char buf[512];
	erase();
	attron(A_BOLD);
	mvaddstr(0, 0, "fpctl top");
	attroff(A_BOLD);
	header_text(t, u->ctx->pid, u->version, buf, sizeof(buf));
	addstr("  ");
	put_clipped(buf, COLS - 11);
	move(1, 0);
	snprintf(buf, sizeof(buf), "Sorted by %s; keys 1-4 sort by a column, q quits.",
		 column_names[u->key]);
	put_clipped(buf, COLS);
	if (!t->events) {
		mvaddstr(3, 0, "Waiting for the first second of samples...");
		refresh();
		return;
	}
	/* Column titles in reverse video, the sort column underlined. */
	move(3, 0);
	attron(A_REVERSE);
	static const int widths[] = {0, 7, 8, 10, 10};
	for (int c = 1; c <= 4; c++) {
		snprintf(buf, sizeof(buf), "%*s", widths[c], column_names[c]);
		if (c == (int)u->key)
			attron(A_UNDERLINE | A_BOLD);
		addstr(buf);
		if (c == (int)u->key)
			attroff(A_UNDERLINE | A_BOLD);
	}
	snprintf(buf, sizeof(buf), "  %-*s", COLS > 45 ? COLS - 45 : 0, "Function (file:line)");
	put_clipped(buf, COLS - 35);
	attroff(A_REVERSE);

	size_t n;
	size_t *order = cli_top_order(t, u->key, &n);
	int y = 4;
	for (size_t i = 0; i < n && y < LINES; i++) {
		const struct cli_top_fn *f = &t->fns[order[i]];
		if (!f->total)
			continue;
		format_row(t, f, buf, sizeof(buf));
		move(y++, 0);
		put_clipped(buf, COLS);
		/* A long path gives way to the function name: the file's base name then. */
		int room = COLS - (int)strlen(buf);
		const char *file = f->file;
		char line[32] = "";
		if (f->line > 0 && !f->native)
			snprintf(line, sizeof(line), ":%lld", (long long)f->line);
		if ((int)(strlen(f->func) + strlen(file) + strlen(line) + 3) > room &&
		    strrchr(file, '/'))
			file = strrchr(file, '/') + 1;
		snprintf(buf, sizeof(buf), *file ? "%s (%s%s)" : "%s", f->func, file, line);
		put_clipped(buf, room);
	}
	free(order);
	if (!t->samples_last && y < LINES)
		mvaddstr(y, 0, "(no samples in the last second: the process is idle)");
	refresh();
}

static bool start_curses(struct top_ui *u)
{
	if (!isatty(STDOUT_FILENO) || u->ctx->g.json)
		return false;
	/* newterm, not initscr: a terminal curses cannot drive falls back to text. */
	SCREEN *s = newterm(NULL, stdout, stdin);
	if (!s)
		return false;
	set_term(s);
	u->keys = isatty(STDIN_FILENO);
	cbreak(); /* Ctrl-C still raises SIGINT, which quits like q */
	noecho();
	nodelay(stdscr, TRUE);
	keypad(stdscr, TRUE);
	curs_set(0);
	u->curses = true;
	draw(u);
	return true;
}

static void stop_curses(struct top_ui *u)
{
	if (!u->curses)
		return;
	endwin();
	delscreen(set_term(NULL));
	u->curses = false;
}

/* Handles the keys typed so far; true when one of them quits. */
static bool read_keys(struct top_ui *u)
{
	bool redraw = false;
	int ch;
	while ((ch = getch()) != ERR) {
		if (ch == 'q' || ch == 'Q')
			return true;
		if (ch >= '1' && ch <= '4') {
			u->key = (enum cli_top_sort)(ch - '0');
			redraw = true;
		} else if (ch == KEY_RESIZE || ch == 12 /* Ctrl-L */) {
			redraw = true;
		}
	}
	if (redraw)
		draw(u);
	return false;
}

static int on_profile(struct top_ui *u, const json_t *ev)
{
	if (u->ctx->g.json) {
		cli_print_json(stdout, ev);
		return 0;
	}
	if (cli_top_add(&u->table, ev)) {
		stop_curses(u);
		return cli_fail(u->ctx, 1, "protocol", "top: %s",
				errno == ENOMEM ? "out of memory" : "fpd sent a malformed profile");
	}
	if (u->curses)
		draw(u);
	else
		cli_top_print(&u->table, stdout, u->ctx->pid, u->version, u->key, TEXT_ROWS);
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* After a cancel: frames until the request's end, for at most CANCEL_WAIT_MS. */
static void drain(struct cli_conn *c, json_int_t id)
{
	long long deadline = now_ms() + CANCEL_WAIT_MS;
	for (;;) {
		long long left = deadline - now_ms();
		json_t *m = NULL;
		if (left <= 0 || fp_frame_recv(c->fd, &m, (int)left) != FP_FRAME_OK)
			return;
		const char *type = cli_jstr(m, "type", "");
		bool over = cli_jint(m, "id", -1) == id &&
			    (strcmp(type, "end") == 0 || strcmp(type, "error") == 0);
		json_decref(m);
		if (over)
			return;
	}
}

/*
 * The request's frames until it ends (0 or the error's status), the user
 * stops it (-1) or --timeout does (-2).
 */
static int run(struct top_ui *u, json_int_t id)
{
	struct cli_ctx *ctx = u->ctx;
	struct cli_conn *c = ctx->conn;
	long long deadline =
	    ctx->g.timeout_s > 0 ? now_ms() + (long long)(ctx->g.timeout_s * 1000) : -1;
	for (;;) {
		if (cli_signal_pending())
			return -1;
		long long now = now_ms();
		if (deadline >= 0 && now >= deadline)
			return -2;
		struct pollfd p[3] = {{.fd = c->fd, .events = POLLIN},
				      {.fd = cli_signal_fd(), .events = POLLIN},
				      {.fd = u->keys ? STDIN_FILENO : -1, .events = POLLIN}};
		int n = poll(p, 3, deadline < 0 ? -1 : (int)(deadline - now));
		/* A resize interrupts poll (SIGWINCH); curses reports it as a key. */
		if (u->curses && read_keys(u))
			return -1;
		if (n < 0 && errno != EINTR) {
			stop_curses(u);
			return cli_fail(ctx, 1, "poll", "top: waiting for fpd failed: %s",
					strerror(errno));
		}
		if (n <= 0 || !(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		json_t *m = NULL;
		int rc = fp_frame_recv(c->fd, &m, FRAME_WAIT_MS);
		if (rc != FP_FRAME_OK) {
			c->broken = true;
			stop_curses(u);
			return cli_fail(ctx, 1, "connection", "lost the connection to fpd: %s",
					rc == FP_FRAME_EOF ? "fpd closed it"
							   : fp_frame_strerror(rc));
		}
		if (cli_jint(m, "id", -1) != id) {
			json_decref(m);
			continue;
		}
		const char *type = cli_jstr(m, "type", "");
		if (strcmp(type, "event") == 0 &&
		    strcmp(cli_jstr(m, "event", ""), "profile") == 0) {
			rc = on_profile(u, m);
			json_decref(m);
			if (rc)
				return rc;
			continue;
		}
		if (strcmp(type, "end") == 0) {
			json_decref(m);
			return 0;
		}
		if (strcmp(type, "error") == 0) {
			stop_curses(u);
			json_int_t ex = cli_jint(m, "exit", FP_EXIT_CMD);
			if (ctx->g.json)
				cli_print_json(stdout, m);
			fputs(ctx->shell ? "" : "fpctl: ", stderr);
			cli_put_safe(stderr, cli_jstr(m, "message", "top failed"));
			putc('\n', stderr);
			json_decref(m);
			return ex >= 1 && ex <= 125 ? (int)ex : 1;
		}
		json_decref(m);
	}
}

/* A ps event: the target's version for the header. */
static int on_process(void *ud, const json_t *ev)
{
	struct top_ui *u = ud;
	if (cli_jint(ev, "pid", -1) == u->ctx->pid)
		snprintf(u->version, sizeof(u->version), "%s", cli_jstr(ev, "version", ""));
	return 0;
}

int cli_cmd_top(struct cli_ctx *ctx, const struct cli_cmd *cmd)
{
	struct top_ui u = {.ctx = ctx, .key = CLI_TOP_OWN_TIME};
	struct cli_conn *c = ctx->conn;
	/* Profile events do not carry the version; ps does, in a few ms. */
	if (!ctx->g.json) {
		int rc = cli_request(ctx, "ps", 0, NULL, on_process, &u);
		if (rc)
			return rc;
	}
	json_int_t id = ++c->last_id;
	json_t *req = json_pack("{s:s, s:I, s:s, s:i, s:{s:i}}", "type", "request", "id", id, "cmd",
				"top", "pid", (int)ctx->pid, "args", "rate", cmd->u.top.rate);
	int rc = req ? fp_frame_send(c->fd, req) : FP_FRAME_IO;
	json_decref(req);
	if (rc != FP_FRAME_OK) {
		c->broken = true;
		return cli_fail(ctx, 1, "connection", "lost the connection to fpd: %s",
				fp_frame_strerror(rc));
	}
	start_curses(&u);
	rc = run(&u, id);
	stop_curses(&u);
	if (rc < 0) {
		/* q and Ctrl-C are the normal end of a live view. */
		json_t *m = json_pack("{s:s, s:I}", "type", "cancel", "id", id);
		fp_frame_send(c->fd, m);
		json_decref(m);
		drain(c, id);
		rc = rc == -2 ? cli_timeout_fail(ctx, "top") : 0;
	} else if (rc == 0 && u.table.exited) {
		printf("top: process %d exited\n", (int)ctx->pid);
	}
	cli_top_free(&u.table);
	return rc;
}
