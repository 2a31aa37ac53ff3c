#define _GNU_SOURCE  // pipe2
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "CStopSignals.h"

static int stop_pipe_write_end = -1;

// Only async-signal-safe calls here. The write end does not block: a full pipe (65,536 signals
// unread) drops the signal rather than hang the thread it interrupted.
static void note_stop_signal(int signal_number) {
    int saved_errno = errno;
    unsigned char number = (unsigned char)signal_number;
    ssize_t written = write(stop_pipe_write_end, &number, 1);
    (void)written;
    errno = saved_errno;
}

int jury_catch_stop_signals(void) {
    int ends[2];
    if (pipe2(ends, O_CLOEXEC) != 0) return -1;
    if (fcntl(ends[1], F_SETFL, O_NONBLOCK) != 0) return -1;
    stop_pipe_write_end = ends[1];
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = note_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &action, NULL) != 0 || sigaction(SIGINT, &action, NULL) != 0) return -1;
    return ends[0];
}
