/*
 * `status`: the daemon's own state; `check`: whether a pid can be attached
 * (what the interactive shell asks before showing its prompt).
 *
 * status event: {"event":"status","pid":N,"version":"0.1.0","proto":1,
 *   "socket":"/run/fpd/fpd.sock","uptime_s":1.5,"clients":1,"max_clients_per_user":16,
 *   "max_clients":256,"refused_clients":0,"bpf":"ok","helpers":["1234 (Python 3.11.7)"]}
 * (helpers: live helper sessions, on the processes the requester could ptrace)
 * (max_clients counts users other than root: root is always admitted.)
 * check event: {"event":"target","pid":N,"version":"3.11.7","exe":"..."}
 */
#include <unistd.h>

#include "agentlink.h"
#include "bpfcheck.h"
#include "commands.h"
#include "fp/version.h"
#include "limits.h"
#include "proc.h"

int fp_cmd_status(struct fp_req *r)
{
	json_t *ev = fp_msg_event(r->id, "status");
	json_object_set_new(ev, "pid", json_integer(getpid()));
	json_object_set_new(ev, "version", json_string(FP_VERSION));
	json_object_set_new(ev, "proto", json_integer(FP_PROTO_VERSION));
	json_object_set_new(ev, "socket", json_string(fp_server_socket()));
	json_object_set_new(ev, "uptime_s", json_real(fp_server_uptime()));
	json_object_set_new(ev, "clients", json_integer(fp_server_clients()));
	struct fp_limits_state lim;
	fp_limits_get(&lim);
	json_object_set_new(ev, "max_clients_per_user", json_integer(lim.per_user));
	json_object_set_new(ev, "max_clients", json_integer(lim.global));
	json_object_set_new(ev, "refused_clients", json_integer((json_int_t)lim.refused));
	json_object_set_new(ev, "bpf", json_string(fp_bpf_status()));
	json_object_set_new(ev, "helpers", fp_agent_sessions_json(&r->cred));
	return fp_req_emit(r, ev);
}

int fp_cmd_check(struct fp_req *r)
{
	struct fp_python py;
	if (fp_req_python(r, &py))
		return -1;
	struct fp_proc_info info;
	fp_proc_info(r->pid, &info);
	json_t *ev = fp_msg_event(r->id, "target");
	json_object_set_new(ev, "pid", json_integer(r->pid));
	json_object_set_new(ev, "version", json_string(py.version));
	json_object_set_new(ev, "exe", json_string(info.exe));
	return fp_req_emit(r, ev);
}
