/*
 * Installed setuid-root by test_auth.py: the shape of a setuid program a
 * user starts.  Runs argv[1...] with the caller's real uid and euid = suid = 0.
 */
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2 || geteuid() != 0) {
		fprintf(stderr, "setuid_exec: not setuid root, or no command\n");
		return 1;
	}
	execv(argv[1], argv + 1);
	perror("setuid_exec: execv");
	return 127;
}
