/*
 * `gilstat` (daemon/gil.c): where the GIL probes go in an interpreter binary.
 */
#ifndef FP_DAEMON_GIL_H
#define FP_DAEMON_GIL_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Inlined drop_gil copies the stripped-binary heuristic accepts (Debian 3.11 has 5). */
#define FP_GIL_MAX_DROP_SITES 16
/* take_gil and its GCC clones (3.8 has take_gil.constprop.0). */
#define FP_GIL_MAX_TAKE_SITES 4

struct fp_gil_probes {
	char path[PATH_MAX];			  /* the binary, opened through /proc/PID/root */
	uint64_t take_off[FP_GIL_MAX_TAKE_SITES]; /* file offsets, as uprobes are placed */
	size_t ntake;
	uint64_t drop_off[FP_GIL_MAX_DROP_SITES];
	size_t ndrop;
	const char *symbols; /* "symtab", "minidebuginfo", "debugfile" or "heuristic" */
	char note[256];	     /* what the chosen method misses, "" when nothing */
};

/*
 * Finds take_gil and drop_gil in binary (as pid names it): .symtab, then
 * MiniDebugInfo, then a separate debug file, then the stripped-binary
 * heuristic.  -1 with one line in err saying why none worked.
 */
int fp_gil_resolve(pid_t pid, const char *binary, struct fp_gil_probes *p, char *err,
		   size_t errlen);

#endif
