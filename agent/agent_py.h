/*
 * The helper's Python sources (the files of agent/py/), embedded at build time by
 * tools/embed_py.py into build/gen/agent_py.c: core.py first, then the
 * others in name order, the order they are executed in.
 */
#ifndef FP_AGENT_PY_H
#define FP_AGENT_PY_H

#include <stddef.h>

struct fp_agent_source {
	const char *name;
	const char *text;
};

extern const struct fp_agent_source fp_agent_sources[];
extern const size_t fp_agent_nsources;

#endif
