/* Source lines of Python files in a target, for tracebacks. */
#ifndef FP_SOURCE_H
#define FP_SOURCE_H

#include <sys/types.h>

struct fp_sources;

/* A per-request cache of files of process pid, read as uid/gid. */
struct fp_sources *fp_sources_new(pid_t pid, uid_t uid, gid_t gid);
void fp_sources_free(struct fp_sources *s);

/*
 * Line `line` (1-based) of file, without leading/trailing blanks; NULL when
 * unreadable.  The result stays valid until the next call.
 */
const char *fp_sources_line(struct fp_sources *s, const char *file, int line);

#endif
