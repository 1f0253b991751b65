/*
 * The helper's Python sources (the files of agent/py/), embedded at build
 * time by tools/embed_py.py into build/gen/agent_py.c.  Only the eager ones
 * (core.py and the generated _manifest.py) run when the helper starts; the
 * others are run by core.py's _fp_load when a command first needs them.
 */
#ifndef FP_AGENT_PY_H
#define FP_AGENT_PY_H

#include <stddef.h>

struct fp_agent_source {
	const char *name;
	int eager;
	const char *text;
};

extern const struct fp_agent_source fp_agent_sources[];
extern const size_t fp_agent_nsources;

#endif
