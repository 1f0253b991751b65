/*
 * Authorization: may this client act on that process?  Asked of the kernel
 * with the client's own credentials (see auth.c for why and how).
 */
#ifndef FP_AUTH_H
#define FP_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define FP_CRED_MAX_GROUPS 64

/* A client as the kernel described it when it connected. */
struct fp_cred {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	int ngroups; /* -1: SO_PEERGROUPS failed or had more than FP_CRED_MAX_GROUPS */
	gid_t groups[FP_CRED_MAX_GROUPS];
};

/* The peer of a connected Unix socket.  0, or -errno from getsockopt. */
int fp_cred_from_socket(int fd, struct fp_cred *c);

enum fp_auth {
	FP_AUTH_OK = 0,
	FP_AUTH_DENIED,	    /* the kernel would refuse c's ptrace of the process */
	FP_AUTH_NO_PROCESS, /* no such process (or not visible to c) */
	FP_AUTH_ERROR,	    /* fpd could not ask (thread, credential change): refused too */
};

/*
 * Whether the kernel would let c ptrace pid (PTRACE_MODE_ATTACH).  Root
 * (uid 0) may act on every process that exists.
 */
enum fp_auth fp_auth_may_ptrace(const struct fp_cred *c, pid_t pid);

/* The same for n processes at once (one credential switch): allowed[i]. */
int fp_auth_filter(const struct fp_cred *c, const pid_t *pids, size_t n, bool *allowed);

/* The process's start time (field 22 of /proc/PID/stat), 0 when it is gone. */
unsigned long long fp_proc_start_time(pid_t pid);

#endif
