/*
 * `help`: the command tables and each command's USAGE, SUMMARY, EXAMPLES and
 * OPTIONS, from the table in commands.c.
 */
#include <string.h>

#include "cli.h"
#include "fp/proto.h"

#define WIDTH 80

static void heading(FILE *f, bool color, const char *text)
{
	fprintf(f, "%s%s%s\n", CLI_SGR(color, CLI_BOLD), text, CLI_SGR(color, CLI_RESET));
}

static size_t name_width(void)
{
	size_t w = strlen("COMMAND");
	const struct cli_command *c;
	for (enum cli_scope s = CLI_TOP; s <= CLI_SHELL; s++)
		for (size_t i = 0; (c = cli_command_at(s, i)); i++)
			if (strlen(c->name) > w)
				w = strlen(c->name);
	return w;
}

static void table(FILE *f, enum cli_scope scope, bool color)
{
	int w = (int)name_width();
	fprintf(f, "  %s%-*s  %-9s  %s%s\n", CLI_SGR(color, CLI_BOLD), w, "COMMAND", "STATE",
		"SUMMARY", CLI_SGR(color, CLI_RESET));
	const struct cli_command *c;
	for (size_t i = 0; (c = cli_command_at(scope, i)); i++) {
		bool planned = c->state == CLI_PLANNED;
		fprintf(f, "  %s%-*s  %-9s  %s%s\n", planned ? CLI_SGR(color, CLI_DIM) : "", w,
			c->name, planned ? "planned" : "available", c->summary,
			planned ? CLI_SGR(color, CLI_RESET) : "");
	}
}

static void help_table(FILE *f, enum cli_scope scope, bool color)
{
	if (scope == CLI_SHELL) {
		table(f, CLI_SHELL, color);
		fputs("\nType 'help COMMAND' for its usage, options and examples.\n", f);
		return;
	}
	fputs("Usage: fpctl [--socket PATH] [--json] [--timeout S] [--trust-socket] COMMAND ...\n"
	      "\n"
	      "fpctl inspects running CPython processes through the fpd daemon.\n"
	      "\n",
	      f);
	heading(f, color, "COMMANDS:");
	table(f, CLI_TOP, color);
	fputs("\n", f);
	heading(f, color,
		"COMMANDS OF ATTACH (fpctl attach PID COMMAND, or at its fpctl(PID)> prompt):");
	table(f, CLI_SHELL, color);
	fputs("\n", f);
	heading(f, color, "GLOBAL OPTIONS (before the command, or right after attach):");
	fprintf(f,
		"  --socket PATH   the socket of fpd (default %s, or $FPD_SOCKET)\n"
		"  --json          one JSON object per line for each event and error\n"
		"  --timeout S     stop any command that has not ended after S seconds, as\n"
		"                  Ctrl-C does (what it collected is still shown or written),\n"
		"                  then say 'CMD: timed out after S s' and exit with status 1;\n"
		"                  -n and perf -d are the ways to end normally\n"
		"  --trust-socket  talk to an fpd run by another user than root or you\n"
		"                  (refused by default: it would see and answer every request)\n"
		"  --help          this text\n"
		"  --version       fpctl's version and protocol\n"
		"\n",
		FP_DEFAULT_SOCKET);
	heading(f, color, "ENVIRONMENT:");
	fputs("  FPD_SOCKET     socket of fpd when --socket is not given\n"
	      "  NO_COLOR       no colours even on a terminal\n"
	      "  FPCTL_DEBUG    show the messages of an fpd that fpctl starts itself\n"
	      "\n",
	      f);
	heading(f, color, "EXIT STATUS:");
	fputs("  0 success, 1 command error or --timeout, 2 usage error, 3 the target or fpd\n"
	      "  cannot be reached (no such process, not Python, not yours, fpd not running or\n"
	      "  not run by root or you, protocol mismatch), 130 interrupted by Ctrl-C\n"
	      "\n"
	      "Run 'fpctl help COMMAND' for its usage, options and examples.\n",
	      f);
}

/*
 * One line of a usage (alternatives are on lines of their own), wrapped
 * between tokens, never inside a bracket or a quoted string, continuing
 * with a deeper indent.
 */
static void print_usage_line(FILE *f, const char *p, const char *stop)
{
	size_t col = 2;
	fputs("  ", f);
	while (p < stop) {
		const char *end = p;
		int depth = 0;
		bool quoted = false;
		for (; end < stop && (depth > 0 || quoted || *end != ' '); end++) {
			if (*end == '"')
				quoted = !quoted;
			else if (!quoted && *end == '[')
				depth++;
			else if (!quoted && *end == ']' && depth > 0)
				depth--;
		}
		size_t len = (size_t)(end - p);
		if (col > 2 && col + 1 + len > WIDTH - 2) {
			fputs("\n      ", f);
			col = 6;
		} else if (col > 2) {
			putc(' ', f);
			col++;
		}
		fwrite(p, 1, len, f);
		col += len;
		p = end;
		while (p < stop && *p == ' ')
			p++;
	}
	putc('\n', f);
}

static void print_usage(FILE *f, const char *usage)
{
	while (*usage) {
		const char *nl = strchr(usage, '\n');
		const char *stop = nl ? nl : usage + strlen(usage);
		print_usage_line(f, usage, stop);
		usage = nl ? nl + 1 : stop;
	}
}

static void indented(FILE *f, const char *text)
{
	while (*text) {
		const char *nl = strchr(text, '\n');
		size_t len = nl ? (size_t)(nl - text) : strlen(text);
		fprintf(f, "  %.*s\n", (int)len, text);
		text += len + (nl ? 1 : 0);
	}
}

static void help_command(FILE *f, const struct cli_command *c, bool color)
{
	heading(f, color, "USAGE:");
	print_usage(f, c->usage);
	fputs("\n", f);
	heading(f, color, "SUMMARY:");
	indented(f, c->description);
	if (c->state == CLI_PLANNED)
		fprintf(f, "  Planned: %s is not available yet in this version of fpd.\n", c->name);
	fputs("\n", f);
	heading(f, color, "EXAMPLES:");
	for (const char *const *e = c->examples; *e; e++)
		fprintf(f, "  %s\n", *e);
	fputs("\n", f);
	heading(f, color, "OPTIONS:");
	int w = 0;
	for (const struct cli_opt_help *o = c->options; o->flags; o++)
		if ((int)strlen(o->flags) > w)
			w = (int)strlen(o->flags);
	if (!c->options->flags)
		fputs("  none\n", f);
	for (const struct cli_opt_help *o = c->options; o->flags; o++)
		fprintf(f, "  %-*s  %s\n", w, o->flags, o->text);
}

int cli_help_topic(FILE *f, const char *topic, enum cli_scope scope, bool color,
		   struct cli_error *err)
{
	if (!topic) {
		help_table(f, scope, color);
		return 0;
	}
	/* A name in both tables (help) means the one of the scope asked from. */
	enum cli_scope other = scope == CLI_TOP ? CLI_SHELL : CLI_TOP;
	const struct cli_command *c = cli_command_find(scope, topic);
	if (!c)
		c = cli_command_find(other, topic);
	if (!c) {
		snprintf(err->msg, sizeof(err->msg), "no command '%.60s'", topic);
		err->topic = NULL;
		return 2;
	}
	help_command(f, c, color);
	return 0;
}
