/*
 * The EXPR / TYPE / VALUE block of the helper commands that show a value
 * (getglobal, vmtool; watch and tt later), in the reference tool's layout:
 * a label column, the value's later lines indented under its first.
 */
#include <stdlib.h>
#include <string.h>

#include "agentcmd.h"

#define LABEL_WIDTH 7 /* "VALUE: " */

void cli_print_lines(FILE *out, const char *text, int indent)
{
	/* Split into lines here: cli_put_safe would escape the line breaks. */
	char *copy = strdup(text);
	if (!copy) {
		fputs("(out of memory)\n", out);
		return;
	}
	char *line = copy;
	for (;;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		cli_put_safe(out, line);
		fputc('\n', out);
		if (!nl)
			break;
		line = nl + 1;
		fprintf(out, "%*s", indent, "");
	}
	free(copy);
}

void cli_print_labelled(FILE *out, bool color, const char *label, const char *text)
{
	fprintf(out, "%s%s:%s%*s", CLI_SGR(color, CLI_BOLD), label, CLI_SGR(color, CLI_RESET),
		(int)(LABEL_WIDTH - strlen(label) - 1), "");
	cli_print_lines(out, text, LABEL_WIDTH);
}

void cli_print_value(FILE *out, bool color, const json_t *ev)
{
	cli_print_labelled(out, color, "EXPR", cli_jstr(ev, "expr", "?"));
	cli_print_labelled(out, color, "TYPE", cli_jstr(ev, "value_type", "?"));
	cli_print_labelled(out, color, "VALUE", cli_jstr(ev, "value", ""));
}
