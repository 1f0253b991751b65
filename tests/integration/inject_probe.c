/*
 * A stand-in for libfpagent.so in the injector's tests: the same entry point,
 * whose thread connects to the socket it is given and writes "ok <pid>\n"
 * (the pid as the target sees it), so that a test can tell the injection
 * reached the entry and that a thread could start.
 *
 * Built by tests/integration/test_inject.py with gcc -shared -fPIC; with
 * -DPROBE_HANG its constructor never returns in time, for the watchdog.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void *report(void *arg)
{
	char *path = arg;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	free(path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		char line[32];
		int n = snprintf(line, sizeof(line), "ok %d\n", (int)getpid());
		if (write(fd, line, (size_t)n) != n)
			perror("inject_probe: write");
	}
	close(fd);
	return NULL;
}

#ifdef PROBE_HANG
__attribute__((constructor)) static void hang(void)
{
	sleep(60);
}
#endif

/* Like the real helper: copy the path, start one detached thread with every signal blocked. */
int fpagent_start(const char *sock_path)
{
	char *path = strdup(sock_path);
	if (!path)
		return -ENOMEM;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_t th;
	int e = pthread_create(&th, &attr, report, path);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e) {
		free(path);
		return -e;
	}
	return 0;
}
