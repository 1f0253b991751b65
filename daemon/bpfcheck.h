/* Whether BPF works for fpd on this host, checked once at start-up. */
#ifndef FP_BPFCHECK_H
#define FP_BPFCHECK_H

/* Loads the self-test program; remembers the outcome. */
void fp_bpf_check(void);
/* "ok", or "unavailable: <which step failed and why>". */
const char *fp_bpf_status(void);

#endif
