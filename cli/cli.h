/*
 * fpctl internals shared by the files of cli/.
 *
 * Every non-static symbol starts with cli_: the unit tests link the daemon's
 * objects next to these.
 */
#ifndef FP_CLI_H
#define FP_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

/* ---- command table (commands.c) ---- */

enum cli_state {
	CLI_AVAILABLE,
	CLI_PLANNED,
};

/* Where a command is typed: on fpctl's command line, or inside `attach`. */
enum cli_scope {
	CLI_TOP,
	CLI_SHELL,
};

enum cli_cmd_id {
	CLI_CMD_HELP,
	CLI_CMD_STACK,
	CLI_CMD_HISTORY,
	CLI_CMD_CLS,
	CLI_CMD_QUIT,
	CLI_CMD_PS,
	CLI_CMD_STATUS,
	CLI_CMD_ATTACH,
	CLI_CMD_PERF,
	CLI_CMD_GILSTAT,
	CLI_CMD_TOP,
	CLI_CMD_DETACH,
	CLI_CMD_AGENT, /* served by the in-process helper: see agentcmd.h */
	CLI_CMD_OTHER, /* planned commands: nothing of theirs is parsed yet */
};

struct cli_opt_help {
	const char *flags;
	const char *text;
};

struct cli_agent_cmd;

struct cli_command {
	const char *name;
	enum cli_state state;
	enum cli_cmd_id id;
	bool shell_only; /* meaningless outside the interactive shell */
	const char *summary;
	const char *usage;
	const char *description;
	const char *const *examples;
	const struct cli_opt_help *options;
	const struct cli_agent_cmd *agent; /* CLI_CMD_AGENT: options and renderer */
};

const struct cli_command *cli_command_find(enum cli_scope scope, const char *name);
/* The n-th command of a scope, NULL past the end (table order). */
const struct cli_command *cli_command_at(enum cli_scope scope, size_t n);

/* ---- argument parsing (args.c) ---- */

struct cli_error {
	char msg[256];
	const char *topic; /* the command whose help to point at; NULL: general help */
};

struct cli_global {
	const char *socket; /* NULL: not given */
	bool json;
	double timeout_s;  /* 0: none */
	bool trust_socket; /* talk to an fpd that neither root nor this user runs */
};

/* One parsed command of the attach shell (or of `fpctl attach PID cmd ...`). */
struct cli_cmd {
	const struct cli_command *def;
	bool json; /* --json given to this command */
	union {
		struct {
			const char *file;
			bool native, locals, async;
		} stack;
		struct {
			bool clear;
			long last; /* 0: all */
		} history;
		struct {
			const char *file; /* NULL: the format's default file */
			int format;	  /* enum cli_profile_format */
			int rate;	  /* samples per second */
			double duration;  /* seconds, 0: until Ctrl-C */
			bool native, gil, idle;
		} perf;
		struct {
			bool off;
			double take_ms, hold_ms, interval_s; /* -1: the daemon's default */
			long max_threads;		     /* 0: every thread */
		} gilstat;
		struct {
			int rate; /* samples per second */
		} top;
		struct {
			int argc; /* the command's words, argv[0] its name */
			char *const *argv;
		} agent;
		const char *help_topic;
	} u;
};

enum cli_action {
	CLI_ACT_HELP,
	CLI_ACT_VERSION,
	CLI_ACT_PS,
	CLI_ACT_STATUS,
	CLI_ACT_SHELL,	 /* fpctl attach PID */
	CLI_ACT_RUN,	 /* fpctl attach PID command ... */
	CLI_ACT_DETACH,	 /* fpctl detach PID */
	CLI_ACT_PLANNED, /* a top-level command not available yet */
};

struct cli_invocation {
	struct cli_global g;
	enum cli_action action;
	const char *help_topic; /* CLI_ACT_HELP */
	const char *planned;	/* CLI_ACT_PLANNED: its name */
	pid_t pid;		/* attach */
	struct cli_cmd cmd;	/* CLI_ACT_RUN */
};

/*
 * Parse fpctl's command line.  Pure: reads no environment and prints nothing.
 * Returns 0, or 2 with *err filled for a usage error.
 */
int cli_parse_argv(int argc, char *const argv[], struct cli_invocation *inv, struct cli_error *err);

/* Fills *err with one usage line and the help topic to point at; returns 2. */
int cli_usage_error(struct cli_error *err, const char *topic, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Parse one attach command (argv[0] is its name).  `attached` is the pid
 * the session is attached to.  Returns 0 or 2 (usage error in *err).  The
 * arguments of planned commands are not checked.  Pointers in *cmd point
 * into argv.
 */
int cli_parse_command(int argc, char *const argv[], pid_t attached, struct cli_cmd *cmd,
		      struct cli_error *err);

/*
 * Split a shell line into words: blanks separate, '...' and "..." quote,
 * backslash escapes (outside single quotes).  Returns the number of words
 * (argv is NULL-terminated, one allocation: free(*argv)), 0 for a blank
 * line, or -1 with *err filled (unterminated quote).
 */
int cli_split_words(const char *line, char ***argv, struct cli_error *err);

/* ---- output (output.c) ---- */

/* What every command's output depends on. */
struct cli_ctx {
	struct cli_global g;
	const char *socket; /* resolved */
	bool color;	    /* stdout is a terminal and NO_COLOR is unset */
	bool shell;	    /* inside the interactive shell: messages without "fpctl: " */
	pid_t pid;	    /* the attached process, 0 outside attach */
	struct cli_conn *conn;
};

/*
 * Report a failure: one line on stderr and, with --json, an error frame on
 * stdout.  Returns exit_status so callers can `return cli_fail(...)`.
 */
int cli_fail(const struct cli_ctx *ctx, int exit_status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A usage error from the parser, pointing at the help of err->topic. */
int cli_usage_fail(const struct cli_ctx *ctx, const struct cli_error *err);
/* A planned command: "<name>: not available yet in this version of fpd", exit 1. */
int cli_planned_fail(const struct cli_ctx *ctx, const char *name);

/* One frame as compact JSON on one line. */
void cli_print_json(FILE *f, const json_t *frame);

/*
 * Writes s with control characters other than tab shown as \xNN, so that a
 * file name or a repr read from a target cannot drive the terminal.
 */
void cli_put_safe(FILE *f, const char *s);

/* An ANSI SGR sequence, or "" without colour; code is a string literal. */
#define CLI_SGR(color, code) ((color) ? "\033[" code "m" : "")
#define CLI_BOLD	     "1"
#define CLI_DIM		     "2"
#define CLI_RED		     "31"
#define CLI_RESET	     "0"

/* JSON accessors that tolerate missing or mistyped fields. */
const char *cli_jstr(const json_t *obj, const char *key, const char *dflt);
json_int_t cli_jint(const json_t *obj, const char *key, json_int_t dflt);

/* ---- help (help.c) ---- */

/*
 * Without a topic, the table of attach commands (and of the top-level ones
 * for CLI_TOP); with one, its USAGE, SUMMARY, EXAMPLES and OPTIONS.  Returns
 * 2 with *err filled if there is no such command.
 */
int cli_help_topic(FILE *f, const char *topic, enum cli_scope scope, bool color,
		   struct cli_error *err);

/* ---- renderers ---- */

struct cli_stack_render {
	FILE *out;
	bool color;
	size_t threads; /* thread events rendered so far */
};

/* Text of one stack event ("process" or "thread"); others are ignored. */
void cli_render_stack_event(struct cli_stack_render *r, const json_t *ev);
/* Text of one `stack -a` event ("async_loop" or "async_none"); others are ignored. */
void cli_render_async_event(struct cli_stack_render *r, const json_t *ev);

/* ps: rows are collected so that the columns can be sized from the data. */
struct cli_ps_render {
	json_t *rows; /* array of process events */
};
void cli_ps_add(struct cli_ps_render *r, const json_t *ev);
void cli_ps_print(struct cli_ps_render *r, FILE *out, bool color);
void cli_ps_free(struct cli_ps_render *r);

/* status: `key: value` lines. */
void cli_render_status(FILE *out, const json_t *ev);

/* ---- connection to fpd (conn.c) ---- */

struct cli_conn {
	int fd;
	pid_t child; /* the fpd fpctl started, 0 if none */
	json_int_t last_id;
	bool broken;	/* the connection failed; nothing more can be sent */
	bool timed_out; /* --timeout stopped the last drained request */
};

/*
 * Connect to ctx->socket and exchange hellos, starting fpd first when nothing
 * listens and fpctl runs as root.  The server must run as root or as this
 * user (SO_PEERCRED) unless --trust-socket.  On failure reports it and
 * returns the exit status (3, or 128+signal when interrupted); ctx->conn is
 * then NULL.
 */
int cli_connect(struct cli_ctx *ctx, struct cli_conn *conn);
/* Closes the connection; stops and reaps the fpd that cli_connect started. */
void cli_disconnect(struct cli_ctx *ctx);

/* Called with each event frame of a request; nonzero stops the request. */
typedef int (*cli_event_fn)(void *ud, const json_t *ev);

/*
 * Run one request: send it, feed its events to fn until "end" or "error".
 * Handles SIGINT/SIGTERM (cancel the request, wait up to 2 s for its end) and
 * --timeout (cancel it, report "CMD: timed out after S s", return 1 at once).
 * Reports failures itself and returns the exit status: 0, the error frame's
 * "exit", 1 on timeout or a lost connection, 128+signal.  Steals args (may be
 * NULL); pid 0 is not sent.
 */
int cli_request(struct cli_ctx *ctx, const char *cmd, pid_t pid, json_t *args, cli_event_fn fn,
		void *ud);
/*
 * cli_request for commands that answer when they stop (perf, watch, trace,
 * gpu, torch): SIGINT/SIGTERM and --timeout send a cancel, but events still
 * reach fn until the "end" (or "error"), and a stopped request that ends well
 * returns 0; after --timeout's stop ctx->conn->timed_out is set and the
 * caller, once it has delivered what came, ends with cli_timeout_end().  A
 * command still waiting for the target's GIL has nothing to deliver: its
 * timeout is reported and returned at once.  A signal while it waits for the
 * end abandons the request at once: "CMD: interrupted; no profile written",
 * 128+signal.
 */
int cli_request_drain(struct cli_ctx *ctx, const char *cmd, pid_t pid, json_t *args,
		      cli_event_fn fn, void *ud);
/* --timeout's one report: "CMD: timed out after S s"; returns 1. */
int cli_timeout_fail(const struct cli_ctx *ctx, const char *cmd);
/* A drained command's exit status: rc, or cli_timeout_fail() when --timeout stopped it. */
int cli_timeout_end(const struct cli_ctx *ctx, const char *cmd, int rc);

/*
 * For a command that runs its own loop over the connection (console): sends
 * the request and returns its id, or -1 once a lost connection is reported.
 * Steals args (may be NULL); pid 0 is not sent.
 */
json_int_t cli_request_send(struct cli_ctx *ctx, const char *cmd, pid_t pid, json_t *args);
/* Data for running request id: {"type":"input","id":id} plus obj's fields; 0 or the exit status. */
int cli_send_input(struct cli_ctx *ctx, json_int_t id, const json_t *obj);
/* Asks fpd to stop request id; its end or error frame still follows. */
void cli_send_cancel(struct cli_ctx *ctx, json_int_t id);
/* Marks the connection broken and reports why (rc: an fp_frame status); returns 1. */
int cli_lost(struct cli_ctx *ctx, int rc);

/* ---- signals (signals.c) ---- */

/* SIGINT, SIGTERM, SIGHUP only set a flag and wake cli_signal_fd(). */
int cli_signals_install(void);
int cli_signal_fd(void);
/* The signal received since the last cli_signal_clear(), or 0. */
int cli_signal_pending(void);
void cli_signal_clear(void);

/* ---- commands that talk to fpd (cmd_*.c) ---- */

int cli_cmd_ps(struct cli_ctx *ctx);
int cli_cmd_status(struct cli_ctx *ctx);
/* `fpctl detach PID`: ends every helper session on ctx->pid. */
int cli_cmd_detach(struct cli_ctx *ctx);
int cli_cmd_stack(struct cli_ctx *ctx, const struct cli_cmd *cmd);
int cli_cmd_perf(struct cli_ctx *ctx, const struct cli_cmd *cmd);
int cli_cmd_gilstat(struct cli_ctx *ctx, const struct cli_cmd *cmd);
int cli_cmd_top(struct cli_ctx *ctx, const struct cli_cmd *cmd);

/*
 * Run a parsed attach command that is not shell-only: help, stack, or a
 * planned one.  Returns the exit status.
 */
int cli_exec(struct cli_ctx *ctx, const struct cli_cmd *cmd);

/* ---- history (history.c) and the shell (shell.c) ---- */

struct cli_history {
	char **lines;
	size_t n, cap;
};

#define CLI_HISTORY_MAX 1000

/* Appends a copy of line unless it repeats the last entry; drops the oldest past the cap. */
void cli_history_add(struct cli_history *h, const char *line);
void cli_history_clear(struct cli_history *h);
/* One entry per line; a missing file is an empty history. */
int cli_history_load(struct cli_history *h, const char *path);
/* Written mode 0600: commands may hold expressions with secrets in them. */
int cli_history_save(const struct cli_history *h, const char *path);
/* `history`'s listing: the last `last` entries (0: all), numbered from 1. */
void cli_history_print(const struct cli_history *h, FILE *f, long last);

/* The interactive shell of `fpctl attach PID`; returns fpctl's exit status. */
int cli_shell(struct cli_ctx *ctx);

#endif
