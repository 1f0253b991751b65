/*
 * Commands served by the in-process helper (getglobal, vmtool, module,
 * reload, console, mem, stack -a, and later watch/trace/tt/torch): each is
 * declared by a table of its options and a renderer, in cli/cmd_<name>.c.
 * fpctl checks the options, sends them as the request's args, and fpd
 * forwards the request to the helper it injects (daemon/agentlink.c).
 *
 * Request args: {"argv": [positional words...], <key>: <value>, ...} with a
 * key per option given (flags true, INT/NUM numbers, STR strings).  The
 * helper validates what only it can (module/class/field names).
 */
#ifndef FP_CLI_AGENTCMD_H
#define FP_CLI_AGENTCMD_H

#include <jansson.h>
#include <stdbool.h>

#include "cli.h"

enum cli_opt_kind {
	CLI_OPT_FLAG,
	CLI_OPT_INT,
	CLI_OPT_NUM,
	CLI_OPT_STR,
};

struct cli_opt_spec {
	const char *key;  /* key in the request's args; NULL ends a table */
	const char *shrt; /* "-x", or NULL */
	const char *lng;  /* "--expand", or NULL */
	enum cli_opt_kind kind;
	double min, max;   /* INT/NUM: the allowed range, inclusive (ignored when min == max) */
	const char *range; /* INT/NUM: the range in words, for the error ("1 to 4") */
};

struct cli_agent_cmd {
	const struct cli_opt_spec *opts;
	int min_pos, max_pos;  /* positional words (sent as args.argv) */
	const char *pos_usage; /* what the positionals are, for the error: "module [class] field" */
	/*
	 * Renders one event of the command (not called with --json, nor for the
	 * generic helper events fpd emits: attach progress, GIL waits).
	 * Returns 0, or nonzero to stop the request.
	 */
	int (*render)(struct cli_ctx *ctx, const json_t *ev, void *state);
	/* Optional: runs the whole command instead of one request + render (console). */
	int (*run)(struct cli_ctx *ctx, json_t *args);
	/* Optional: checks args the table cannot express; 0 or 2 with *err filled. */
	int (*check)(const json_t *args, struct cli_error *err);
};

/*
 * Checks argv (argv[0] is the command name) against the command's table and,
 * when args is not NULL, fills it.  Pure.  Returns 0 or 2 (*err filled).
 */
int cli_agent_parse(const struct cli_command *def, int argc, char *const argv[], json_t *args,
		    struct cli_error *err);

/* Runs a parsed helper command; returns the exit status. */
int cli_cmd_agent(struct cli_ctx *ctx, const struct cli_cmd *cmd);

/*
 * Shared by the renderers: the generic events fpd adds to every helper
 * command's stream ("agent" progress, "gil_wait").  Returns true when ev was
 * one of them (and has been shown on stderr).
 */
bool cli_agent_generic_event(struct cli_ctx *ctx, const json_t *ev);

/*
 * cli/render_value.c: text from a target printed line by line (each line
 * escaped by cli_put_safe, the later ones indented by indent spaces); a
 * "LABEL: text" line in the EXPR/TYPE/VALUE layout; the EXPR, TYPE and VALUE
 * block of an event with expr, value_type and value fields.
 */
void cli_print_lines(FILE *out, const char *text, int indent);
void cli_print_labelled(FILE *out, bool color, const char *label, const char *text);
void cli_print_value(FILE *out, bool color, const json_t *ev);

extern const struct cli_agent_cmd cli_agent_mem;
extern const struct cli_agent_cmd cli_agent_console;
extern const struct cli_agent_cmd cli_agent_getglobal;
extern const struct cli_agent_cmd cli_agent_vmtool;
extern const struct cli_agent_cmd cli_agent_module;
extern const struct cli_agent_cmd cli_agent_reload;
extern const struct cli_agent_cmd cli_agent_watch;
extern const struct cli_agent_cmd cli_agent_tt;
extern const struct cli_agent_cmd cli_agent_trace;
extern const struct cli_agent_cmd cli_agent_gpu;
extern const struct cli_agent_cmd cli_agent_torch;

#endif
