/*
 * What /proc says about a process: identity, state, threads, mappings.
 * Paths inside the target's mount namespace are opened through
 * /proc/PID/root, so containers work without entering them.
 */
#ifndef FP_PROC_H
#define FP_PROC_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct fp_map {
	uint64_t start, end, offset;
	uint64_t inode;
	dev_t dev;
	char perms[5];
	char *path; /* as the target sees it; NULL for anonymous mappings */
};

struct fp_maps {
	struct fp_map *v;
	size_t n;
};

/* Parses the text of /proc/PID/maps.  Pure; malformed lines are skipped. */
int fp_maps_parse(const char *text, size_t len, struct fp_maps *out);
int fp_maps_read(pid_t pid, struct fp_maps *out);
void fp_maps_free(struct fp_maps *m);
const struct fp_map *fp_maps_find(const struct fp_maps *m, uint64_t addr);

struct fp_proc_info {
	pid_t pid;
	uid_t uid;  /* real uid */
	char state; /* from /proc/PID/stat: R, S, D, Z, T, ... */
	char comm[32];
	char exe[PATH_MAX]; /* readlink of /proc/PID/exe, as the target sees it */
	pid_t nspid;	    /* pid inside its innermost pid namespace */
};

/* 0, or -errno: -ENOENT when the process does not exist. */
int fp_proc_info(pid_t pid, struct fp_proc_info *out);

/* "/proc/PID/root" + path, for opening a file the target names. */
void fp_proc_path(pid_t pid, const char *path, char *out, size_t cap);

/* Thread ids of a process: host tids and the tids inside its pid namespace. */
struct fp_task {
	pid_t tid;   /* as seen by fpd */
	pid_t nstid; /* as seen inside the target (NSpid's last field) */
	char state;
	char comm[32];
};
int fp_proc_tasks(pid_t pid, struct fp_task **out, size_t *n);

/*
 * What a thread is blocked in, from /proc/PID/task/TID/syscall:
 * nr >= 0 with args, -1 when running, -2 when unknown.
 */
struct fp_syscall {
	long nr;
	uint64_t args[6];
};
int fp_proc_syscall(pid_t pid, pid_t tid, struct fp_syscall *out);

#endif
