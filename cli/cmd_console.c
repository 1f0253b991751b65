/*
 * `console`: an interactive Python console inside the target
 * (agent/py/console.py).  One request stays open for the whole console;
 * each line typed goes to it as an input frame, and the helper answers
 * with output events and then a prompt event (">>> ", or "... " inside a
 * block).  So the loop alternates between reading a line (libedit on a
 * terminal, with a history of its own so that Python lines do not mix with
 * the shell's; plain lines from a pipe) and reading frames until the next
 * prompt, when Ctrl-C becomes an interrupt of the running statement.
 * --timeout counts from the start of the console, time spent waiting for
 * input included, and ends it as it ends every command.
 */
#include <errno.h>
#include <histedit.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agentcmd.h"
#include "fp/proto.h"

#define CANCEL_WAIT_MS 2000
#define FRAME_WAIT_MS  30000

struct console {
	struct cli_ctx *ctx;
	json_int_t id;
	bool tty;
	EditLine *el;
	History *hist;
	char prompt[16];
	int status; /* once the request is over: fpctl's exit status */
	bool over;
	bool started;	    /* the helper's first prompt came: statements can run */
	long long deadline; /* --timeout's end, -1: none */
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* libedit asks for the prompt through a callback; EL_CLIENTDATA leads back to it. */
static char *el_prompt(EditLine *el)
{
	struct console *c = NULL;
	el_get(el, EL_CLIENTDATA, &c);
	return c ? c->prompt : "";
}

static bool editor_open(struct console *c)
{
	c->el = el_init("fpctl-console", stdin, stdout, stderr);
	c->hist = history_init();
	if (!c->el || !c->hist)
		return false;
	HistEvent hev;
	history(c->hist, &hev, H_SETSIZE, 1000);
	el_set(c->el, EL_CLIENTDATA, c);
	el_set(c->el, EL_PROMPT, el_prompt);
	el_set(c->el, EL_EDITOR, "emacs");
	el_set(c->el, EL_HIST, history, c->hist);
	/* Indentation: Tab inserts itself rather than completing. */
	el_set(c->el, EL_BIND, "^I", "ed-insert", NULL);
	return true;
}

static void editor_close(struct console *c)
{
	if (c->el)
		el_end(c->el);
	if (c->hist)
		history_end(c->hist);
}

/*
 * The next line without its newline (malloc'd), or NULL at end of input or
 * when a signal interrupted the read (cli_signal_pending() tells which).
 */
static char *read_line(struct console *c)
{
	if (c->tty) {
		/*
		 * el_gets() prints the prompt before it leaves cooked mode, and a
		 * Ctrl-D typed at that prompt in cooked mode becomes a NUL byte
		 * once the terminal is raw: the editor takes the terminal first.
		 */
		el_set(c->el, EL_PREP_TERM, 1);
		int count;
		const char *s = el_gets(c->el, &count);
		if (!s || count <= 0)
			return NULL;
		char *line = strdup(s);
		if (!line)
			return NULL;
		size_t n = strlen(line);
		if (n && line[n - 1] == '\n')
			line[--n] = '\0';
		if (n) {
			HistEvent hev;
			history(c->hist, &hev, H_ENTER, line);
		}
		return line;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, stdin);
	if (n < 0) {
		free(line);
		clearerr(stdin); /* after EINTR, the next read must try again */
		return NULL;
	}
	if (n && line[n - 1] == '\n')
		line[n - 1] = '\0';
	return line;
}

/* The target's text as it printed it, but no control character other than newline and tab. */
static void put_text(FILE *f, const json_t *text)
{
	const char *s = json_string_value(text);
	size_t len = json_string_length(text);
	size_t i = 0;
	while (s && i < len) {
		size_t n = 0;
		while (i + n < len) {
			unsigned char ch = (unsigned char)s[i + n];
			if ((ch < 0x20 && ch != '\n' && ch != '\t') || ch == 0x7f)
				break;
			n++;
		}
		fwrite(s + i, 1, n, f);
		i += n;
		if (i < len)
			fprintf(f, "\\x%02x", (unsigned char)s[i++]);
	}
	fflush(f);
}

static int send_input(struct console *c, const char *key, json_t *value)
{
	json_t *obj = json_object();
	json_object_set_new(obj, key, value);
	int rc = cli_send_input(c->ctx, c->id, obj);
	json_decref(obj);
	return rc;
}

static void request_over(struct console *c, int status)
{
	c->over = true;
	c->status = status;
}

/* One frame of the console's request; true when it was the prompt to read the next line. */
static bool on_frame(struct console *c, json_t *m)
{
	struct cli_ctx *ctx = c->ctx;
	const char *type = cli_jstr(m, "type", "");
	if (strcmp(type, "end") == 0) {
		request_over(c, 0);
		return false;
	}
	if (strcmp(type, "error") == 0) {
		json_int_t ex = cli_jint(m, "exit", FP_EXIT_CMD);
		if (ctx->g.json)
			cli_print_json(stdout, m);
		fputs(ctx->shell ? "" : "fpctl: ", stderr);
		cli_put_safe(stderr,
			     cli_jstr(m, "message", "fpd reported an error without a message"));
		putc('\n', stderr);
		request_over(c, ex >= 1 && ex <= 125 ? (int)ex : FP_EXIT_CMD);
		return false;
	}
	if (strcmp(type, "event") != 0)
		return false;
	const char *ev = cli_jstr(m, "event", "");
	bool prompt = strcmp(ev, "console_prompt") == 0;
	if (prompt) {
		snprintf(c->prompt, sizeof(c->prompt), "%s", cli_jstr(m, "prompt", ">>> "));
		c->started = true;
	}
	if (ctx->g.json) {
		cli_print_json(stdout, m);
		fflush(stdout);
		return prompt;
	}
	if (cli_agent_generic_event(ctx, m))
		return false;
	if (strcmp(ev, "console_out") == 0) {
		bool err = strcmp(cli_jstr(m, "stream", ""), "stderr") == 0;
		if (err)
			fflush(stdout);
		put_text(err ? stderr : stdout, json_object_get(m, "text"));
	} else if (prompt && c->tty && json_object_get(m, "banner")) {
		cli_put_safe(stdout, cli_jstr(m, "banner", ""));
		putchar('\n');
		fflush(stdout);
	}
	return prompt;
}

/*
 * Reads frames until the helper's next prompt or the request's end.
 * Ctrl-C interrupts the running statement; a second one, should the
 * statement not stop (blocked in a C call, which sees the interrupt only
 * when it returns), leaves the console and lets the statement go on.
 */
static void wait_prompt(struct console *c)
{
	struct cli_ctx *ctx = c->ctx;
	long long deadline = c->deadline;
	long long cancel_deadline = -1;
	int cancel_status = 0;
	bool interrupted = false;
	while (!c->over) {
		int sig = cli_signal_pending();
		if (sig && cancel_deadline < 0) {
			cli_signal_clear();
			/* Before the first prompt (waiting for the GIL) there is no statement. */
			if (sig == SIGINT && !interrupted && c->started) {
				interrupted = true;
				if (send_input(c, "interrupt", json_true())) {
					request_over(c, 1);
					return;
				}
				continue;
			}
			if (sig == SIGINT && c->started)
				fprintf(
				    stderr,
				    "%sthe statement does not stop (a blocking call?); leaving the "
				    "console, the statement goes on in the process\n",
				    ctx->shell ? "" : "fpctl: ");
			cli_send_cancel(ctx, c->id);
			cancel_status = 128 + sig;
			cancel_deadline = now_ms() + CANCEL_WAIT_MS;
		}
		long long now = now_ms();
		if (cancel_deadline >= 0 && now >= cancel_deadline) {
			request_over(c, cancel_status);
			return;
		}
		if (cancel_deadline < 0 && deadline >= 0 && now >= deadline) {
			cli_send_cancel(ctx, c->id);
			request_over(c, cli_timeout_fail(ctx, "console"));
			return;
		}
		long long until = cancel_deadline >= 0 ? cancel_deadline : deadline;
		struct pollfd p[2] = {
		    {.fd = ctx->conn->fd, .events = POLLIN},
		    {.fd = cancel_deadline < 0 ? cli_signal_fd() : -1, .events = POLLIN}};
		int n = poll(p, 2, until < 0 ? -1 : (int)(until - now));
		if (n < 0 && errno != EINTR) {
			request_over(c, cli_fail(ctx, 1, "poll", "waiting for fpd failed: %s",
						 strerror(errno)));
			return;
		}
		if (n <= 0 || !(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		json_t *m = NULL;
		int rc = fp_frame_recv(ctx->conn->fd, &m, FRAME_WAIT_MS);
		if (rc != FP_FRAME_OK) {
			request_over(c, cancel_deadline >= 0 ? cancel_status : cli_lost(ctx, rc));
			return;
		}
		/* Frames of an earlier, cancelled request may still arrive. */
		bool prompt = cli_jint(m, "id", -1) == c->id && on_frame(c, m);
		json_decref(m);
		if (cancel_deadline >= 0 && c->over)
			c->status = cancel_status; /* left by Ctrl-C, however the request ended */
		if (prompt && cancel_deadline < 0)
			return;
	}
}

/*
 * At the end of the input: a block typed up to its last line still runs,
 * as the blank line that would have closed it is sent first.
 */
static void finish(struct console *c)
{
	if (strcmp(c->prompt, "... ") == 0 && !send_input(c, "line", json_string(""))) {
		wait_prompt(c);
		if (c->over)
			return;
	}
	if (send_input(c, "eof", json_true())) {
		request_over(c, 1);
		return;
	}
	while (!c->over)
		wait_prompt(c);
}

/* Until input can be read (0), --timeout's end (1) or a signal (2). */
static int wait_input(const struct console *c)
{
	for (;;) {
		if (cli_signal_pending())
			return 2;
		if (c->deadline < 0)
			return 0;
		long long left = c->deadline - now_ms();
		if (left <= 0)
			return 1;
		struct pollfd p[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
				      {.fd = cli_signal_fd(), .events = POLLIN}};
		int n = poll(p, 2, (int)left);
		if (n < 0 && errno != EINTR)
			return 0; /* the read reports what is wrong with stdin */
		if (n > 0 && p[0].revents)
			return 0;
	}
}

static void loop(struct console *c)
{
	while (!c->over) {
		wait_prompt(c);
		if (c->over)
			return;
		for (;;) {
			cli_signal_clear();
			int ready = wait_input(c);
			if (ready == 1) {
				cli_send_cancel(c->ctx, c->id);
				request_over(c, cli_timeout_fail(c->ctx, "console"));
				return;
			}
			char *line = ready == 0 ? read_line(c) : NULL;
			int sig = cli_signal_pending();
			if (line) {
				int rc = send_input(c, "line", json_string(line));
				free(line);
				if (rc) {
					request_over(c, rc);
					return;
				}
				break;
			}
			if (sig == SIGINT) {
				/* As in Python's REPL: the line or block typed so far is dropped.
				 */
				fputs(c->tty ? "\nKeyboardInterrupt\n" : "KeyboardInterrupt\n",
				      stderr);
				snprintf(c->prompt, sizeof(c->prompt), ">>> ");
				if (send_input(c, "reset", json_true())) {
					request_over(c, 1);
					return;
				}
				continue;
			}
			if (sig) {
				cli_send_cancel(c->ctx, c->id);
				request_over(c, 128 + sig);
				return;
			}
			if (c->tty)
				putchar('\n');
			finish(c);
			return;
		}
	}
}

static int console_run(struct cli_ctx *ctx, json_t *args)
{
	struct console c = {.ctx = ctx, .tty = isatty(STDIN_FILENO), .prompt = ">>> "};
	c.deadline = ctx->g.timeout_s > 0 ? now_ms() + (long long)(ctx->g.timeout_s * 1000) : -1;
	/*
	 * poll() sees only what stdio has not read ahead yet: with a deadline,
	 * lines from a pipe are read without a buffer (libedit reads bytes).
	 */
	if (c.deadline >= 0 && !c.tty)
		setvbuf(stdin, NULL, _IONBF, 0);
	if (c.tty && !editor_open(&c)) {
		editor_close(&c);
		json_decref(args);
		return cli_fail(ctx, 1, "terminal", "console: cannot set up line editing");
	}
	c.id = cli_request_send(ctx, "console", ctx->pid, args);
	if (c.id < 0)
		request_over(&c, 1);
	else
		loop(&c);
	editor_close(&c);
	fflush(stdout);
	return c.status;
}

const struct cli_agent_cmd cli_agent_console = {
    .opts = NULL,
    .min_pos = 0,
    .max_pos = 0,
    .pos_usage = "",
    .run = console_run,
};
