#include "commands.h"

#include <string.h>

static const struct {
	const char *name;
	fp_cmd_fn fn;
} commands[] = {
    {"ps", fp_cmd_ps},
    {"status", fp_cmd_status},
    {"check", fp_cmd_check},
    {"stack", fp_cmd_stack},
    {"perf", fp_cmd_perf},
    {"top", fp_cmd_top},
    {"gilstat", fp_cmd_gilstat},
};

fp_cmd_fn fp_command_find(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return commands[i].fn;
	return NULL;
}
