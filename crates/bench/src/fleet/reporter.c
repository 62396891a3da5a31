/*
 * reporter.c: publishes the connection oracle's counts of a process that does not
 * know about the oracle (the fleet simulation's server instances).
 *
 * Preloaded after the harness's oracle shim (LD_PRELOAD="<oracle>.so:<this>.so").
 * When FLEET_ORACLE_PORT and FLEET_ORACLE_FILE are set, its constructor makes the
 * oracle watch that TCP port and starts one thread that, every 10 ms, appends
 * "<CLOCK_MONOTONIC ns> <current> <window max>\n" to the file, where the window max
 * is the oracle's exact peak since the previous line (read, then reset). A peak that
 * both starts and ends between the read and the reset (a few instructions) is the one
 * thing it can miss. Nothing else of the process is touched.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef void (*watch_fn)(int, const char *);
typedef long (*count_fn)(void);
typedef void (*reset_fn)(void);

static count_fn current_count;
static count_fn max_count;
static count_fn untracked_count;
static reset_fn reset_max;
static int out_fd = -1;

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *publish(void *unused) {
    char line[96];
    struct timespec period = {0, 10 * 1000 * 1000};
    (void)unused;
    for (;;) {
        long peak = max_count();
        int n;
        reset_max();
        n = snprintf(line, sizeof line, "%lld %ld %ld %ld\n", now_ns(), current_count(), peak,
                     untracked_count());
        if (n > 0 && write(out_fd, line, (size_t)n) < 0) return NULL;
        nanosleep(&period, NULL);
    }
    return NULL;
}

__attribute__((constructor)) static void reporter_init(void) {
    const char *port = getenv("FLEET_ORACLE_PORT");
    const char *file = getenv("FLEET_ORACLE_FILE");
    watch_fn watch;
    pthread_t thread;
    if (!port || !file) return;
    watch = (watch_fn)dlsym(RTLD_DEFAULT, "conn_oracle_watch");
    current_count = (count_fn)dlsym(RTLD_DEFAULT, "conn_oracle_current");
    max_count = (count_fn)dlsym(RTLD_DEFAULT, "conn_oracle_max");
    untracked_count = (count_fn)dlsym(RTLD_DEFAULT, "conn_oracle_untracked");
    reset_max = (reset_fn)dlsym(RTLD_DEFAULT, "conn_oracle_reset_max");
    if (!watch || !current_count || !max_count || !untracked_count || !reset_max) return;
    out_fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out_fd < 0) return;
    watch(atoi(port), NULL);
    reset_max();
    if (pthread_create(&thread, NULL, publish, NULL) == 0) pthread_detach(thread);
}
