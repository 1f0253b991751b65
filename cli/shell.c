/*
 * The interactive shell of `fpctl attach PID`: libedit line editing (its
 * readline API), history in ~/.fpctl_history, completion of command names.
 * On a pipe it reads plain lines without prompt, so scripts can feed it.
 */
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>

#include "cli.h"

static char *complete_command(const char *text, int state)
{
	static size_t next, len;
	if (state == 0) {
		next = 0;
		len = strlen(text);
	}
	const struct cli_command *c;
	while ((c = cli_command_at(CLI_SHELL, next++)))
		if (strncmp(c->name, text, len) == 0)
			return strdup(c->name);
	return NULL;
}

/* Command names as the first word and after `help`; file names elsewhere (stack -f). */
static char **complete(const char *text, int start, int end)
{
	(void)end;
	const char *line = rl_line_buffer;
	int i = 0;
	while (i < start && (line[i] == ' ' || line[i] == '\t'))
		i++;
	bool first = i == start;
	bool after_help = !first && strncmp(line + i, "help", 4) == 0 &&
			  strspn(line + i + 4, " \t") == (size_t)(start - i - 4);
	if (!first && !after_help)
		return NULL;
	rl_attempted_completion_over = 1;
	return rl_completion_matches(text, complete_command);
}

static char *history_path(void)
{
	const char *home = getenv("HOME");
	if (!home || !*home) {
		struct passwd *pw = getpwuid(getuid());
		home = pw ? pw->pw_dir : NULL;
	}
	if (!home)
		return NULL;
	char *path;
	return asprintf(&path, "%s/.fpctl_history", home) < 0 ? NULL : path;
}

static int on_target(void *ud, const json_t *ev)
{
	json_t **target = ud;
	json_decref(*target);
	*target = json_incref((json_t *)ev);
	return 0;
}

/* Asks fpd whether the pid can be attached, so a bad pid fails before any prompt. */
static int check_target(struct cli_ctx *ctx, bool tty)
{
	json_t *target = NULL;
	int rc = cli_request(ctx, "check", ctx->pid, NULL, on_target, &target);
	if (rc == 0 && target) {
		if (ctx->g.json) {
			cli_print_json(stdout, target);
		} else if (tty) {
			printf("Attached to process %d: Python ", (int)ctx->pid);
			cli_put_safe(stdout, cli_jstr(target, "version", "?"));
			fputs(", ", stdout);
			cli_put_safe(stdout, cli_jstr(target, "exe", "?"));
			printf("\nType 'help' for the commands, 'quit' to leave.\n");
		}
	}
	json_decref(target);
	/* Not attachable is exit status 3, whatever the daemon's reason. */
	return rc == 0 || rc >= 128 ? rc : 3;
}

struct shell {
	struct cli_ctx *ctx;
	struct cli_history hist;
	bool tty;
};

/*
 * readline() prints the prompt before libedit leaves cooked mode, and a
 * Ctrl-D typed at that prompt in cooked mode becomes a NUL byte once the
 * terminal is raw; the hook runs after readline() set the terminal up and
 * before the prompt, so the editor has the terminal when the prompt shows.
 */
static int take_terminal(void)
{
	rl_prep_terminal(1);
	return 0;
}

static char *read_line(struct shell *sh, const char *prompt)
{
	if (sh->tty)
		return readline(prompt);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, stdin);
	if (n < 0) {
		free(line);
		return NULL;
	}
	if (n > 0 && line[n - 1] == '\n')
		line[n - 1] = '\0';
	return line;
}

static void run_history(struct shell *sh, const struct cli_cmd *cmd)
{
	if (cmd->u.history.clear) {
		cli_history_clear(&sh->hist);
		clear_history();
		return;
	}
	cli_history_print(&sh->hist, stdout, cmd->u.history.last);
}

/* One line: returns false when the shell must end. */
static bool run_line(struct shell *sh, const char *line)
{
	struct cli_ctx *ctx = sh->ctx;
	struct cli_error err;
	char **argv;
	int argc = cli_split_words(line, &argv, &err);
	if (argc < 0) {
		cli_usage_fail(ctx, &err);
		return true;
	}
	if (argc == 0) {
		free(argv);
		return true;
	}
	cli_history_add(&sh->hist, line);
	if (sh->tty)
		add_history(line);
	struct cli_cmd cmd;
	bool go_on = true;
	if (cli_parse_command(argc, argv, ctx->pid, &cmd, &err)) {
		cli_usage_fail(ctx, &err);
	} else if (cmd.def->id == CLI_CMD_QUIT) {
		go_on = false;
	} else if (cmd.def->id == CLI_CMD_HISTORY) {
		run_history(sh, &cmd);
	} else if (cmd.def->id == CLI_CMD_CLS) {
		if (isatty(STDOUT_FILENO))
			fputs("\033[H\033[2J", stdout);
	} else {
		int rc = cli_exec(ctx, &cmd);
		/* The terminal echoed ^C mid-line; the prompt starts on a fresh one. */
		if (rc >= 128 && sh->tty)
			putchar('\n');
		go_on = !ctx->conn->broken;
	}
	free(argv);
	return go_on;
}

int cli_shell(struct cli_ctx *ctx)
{
	struct shell sh = {.ctx = ctx, .tty = isatty(STDIN_FILENO)};
	int rc = check_target(ctx, sh.tty);
	if (rc)
		return rc;
	ctx->shell = true;

	char *hpath = sh.tty ? history_path() : NULL;
	if (sh.tty) {
		rl_readline_name = "fpctl";
		rl_attempted_completion_function = complete;
		rl_pre_input_hook = take_terminal;
		if (hpath)
			cli_history_load(&sh.hist, hpath);
		for (size_t i = 0; i < sh.hist.n; i++)
			add_history(sh.hist.lines[i]);
	}
	char prompt[32];
	snprintf(prompt, sizeof(prompt), "fpctl(%d)> ", (int)ctx->pid);
	rc = 0;
	for (;;) {
		cli_signal_clear();
		char *line = read_line(&sh, prompt);
		int sig = cli_signal_pending();
		if (sig && sig != SIGINT) {
			free(line);
			rc = 128 + sig;
			break;
		}
		if (!line && sig == SIGINT) {
			/* Ctrl-C at the prompt drops the line, as in a login shell. */
			putchar('\n');
			continue;
		}
		if (!line) {
			if (sh.tty)
				putchar('\n');
			break;
		}
		cli_signal_clear();
		/* What completion appended must not make a distinct history entry. */
		size_t len = strlen(line);
		while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
			line[--len] = '\0';
		bool go_on = run_line(&sh, line);
		free(line);
		sig = cli_signal_pending();
		if (sig && sig != SIGINT) {
			rc = 128 + sig;
			break;
		}
		if (!go_on) {
			rc = ctx->conn->broken ? 1 : 0;
			break;
		}
	}
	if (hpath && cli_history_save(&sh.hist, hpath) != 0)
		fprintf(stderr, "fpctl: could not save the history in %s\n", hpath);
	free(hpath);
	cli_history_clear(&sh.hist);
	return rc;
}
