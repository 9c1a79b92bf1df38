// Replicates (docs/tuning.md): the runs of one sweep whose configs differ only in train.seed are one
// configuration run on several seeds. The tuning view shows each configuration once, its metrics the
// means over its runs and their spread beside them, and ranks by the mean.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <vector>

#include "config/sweep.h"
#include "io/run_store.h"

// A run's value of an objective's metric (TuneMetric); NaN where it was not measured.
double runMetric(const rl::RunRecord& r, rl::TuneMetric m);

// The spread of a configuration's runs, per metric (over the runs that measured it).
struct RunSpread {
    int n = 1;                                                       // runs
    std::array<double, (size_t)rl::TuneMetric::count> sd{}, lo{}, hi{};
};
struct RunGroups {
    // One record per configuration: its first run's, with each metric the mean over its runs, the
    // steps the furthest reached, the status "pruned" if any was, and the name without its seed.
    std::vector<rl::RunRecord> rows;
    std::map<int64_t, RunSpread> spread;     // row id -> spread, for configurations of 2 or more runs
    std::map<int64_t, std::vector<int64_t>> members;  // row id -> its runs' ids
};
// Runs of no sweep, and runs whose config cannot be read, stay alone.
RunGroups runGroups(const std::vector<rl::RunRecord>& runs);
