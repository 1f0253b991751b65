#include "commands.h"

#include <string.h>

#include "agentlink.h"

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
    {"detach", fp_cmd_detach},
    /* Served by the helper inside the target (daemon/agentlink.c). */
    {"getglobal", fp_cmd_agent},
    {"vmtool", fp_cmd_agent},
    {"module", fp_cmd_agent},
    {"reload", fp_cmd_agent},
    {"console", fp_cmd_agent},
    {"mem", fp_cmd_agent},
    {"watch", fp_cmd_agent},
    {"trace", fp_cmd_agent},
    {"tt", fp_cmd_agent},
    {"gpu", fp_cmd_agent},
    {"torch", fp_cmd_agent},
    {"hello", fp_cmd_agent},
};

fp_cmd_fn fp_command_find(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return commands[i].fn;
	return NULL;
}
