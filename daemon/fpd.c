/*
 * fpd: the observer daemon.  Runs in the foreground (systemd's Type=simple);
 * see tools/fpd.service.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentlink.h"
#include "bpfcheck.h"
#include "inject.h"
#include "limits.h"
#include "fp/layout.h"
#include "fp/proto.h"
#include "fp/version.h"
#include "py/python.h"
#include "server.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: fpd [--socket PATH] [--agent PATH] [--exit-when-idle]\n"
		"           [--max-clients-per-user N] [--max-clients N]\n"
		"       fpd --layout 3.X        print the CPython layout table fpd uses (JSON)\n"
		"       fpd --layout-pid PID    print the layout fpd derives for a live process\n"
		"       fpd --version\n"
		"\n"
		"The fpd observer daemon. Clients (fpctl) connect to PATH (default %s).\n"
		"--exit-when-idle stops it once no client is left (fpctl starts it so).\n"
		"--agent names the helper library injected into targets (default: the\n"
		"libfpagent.so next to fpd, else ../lib/fpd/libfpagent.so).\n"
		"--max-clients-per-user caps the connections one user other than root\n"
		"may hold (default %d); --max-clients caps those of all users other\n"
		"than root together (default %d). Root is always admitted.\n",
		FP_DEFAULT_SOCKET, FP_LIMIT_PER_USER_DEFAULT, FP_LIMIT_GLOBAL_DEFAULT);
}

/* A limit from the command line: 1 to 65536, or -1 after saying why. */
static long parse_limit(const char *opt, const char *arg)
{
	char *end;
	errno = 0;
	long v = strtol(arg, &end, 10);
	if (errno || end == arg || *end || v < 1 || v > 65536) {
		fprintf(stderr, "fpd: %s takes a number of connections from 1 to 65536, not '%s'\n",
			opt, arg);
		return -1;
	}
	return v;
}

static int print_layout(const struct fp_layout *l)
{
	json_t *j = fp_layout_json(l);
	if (!j)
		return 1;
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	puts(s);
	free(s);
	json_decref(j);
	return 0;
}

static int layout_for_version(const char *v)
{
	int major, minor;
	if (sscanf(v, "%d.%d", &major, &minor) != 2) {
		fprintf(stderr, "fpd: --layout takes a version like 3.11, not '%s'\n", v);
		return 2;
	}
	const struct fp_layout *l = fp_layout_for(major, minor);
	if (!l) {
		fprintf(stderr,
			"fpd: no static layout table for Python %d.%d (3.13+ layouts come "
			"from the live process: use --layout-pid)\n",
			major, minor);
		return 1;
	}
	return print_layout(l);
}

static int layout_for_pid(const char *arg)
{
	char *end;
	long pid = strtol(arg, &end, 10);
	if (*end || pid <= 0) {
		fprintf(stderr, "fpd: --layout-pid takes a process id, not '%s'\n", arg);
		return 2;
	}
	struct fp_python py;
	char err[512];
	if (fp_python_discover((pid_t)pid, &py, err, sizeof(err)) != FP_PY_OK) {
		fprintf(stderr, "fpd: %s\n", err);
		return 3;
	}
	return print_layout(&py.layout);
}

/*
 * The injector alone, for its tests (not in the usage): LIB into PID through
 * a fresh session directory in the target's /tmp, its entry point given SOCK
 * (as the target names it); the report as one JSON line.
 */
static int inject_test(const char *pid_arg, char **args, int nargs)
{
	char *end;
	long pid = strtol(pid_arg, &end, 10);
	if (*end || pid <= 0 || nargs != 2) {
		fprintf(stderr, "usage: fpd --inject-test PID LIB SOCKPATH_IN_TARGET\n");
		return 2;
	}
	struct fp_python py;
	struct fp_inject_report rep;
	char err[768];
	int rc = -1;
	if (fp_python_discover((pid_t)pid, &py, err, sizeof(err)) != FP_PY_OK)
		goto out;
	/* As fpd's sessions have it. */
	struct fp_session_dir dir;
	if (fp_session_dir_make((pid_t)pid, &dir, err, sizeof(err)) == 0) {
		struct fp_inject_opts o = {.agent_path = args[0],
					   .dir_fd = dir.fd,
					   .dir_target = dir.target,
					   .sock_target = args[1]};
		rc = fp_inject_agent(&py, &o, &rep, err, sizeof(err));
		fp_session_dir_remove(&dir);
	}
out:;
	json_t *j = rc == 0 ? json_pack("{sb ss sb si si sf}", "ok", 1, "method", rep.method,
					"loaded", rep.loaded, "tid", (int)rep.tid, "retries",
					rep.retries, "stopped_ms", rep.stopped_ms)
			    : json_pack("{sb ss}", "ok", 0, "error", err);
	char *s = json_dumps(j, JSON_COMPACT);
	puts(s);
	free(s);
	json_decref(j);
	return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"exit-when-idle", no_argument, NULL, 'I'},
	    {"agent", required_argument, NULL, 'A'},
	    {"layout", required_argument, NULL, 'L'},
	    {"layout-pid", required_argument, NULL, 'P'},
	    {"version", no_argument, NULL, 'V'},
	    {"inject-test", required_argument, NULL, 'T'},
	    {"max-clients-per-user", required_argument, NULL, 'U'},
	    {"max-clients", required_argument, NULL, 'C'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct fp_server_opts so = {.socket_path = FP_DEFAULT_SOCKET};
	int c;
	while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			so.socket_path = optarg;
			break;
		case 'I':
			so.exit_when_idle = true;
			break;
		case 'A':
			fp_agent_set_path(optarg);
			break;
		case 'L':
			return layout_for_version(optarg);
		case 'P':
			return layout_for_pid(optarg);
		case 'T':
			return inject_test(optarg, argv + optind, argc - optind);
		case 'U':
		case 'C': {
			long v = parse_limit(c == 'U' ? "--max-clients-per-user" : "--max-clients",
					     optarg);
			if (v < 0)
				return 2;
			fp_limits_set(c == 'U' ? (unsigned)v : 0, c == 'C' ? (unsigned)v : 0);
			break;
		}
		case 'V':
			printf("fpd %s (protocol %d)\n", FP_VERSION, FP_PROTO_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "fpd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (geteuid() != 0)
		fprintf(stderr,
			"fpd: warning: not running as root; only processes of uid %u "
			"can be inspected and BPF is unavailable\n",
			(unsigned)geteuid());
	setvbuf(stderr, NULL, _IOLBF, 0);
	fp_bpf_check();
	return fp_server_run(&so);
}
