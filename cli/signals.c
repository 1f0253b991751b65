/*
 * Ctrl-C and termination signals.  The handler only records the signal and
 * writes a byte to a pipe that the request loop polls next to the socket:
 * a signal that lands between a check of the flag and poll() still wakes it.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include "cli.h"

static int g_pipe[2] = {-1, -1};
static volatile sig_atomic_t g_signal;

static void on_signal(int sig)
{
	int saved = errno;
	g_signal = sig;
	if (write(g_pipe[1], "", 1) < 0) {
		/* Pipe full: a wake-up is already pending. */
	}
	errno = saved;
}

int cli_signals_install(void)
{
	if (pipe2(g_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
		return -1;
	/* No SA_RESTART: a blocking read (the shell's line editor) must return. */
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (sigaction(sigs[i], &sa, NULL) != 0)
			return -1;
	return 0;
}

int cli_signal_fd(void)
{
	return g_pipe[0];
}

int cli_signal_pending(void)
{
	return g_signal;
}

void cli_signal_clear(void)
{
	char buf[64];
	while (read(g_pipe[0], buf, sizeof(buf)) > 0)
		;
	g_signal = 0;
}
