/* Round-robin timer for exec'd credential helpers: the same fork + execve + write stdin +
 * read stdout to EOF + waitpid a docker or containerd does, timed with CLOCK_MONOTONIC around
 * each whole run, all probes interleaved so that machine noise falls on each alike.
 *
 * Usage: runner RUNS WARMUP SPEC
 * SPEC holds probes, one directive a line:
 *   probe NAME | arg ARG | env NAME=VALUE | in TEXT | expect TEXT | end
 * (argv[0] is the first arg; env is the whole environment; in is the stdin; expect is a
 * substring stdout must contain). Output: one line per probe, "NAME ns ns ns ...", timed runs
 * only. Any run that fails (exit status, or expect missing) aborts with a message. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXP 16
#define MAXV 256

struct probe {
    char *name, *input, *expect;
    char *argv[MAXV], *envp[MAXV];
    int argc, envc;
    long long *ns;
};

static void die(const char *what) {
    perror(what);
    exit(2);
}

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* One run: returns elapsed ns; exits on failure. */
static long long run(struct probe *p) {
    int in[2], out[2];
    static char buf[1 << 16];
    long long start = now_ns();
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) die("pipe");
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL); /* the child starts with default dispositions, as under docker */
        dup2(in[0], 0);
        dup2(out[1], 1);
        execve(p->argv[0], p->argv, p->envp);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    size_t len = strlen(p->input);
    /* A command that exits without reading stdin (`version`) closes the pipe: EPIPE, not fatal. */
    if (len && write(in[1], p->input, len) != (ssize_t)len && errno != EPIPE) die("write stdin");
    close(in[1]);
    size_t got = 0;
    for (;;) {
        ssize_t n = read(out[0], buf + got, sizeof buf - 1 - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
        if (got >= sizeof buf - 1) got = 0; /* keep reading to EOF; the answer is small */
    }
    buf[got] = 0;
    close(out[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) die("waitpid");
    long long elapsed = now_ns() - start;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "runner: %s failed (status %d): %s\n", p->name, status, buf);
        exit(1);
    }
    if (p->expect && !strstr(buf, p->expect)) {
        fprintf(stderr, "runner: %s answered without %s: %s\n", p->name, p->expect, buf);
        exit(1);
    }
    return elapsed;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: runner RUNS WARMUP SPEC\n");
        return 2;
    }
    int runs = atoi(argv[1]), warmup = atoi(argv[2]);
    signal(SIGPIPE, SIG_IGN);
    FILE *f = fopen(argv[3], "r");
    if (!f) die(argv[3]);
    static struct probe probes[MAXP];
    int np = 0;
    struct probe *cur = NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n') line[--n] = 0;
        char *sp = strchr(line, ' ');
        char *val = sp ? strdup(sp + 1) : strdup("");
        if (sp) *sp = 0;
        if (!strcmp(line, "probe")) {
            if (np == MAXP) return 2;
            cur = &probes[np++];
            cur->name = val;
            cur->input = strdup("");
        } else if (!cur) {
            return 2;
        } else if (!strcmp(line, "arg") && cur->argc < MAXV - 1) {
            cur->argv[cur->argc++] = val;
        } else if (!strcmp(line, "env") && cur->envc < MAXV - 1) {
            cur->envp[cur->envc++] = val;
        } else if (!strcmp(line, "in")) {
            cur->input = val;
        } else if (!strcmp(line, "expect")) {
            cur->expect = val;
        }
    }
    for (int i = 0; i < np; i++) {
        probes[i].ns = calloc((size_t)runs, sizeof(long long));
        if (!probes[i].ns || probes[i].argc == 0) return 2;
    }
    for (int r = 0; r < warmup + runs; r++)
        for (int i = 0; i < np; i++) {
            long long t = run(&probes[i]);
            if (r >= warmup) probes[i].ns[r - warmup] = t;
        }
    for (int i = 0; i < np; i++) {
        printf("%s", probes[i].name);
        for (int r = 0; r < runs; r++) printf(" %lld", probes[i].ns[r]);
        printf("\n");
    }
    return 0;
}
