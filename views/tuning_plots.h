// The tuning view's other two plots (docs/tuning.md): the Pareto scatter of two objectives under a
// constraint, and which keys matter (PED-ANOVA importance bars).
#pragma once
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "run_groups.h"
#include "run_table.h"
#include "views.h"

// The finished rows on the feasible front of (x, y) in the directions s asks for, by x; the others'
// status: feasible (violation 0) or not, by s.constraint (ok false with its message when it does not parse).
struct ParetoFront {
    std::vector<size_t> front;      // row indices
    std::vector<double> violation;  // per row
    bool ok = true;
    std::string error;
};
ParetoFront paretoFront(const std::vector<rl::RunRecord>& rows, const TuningState& s);

// The scatter's axes for the rows' (x, y) metrics of s, each padded 5%: fitted to the rows that were not
// pruned (a pruned run's value is from its rung, step 67 of 200 say, far above every finished one, and
// would squeeze the front into a sliver); all rows where fewer than two were not. Rows past them are
// drawn at their edge.
struct AxisRange {
    double lo = 0, hi = 1;
};
std::pair<AxisRange, AxisRange> scatterAxes(const std::vector<rl::RunRecord>& rows, const TuningState& s);

// Any two objectives, each minimised or maximised; dominated and infeasible runs grey, the front
// joined, seeds' spread as error bars, pruned runs as diamonds marked with the steps they reached (or
// triangles at the edge, pointing out, where they lie past the axes).
// The run under the mouse goes to hoveredNow; a click ticks it in the Runs dock.
void drawParetoScatter(const std::vector<rl::RunRecord>& rows, const std::map<int64_t, RunSpread>& spread, TuningState& s,
                       ViewOutbox& out, int64_t highlight, int64_t& hoveredNow, float height);

// Importance of the differing keys (t: the rows' table) for the validation loss of the finished rows,
// or why there is none yet. The shares, by key, for the tests.
std::vector<double> keyImportance(const std::vector<rl::RunRecord>& rows, const RunTable& t, std::vector<std::string>& keys);
void drawImportance(const std::vector<rl::RunRecord>& rows, const RunTable& t, ViewOutbox& out, float height);
