// connbench: the policy benchmark's connection load, in C so the load
// generator is not what limits the measured rate.
//   connbench server PORT               16 threads: accept, read a byte, answer it, close
//   connbench client IP PORT THREADS MS each thread: connect, send, receive, reset-close; repeat
// The client prints {"done":N,"failed":M}. Connections end with RST (SO_LINGER 0) so the
// client's ports never pile up in TIME_WAIT.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in target;
static atomic_long done, failed;
static struct timespec deadline;

static int before_deadline(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec < deadline.tv_sec || (now.tv_sec == deadline.tv_sec && now.tv_nsec < deadline.tv_nsec);
}

static void *client_loop(void *arg)
{
	(void)arg;
	struct linger lg = { 1, 0 };
	char b = 'x';
	while (before_deadline()) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0) { atomic_fetch_add(&failed, 1); continue; }
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		struct timeval tv = { 2, 0 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (connect(fd, (struct sockaddr *)&target, sizeof(target)) == 0 && send(fd, &b, 1, 0) == 1 && recv(fd, &b, 1, 0) == 1)
			atomic_fetch_add(&done, 1);
		else
			atomic_fetch_add(&failed, 1);
		close(fd);
	}
	return NULL;
}

/* A fixed pool of threads sharing one listening socket: no thread per connection to run out of. */
static void *serve(void *arg)
{
	int s = (int)(long)arg;
	char b;
	for (;;) {
		int c = accept(s, NULL, NULL);
		if (c < 0)
			continue;
		struct timeval tv = { 2, 0 };
		setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (recv(c, &b, 1, 0) == 1)
			send(c, &b, 1, 0);
		close(c);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "server") == 0) {
		int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])), .sin_addr.s_addr = INADDR_ANY };
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(s, (struct sockaddr *)&a, sizeof(a)) || listen(s, 4096)) { perror("listen"); return 1; }
		pthread_t t[16];
		for (int i = 0; i < 16; i++)
			pthread_create(&t[i], NULL, serve, (void *)(long)s);
		pthread_join(t[0], NULL);
		return 0;
	}
	if (argc == 6 && strcmp(argv[1], "client") == 0) {
		int threads = atoi(argv[4]);
		long ms = atol(argv[5]);
		target.sin_family = AF_INET;
		target.sin_port = htons(atoi(argv[3]));
		inet_pton(AF_INET, argv[2], &target.sin_addr);
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += ms / 1000;
		deadline.tv_nsec += (ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) { deadline.tv_sec++; deadline.tv_nsec -= 1000000000L; }
		pthread_t t[64];
		if (threads > 64) threads = 64;
		for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, client_loop, NULL);
		for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
		printf("{\"done\":%ld,\"failed\":%ld}\n", atomic_load(&done), atomic_load(&failed));
		return 0;
	}
	fprintf(stderr, "usage: connbench server PORT | connbench client IP PORT THREADS MS\n");
	return 2;
}
