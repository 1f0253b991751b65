#include "bpfcheck.h"

#include <bpf/libbpf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "selftest.skel.h"

static char g_status[256] = "not checked";

/* libbpf's own chatter would flood the journal; the outcome is reported once. */
static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level;
	(void)fmt;
	(void)ap;
	return 0;
}

void fp_bpf_check(void)
{
	libbpf_set_print(quiet);
	struct selftest_bpf *skel = selftest_bpf__open();
	if (!skel) {
		snprintf(g_status, sizeof(g_status),
			 "unavailable: opening the BPF object failed: %s", strerror(errno));
		return;
	}
	int err = selftest_bpf__load(skel);
	if (err)
		snprintf(g_status, sizeof(g_status),
			 "unavailable: loading a BPF program failed: %s (fpd needs root with "
			 "CAP_BPF and CAP_PERFMON)",
			 strerror(-err));
	else
		snprintf(g_status, sizeof(g_status), "ok");
	selftest_bpf__destroy(skel);
}

const char *fp_bpf_status(void)
{
	return g_status;
}
