/* Daemon log lines: stderr, which systemd's journal collects. */
#ifndef FP_LOG_H
#define FP_LOG_H

void fp_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
