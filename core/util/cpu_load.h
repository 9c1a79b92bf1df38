// How many CPU cores other processes are keeping busy, from /proc/stat (all CPUs' busy time) less
// this process's own CPU time. Linux only; reads with open/read into a stack buffer (no heap).
#pragma once

namespace rl {

struct CpuLoad {
    double wall = 0, busy = 0, own = 0;  // seconds at the last sample: clock, all CPUs' busy time, ours
    double others = -1;                  // cores busy with other processes over the last window (-1: unknown)
};

// Samples and, when at least min_window seconds passed since the last sample, updates l.others.
// Returns false when /proc/stat cannot be read (then l.others stays -1).
bool cpu_load_update(CpuLoad& l, double min_window = 0.25);
// Online CPUs of this machine (sysconf).
int cpu_count();

}  // namespace rl
