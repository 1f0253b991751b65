/*
 * The daemon's command table: one handler per protocol command, each in the
 * file named after it.
 */
#ifndef FP_COMMANDS_H
#define FP_COMMANDS_H

#include "server.h"

int fp_cmd_ps(struct fp_req *r);
int fp_cmd_status(struct fp_req *r);
int fp_cmd_check(struct fp_req *r);
int fp_cmd_stack(struct fp_req *r);
int fp_cmd_perf(struct fp_req *r);
int fp_cmd_top(struct fp_req *r);
int fp_cmd_gilstat(struct fp_req *r);

/* The handler of a command name, or NULL. */
fp_cmd_fn fp_command_find(const char *name);

#endif
