// Stored runs side by side: the config keys whose values differ among them, each run's value of
// each, and the comparison table (CSV, Markdown) the Runs dock exports. The tuning view and the
// window build theirs from the same function, so the view and the export show the same columns.
#pragma once
#include <string>
#include <vector>

#include "io/run_store.h"

struct RunTable {
    std::vector<std::string> keys;               // config keys that differ among the runs, in key order
    std::vector<bool> numeric;                   // [key] every run that has the key holds a number
    std::vector<std::vector<std::string>> text;  // [run][key] the value as shown ("" = the run's config lacks it)
    std::vector<std::vector<double>> number;     // [run][key] the value when a number, else NaN
    // [run] its model routes heads (MoH) / experts: the head / expert balance metrics mean something
    std::vector<bool> routedHeads, routedExperts;
};
// name and description are labels, not settings: never columns.
RunTable runTable(const std::vector<rl::RunRecord>& runs);
// The table without KEY's column (no-op where it has none): seeds grouped, train.seed is not a setting.
void dropTableKey(RunTable& t, const std::string& key);

// A number as the table shows it: %.6g, so 0.001f reads 0.001, not 0.0010000000474974513.
std::string tableNumber(double v);

// id, name, status, steps, final loss, val loss, load CV, head CV, dropped, tok/s, then the differing
// keys; a metric that was not measured (-1), or of a router the run's model lacks (the store keeps 0
// there), is an empty cell (CSV) or "-" (Markdown).
std::string comparisonCsv(const std::vector<rl::RunRecord>& runs);
std::string comparisonMarkdown(const std::vector<rl::RunRecord>& runs);
