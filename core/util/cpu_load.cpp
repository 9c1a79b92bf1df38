#include "util/cpu_load.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace rl {

namespace {

double clock_seconds(clockid_t id) {
    timespec ts{};
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Busy seconds of all CPUs since boot: the first line of /proc/stat, "cpu user nice system idle
// iowait irq softirq steal ...", in USER_HZ ticks; busy is everything but idle and iowait.
bool proc_stat_busy(double* busy) {
    const int fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char buf[512];
    const ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 4 || buf[0] != 'c' || buf[1] != 'p' || buf[2] != 'u' || buf[3] != ' ') return false;
    buf[n] = 0;
    char* p = buf + 4;
    double ticks = 0;
    for (int field = 0; field < 8; field++) {
        char* end = nullptr;
        const double v = std::strtod(p, &end);
        if (end == p) return field >= 4 ? (*busy = ticks / (double)sysconf(_SC_CLK_TCK), true) : false;
        if (field != 3 && field != 4) ticks += v;  // skip idle, iowait
        p = end;
    }
    *busy = ticks / (double)sysconf(_SC_CLK_TCK);
    return true;
}

}  // namespace

int cpu_count() {
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

bool cpu_load_update(CpuLoad& l, double min_window) {
    double busy = 0;
    if (!proc_stat_busy(&busy)) return false;
    const double wall = clock_seconds(CLOCK_MONOTONIC), own = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
    if (l.wall == 0) {
        l.wall = wall, l.busy = busy, l.own = own;
        return true;
    }
    const double dt = wall - l.wall;
    if (dt < min_window) return true;
    const double others = ((busy - l.busy) - (own - l.own)) / dt;
    l.others = others < 0 ? 0 : others;
    l.wall = wall, l.busy = busy, l.own = own;
    return true;
}

}  // namespace rl
