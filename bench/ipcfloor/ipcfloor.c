/*
 * ipcfloor: the floor of an isolated plugin's round trip. Two processes,
 * this one and a child it forks, exchange one byte over a unix socket pair,
 * one round trip at a time, for a given time: each round trip wakes the
 * child once and this process once, the least that reaching a plugin in a
 * worker process of its own can cost. No gateway, framing or Go can make a
 * round trip to a worker cheaper. Run it pinned as the gateway and its
 * worker are (taskset -c 0 ipcfloor), and the two processes share that CPU.
 *
 *   ipcfloor [SECONDS]
 *
 * It prints one JSON object: the round trips made and, per round trip, the
 * wall time and the CPU time of both processes (user + system), as
 * comparable to the server CPU time repe-bench reads from /proc for a
 * gateway and its worker. Exit status 0, or 1 with a one-line reason on
 * standard error.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double seconds(const struct timespec *t) { return t->tv_sec + t->tv_nsec / 1e9; }

static double cpu(const struct rusage *r)
{
	return r->ru_utime.tv_sec + r->ru_utime.tv_usec / 1e6 + r->ru_stime.tv_sec + r->ru_stime.tv_usec / 1e6;
}

/* echo answers every byte until the other end closes. */
static int echo(int fd)
{
	char b[64];
	for (;;) {
		ssize_t k = read(fd, b, sizeof b);
		if (k <= 0)
			return k == 0 ? 0 : 1;
		if (write(fd, b, (size_t)k) != k)
			return 1;
	}
}

/* trip makes one round trip, or returns -1. */
static int trip(int fd)
{
	char b = 'x';
	if (write(fd, &b, 1) != 1 || read(fd, &b, 1) != 1)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	double limit = argc > 1 ? atof(argv[1]) : 3;
	int sv[2];
	if (limit <= 0) {
		fprintf(stderr, "ipcfloor: usage: ipcfloor [SECONDS]\n");
		return 1;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
		perror("ipcfloor: socketpair");
		return 1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("ipcfloor: fork");
		return 1;
	}
	if (pid == 0) {
		close(sv[0]);
		_exit(echo(sv[1]));
	}
	close(sv[1]);
	for (int i = 0; i < 1000; i++) { /* warm up both processes */
		if (trip(sv[0]) != 0) {
			perror("ipcfloor: round trip");
			return 1;
		}
	}
	struct rusage self0, self1, child;
	struct timespec t0, t1;
	getrusage(RUSAGE_SELF, &self0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	long n = 0;
	do {
		for (int i = 0; i < 1000; i++, n++) {
			if (trip(sv[0]) != 0) {
				perror("ipcfloor: round trip");
				return 1;
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
	} while (seconds(&t1) - seconds(&t0) < limit);
	getrusage(RUSAGE_SELF, &self1);
	/* The child's CPU over its whole life: its warm-up is 1000 round trips
	 * of n, and its start costs little against them. */
	close(sv[0]);
	int status;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "ipcfloor: the child failed\n");
		return 1;
	}
	getrusage(RUSAGE_CHILDREN, &child);
	double wall = seconds(&t1) - seconds(&t0);
	double used = cpu(&self1) - cpu(&self0) + cpu(&child) * n / (n + 1000);
	printf("{\"round_trips\": %ld, \"wall_us\": %.3f, \"cpu_us\": %.3f}\n", n, wall / n * 1e6, used / n * 1e6);
	return 0;
}
