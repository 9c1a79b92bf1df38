// Dear ImGui views. They read the GUI thread's copy of the data (ViewData) and nothing else.
#pragma once
#include <string>
#include <vector>

#include "infer/cost.h"
#include "metrics/routing_report.h"
#include "metrics/stats.h"

struct ViewData {
    rl::ProbeSnapshot probe;                 // newest probe snapshot
    std::vector<rl::ProbeSnapshot> history;  // earlier snapshots for the step scrubber
    std::vector<rl::StepStats> stats;        // every step received
    int scrub = -1;                          // heads view: history index, -1 = newest
    int layer = 0;
    std::string hoverText;                   // last tooltip text (tests read it)
    rl::CostReport cost;                     // measured when a routed run finishes
    bool hasCost = false;
};

// Heads: per layer, tokens x heads heatmap of the gates on the probe text; shared heads marked.
void drawHeadsView(ViewData& d);
// Experts: the probe text with each token coloured by its top expert, per layer.
void drawExpertsView(ViewData& d);
// Speedup: naive, FLOP-model and measured speedups per component, forward and decode, with why.
void drawSpeedupView(ViewData& d);
// Curves: loss parts and routing balance over steps.
void drawCurvesView(ViewData& d);
