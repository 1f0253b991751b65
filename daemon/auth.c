/*
 * Authorization by the kernel's own rule.
 *
 * fpd is root and can ptrace anything; a client may act only on the
 * processes the kernel would let that client ptrace itself (SPEC.md, safety
 * promises).  That rule has many parts: the target's real, effective and
 * saved uids and gids all equal to the client's, the target dumpable (a
 * process that changed credentials is not), Yama's scope, LSMs,
 * capabilities in the target's user namespace.  Comparing one uid by hand
 * let a user into a setuid-root program they started and into a root
 * daemon that read a secret and then dropped to their uid.  So fpd does
 * not evaluate the rule: it asks the kernel.
 *
 * A short-lived thread takes the client's uid, gid and groups with the raw
 * per-thread syscalls (glibc's setresuid() would change every thread of
 * fpd), drops every capability, and opens /proc/PID/mem.  The kernel allows
 * that open only under PTRACE_MODE_ATTACH_FSCREDS: the check of
 * ptrace(PTRACE_ATTACH) itself, dumpability and Yama included.  The thread
 * then exits; no other thread of fpd ever runs with those credentials.
 *
 * One difference remains: Yama's scope 1 lets a process ptrace its own
 * descendants, and the asking thread is fpd's, not the client's.  Under
 * that scope a refusal is re-asked in PTRACE_MODE_READ (everything but
 * Yama: /proc/PID/environ) and granted when the target descends from the
 * client's process, which is what Yama would have asked.
 *
 * Root, as SO_PEERCRED reports it in fpd's user namespace, stays root.
 */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"

int fp_cred_from_socket(int fd, struct fp_cred *c)
{
	memset(c, 0, sizeof(*c));
	struct ucred u;
	socklen_t len = sizeof(u);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &u, &len) != 0)
		return -errno;
	c->pid = u.pid;
	c->uid = u.uid;
	c->gid = u.gid;
	len = sizeof(c->groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, c->groups, &len) == 0)
		c->ngroups = (int)(len / sizeof(gid_t));
	else
		c->ngroups = -1;
	return 0;
}

/* Reads up to cap-1 bytes of a small /proc file; -errno on failure. */
static int read_small(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, cap - 1);
	int e = errno;
	close(fd);
	if (n < 0)
		return -e;
	buf[n] = '\0';
	return (int)n;
}

/* Field n (1-based) of /proc/PID/stat; comm (field 2) may hold spaces and ')'. */
static int stat_field(pid_t pid, int n, unsigned long long *out)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_small(path, buf, sizeof(buf)) <= 0)
		return -1;
	char *p = strrchr(buf, ')');
	for (int field = 2; p && field < n; field++)
		p = strchr(p + 1, ' ');
	if (!p)
		return -1;
	char *end;
	*out = strtoull(p + 1, &end, 10);
	return end == p + 1 ? -1 : 0;
}

unsigned long long fp_proc_start_time(pid_t pid)
{
	unsigned long long t;
	return stat_field(pid, 22, &t) == 0 ? t : 0;
}

static int yama_scope(void)
{
	char buf[16];
	if (read_small("/proc/sys/kernel/yama/ptrace_scope", buf, sizeof(buf)) <= 0)
		return 0;
	return atoi(buf);
}

/* Whether pid descends from ancestor (walking parents, bounded). */
static bool descends_from(pid_t pid, pid_t ancestor)
{
	for (int depth = 0; depth < 4096 && pid > 1; depth++) {
		unsigned long long ppid;
		if (stat_field(pid, 4, &ppid) != 0)
			return false;
		if ((pid_t)ppid == ancestor)
			return true;
		pid = (pid_t)ppid;
	}
	return false;
}

struct job {
	const struct fp_cred *cred;
	const pid_t *pids;
	size_t n;
	bool *allowed;
	bool *gone;
	int scope;
	int rc; /* 0, or -errno of the credential change */
};

static enum fp_auth open_as_client(const char *what, pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd >= 0) {
		close(fd);
		return FP_AUTH_OK;
	}
	return errno == ENOENT || errno == ESRCH ? FP_AUTH_NO_PROCESS : FP_AUTH_DENIED;
}

/*
 * Runs in a thread of its own, which never goes back to fpd's credentials:
 * the kernel keeps credentials per thread, and the raw syscalls change only
 * the caller's.
 */
static void *check_main(void *arg)
{
	struct job *j = arg;
	const struct fp_cred *c = j->cred;
	int ngroups = c->ngroups < 0 ? 0 : c->ngroups;
	if (syscall(SYS_setgroups, (size_t)ngroups, c->groups) != 0 ||
	    syscall(SYS_setresgid, c->gid, c->gid, c->gid) != 0 ||
	    syscall(SYS_setresuid, c->uid, c->uid, c->uid) != 0) {
		j->rc = -errno;
		return NULL;
	}
	/*
	 * Leaving uid 0 clears this thread's capabilities unless keep-caps is
	 * set; clear them explicitly, and verify, so that no unit file setting
	 * can turn this check into fpd's own.
	 */
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[2] = {0};
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
		j->rc = -errno;
		return NULL;
	}
	if (syscall(SYS_capset, &hdr, data) != 0 || syscall(SYS_capget, &hdr, data) != 0) {
		j->rc = -errno;
		return NULL;
	}
	if (data[0].effective || data[1].effective || data[0].permitted || data[1].permitted) {
		j->rc = -EPERM;
		return NULL;
	}
	for (size_t i = 0; i < j->n; i++) {
		enum fp_auth a = open_as_client("mem", j->pids[i]);
		if (a == FP_AUTH_DENIED && j->scope == 1 &&
		    open_as_client("environ", j->pids[i]) == FP_AUTH_OK &&
		    descends_from(j->pids[i], c->pid))
			a = FP_AUTH_OK;
		j->allowed[i] = a == FP_AUTH_OK;
		j->gone[i] = a == FP_AUTH_NO_PROCESS;
	}
	return NULL;
}

static int run_check(struct job *j)
{
	pthread_t t;
	int e = pthread_create(&t, NULL, check_main, j);
	if (e != 0) {
		fp_log("authorization: starting the checking thread failed: %s", strerror(e));
		return -e;
	}
	pthread_join(t, NULL);
	if (j->rc)
		fp_log("authorization: taking uid %u's credentials failed: %s",
		       (unsigned)j->cred->uid, strerror(-j->rc));
	return j->rc;
}

enum fp_auth fp_auth_may_ptrace(const struct fp_cred *c, pid_t pid)
{
	if (pid <= 0)
		return FP_AUTH_NO_PROCESS;
	if (c->uid == 0) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d", (int)pid);
		return access(path, F_OK) == 0 ? FP_AUTH_OK : FP_AUTH_NO_PROCESS;
	}
	bool allowed = false, gone = false;
	struct job j = {.cred = c,
			.pids = &pid,
			.n = 1,
			.allowed = &allowed,
			.gone = &gone,
			.scope = yama_scope()};
	if (run_check(&j))
		return FP_AUTH_ERROR;
	return allowed ? FP_AUTH_OK : gone ? FP_AUTH_NO_PROCESS : FP_AUTH_DENIED;
}

int fp_auth_filter(const struct fp_cred *c, const pid_t *pids, size_t n, bool *allowed)
{
	if (c->uid == 0) {
		for (size_t i = 0; i < n; i++)
			allowed[i] = true;
		return 0;
	}
	bool *gone = calloc(n ? n : 1, sizeof(*gone));
	if (!gone)
		return -ENOMEM;
	struct job j = {.cred = c,
			.pids = pids,
			.n = n,
			.allowed = allowed,
			.gone = gone,
			.scope = yama_scope()};
	int rc = run_check(&j);
	if (rc)
		memset(allowed, 0, n * sizeof(*allowed));
	free(gone);
	return rc;
}
