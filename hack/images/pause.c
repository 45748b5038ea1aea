/*
 * The pod sandbox's process (the "pause" container of every pod the lab's containerd runs): it
 * holds the pod's namespaces open and reaps the zombies of a shared PID namespace, then exits
 * cleanly on SIGINT or SIGTERM. Built static (hack/images/build.sh), so its image is this one file.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig)
{
	(void)sig;
	_exit(0);
}

static void reap(int sig)
{
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		puts("weft-pause 1.0");
		return 0;
	}
	if (getpid() != 1)
		fputs("weft-pause: warning: not PID 1, zombies of other processes are not reaped\n", stderr);
	struct sigaction term = { .sa_handler = stop };
	struct sigaction chld = { .sa_handler = reap, .sa_flags = SA_NOCLDSTOP };
	if (sigaction(SIGINT, &term, NULL) || sigaction(SIGTERM, &term, NULL) || sigaction(SIGCHLD, &chld, NULL)) {
		perror("weft-pause: sigaction");
		return 1;
	}
	for (;;)
		pause();
}
