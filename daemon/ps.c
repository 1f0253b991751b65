/*
 * `ps`: the Python processes on the host.
 *
 * Event: {"event":"process","pid":N,"user":"root","uid":0,"version":"3.11.7",
 *         "build":"shared,symbols","exe":"/usr/bin/python3.11","helper":false}
 * A non-root requester sees only the processes it could ptrace (auth.h).
 */
#include <ctype.h>
#include <dirent.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "commands.h"
#include "inject.h"
#include "proc.h"

static json_t *process_event(struct fp_req *r, const struct fp_proc_info *info,
			     const struct fp_python *py)
{
	char user[64], build[64];
	struct passwd pw, *res = NULL;
	char buf[1024];
	if (getpwuid_r(info->uid, &pw, buf, sizeof(buf), &res) == 0 && res)
		snprintf(user, sizeof(user), "%s", pw.pw_name);
	else
		snprintf(user, sizeof(user), "%u", (unsigned)info->uid);
	snprintf(build, sizeof(build), "%s,%s%s", py->shared ? "shared" : "static",
		 py->stripped ? "stripped" : "symbols", py->dtrace ? ",dtrace" : "");
	json_t *ev = fp_msg_event(r->id, "process");
	json_object_set_new(ev, "pid", json_integer(info->pid));
	json_object_set_new(ev, "user", json_string(user));
	json_object_set_new(ev, "uid", json_integer(info->uid));
	json_object_set_new(ev, "version", json_string(py->version));
	json_object_set_new(ev, "build", json_string(build));
	json_object_set_new(ev, "exe", json_string(info->exe));
	json_object_set_new(ev, "helper", json_boolean(fp_inject_agent_loaded(info->pid)));
	return ev;
}

/* Every process id in /proc but fpd's own. */
static pid_t *list_pids(size_t *n)
{
	*n = 0;
	DIR *d = opendir("/proc");
	if (!d)
		return NULL;
	size_t cap = 256;
	pid_t *pids = malloc(cap * sizeof(*pids));
	pid_t self = getpid();
	struct dirent *de;
	while (pids && (de = readdir(d))) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid_t pid = (pid_t)atoi(de->d_name);
		if (pid <= 0 || pid == self)
			continue;
		if (*n == cap) {
			cap *= 2;
			pid_t *more = realloc(pids, cap * sizeof(*pids));
			if (!more) {
				free(pids);
				pids = NULL;
				break;
			}
			pids = more;
		}
		pids[(*n)++] = pid;
	}
	closedir(d);
	return pids;
}

int fp_cmd_ps(struct fp_req *r)
{
	size_t n;
	pid_t *pids = list_pids(&n);
	bool *allowed = pids ? calloc(n ? n : 1, sizeof(*allowed)) : NULL;
	if (!allowed) {
		free(pids);
		return fp_req_fail(r, "proc", FP_EXIT_CMD, "ps: listing /proc failed");
	}
	/* A user sees exactly the processes the kernel would let them ptrace. */
	if (fp_auth_filter(&r->cred, pids, n, allowed) != 0) {
		free(pids);
		free(allowed);
		return fp_req_fail(r, "auth", FP_EXIT_CMD,
				   "ps: the permission check failed inside fpd (see its log)");
	}
	for (size_t i = 0; i < n && !fp_req_cancelled(r); i++) {
		struct fp_proc_info info;
		if (!allowed[i] || fp_proc_info(pids[i], &info) != 0)
			continue;
		struct fp_python py;
		char err[256];
		/* A process that is not Python, or not ready, is simply not listed. */
		if (fp_python_discover(pids[i], &py, err, sizeof(err)) != FP_PY_OK)
			continue;
		if (fp_req_emit(r, process_event(r, &info, &py)))
			break;
	}
	free(pids);
	free(allowed);
	return 0;
}
