// SPDX-License-Identifier: GPL-2.0
/*
 * The smallest program fpd loads at start-up: it proves that this kernel
 * lets fpd load and verify BPF (BTF, CAP_BPF, the perf_event program type the
 * sampler uses) before a user asks for a command that needs it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("perf_event")
int fp_selftest(struct bpf_perf_event_data *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
