/*
 * fpd: the observer daemon.  Runs in the foreground (systemd's Type=simple);
 * see tools/fpd.service.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentlink.h"
#include "bpfcheck.h"
#include "fp/layout.h"
#include "fp/proto.h"
#include "fp/version.h"
#include "py/python.h"
#include "server.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: fpd [--socket PATH] [--agent PATH] [--exit-when-idle]\n"
		"       fpd --layout 3.X        print the CPython layout table fpd uses (JSON)\n"
		"       fpd --layout-pid PID    print the layout fpd derives for a live process\n"
		"       fpd --version\n"
		"\n"
		"The fpd observer daemon. Clients (fpctl) connect to PATH (default %s).\n"
		"--exit-when-idle stops it once no client is left (fpctl starts it so).\n"
		"--agent names the helper library injected into targets (default: the\n"
		"libfpagent.so next to fpd, else ../lib/fpd/libfpagent.so).\n",
		FP_DEFAULT_SOCKET);
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

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"exit-when-idle", no_argument, NULL, 'I'},
	    {"agent", required_argument, NULL, 'A'},
	    {"layout", required_argument, NULL, 'L'},
	    {"layout-pid", required_argument, NULL, 'P'},
	    {"version", no_argument, NULL, 'V'},
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
