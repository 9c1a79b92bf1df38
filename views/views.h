// Dear ImGui views. They read the GUI thread's copy of the data (ViewData) and nothing else; what
// they ask of the trainer (a generation) they leave in ViewData for the window to send.
#pragma once
#include <string>
#include <vector>

#include "infer/cost.h"
#include "io/run_store.h"
#include "metrics/routing_report.h"
#include "metrics/stats.h"

// A stored run drawn next to the current one in the curves view.
struct OverlayRun {
    std::string name;
    unsigned colour = 0;  // ImU32
    std::vector<rl::CurvePoint> curve;
};

struct ViewData {
    rl::ProbeSnapshot probe;                 // newest probe snapshot (with attention rows)
    std::vector<rl::ProbeSnapshot> history;  // earlier snapshots for the step scrubber (no attention rows)
    std::vector<rl::StepStats> stats;        // recent steps, thinned to every 2nd, 4th... when long
    std::vector<rl::CurvePoint> curve;       // every step received, for the curves and the run store
    std::string runName;
    std::vector<OverlayRun> overlays;        // runs ticked in the runs dock
    rl::Specialization spec;                 // expert x class counts on validation text
    bool hasSpec = false;
    rl::CostReport cost;                     // measured when a routed run finishes
    bool hasCost = false;
    std::string hoverText;                   // last tooltip text (tests read it)

    int scrub = -1;       // heads view: history index, -1 = newest
    int layer = 0;        // layer shown by the experts, routing and attention views
    int token = -1;       // routing diagram: selected probe token (-1 = the last)
    int subToken = 0;     // routing diagram: MH-MoE sub-token
    int head = 0;         // attention view: enlarged head
    // routing diagram animation: replays router -> top-k -> sum when the token or layer changes
    int animToken = -2, animLayer = -1;
    double animStart = 0;
    bool animating = false;  // the view wants another frame
    // curves
    float ema = 0.6f;     // smoothing weight of the previous value (0 = raw)
    bool logY = false;
    // generate
    char prompt[256] = "User: What is the capital of France? Assistant:";
    float temperature = 0.8f, topP = 0.95f;
    int topK = 20, maxNew = 40;
    int tint = 0;                            // 0 = top expert, 1 = active-head gate mass
    bool generateRequested = false;          // set by the Generate button; the window sends it and clears it
    bool generating = false;
    rl::ProbeSnapshot generation;            // routing of prompt + output
    int generationPromptTokens = 0;
    std::string generationError;
};

// Heads: per layer, tokens x heads heatmap of the gates on the probe text; shared heads marked.
void drawHeadsView(ViewData& d);
// Experts: probe text coloured by top expert, load bars, expert x domain / lexical-class matrices, top tokens.
void drawExpertsView(ViewData& d);
// Routing diagram: for one token, router probabilities -> top-k -> weights -> weighted sum.
void drawRoutingView(ViewData& d);
// Attention: per layer and head, the attention pattern on the probe text.
void drawAttentionView(ViewData& d);
// Curves: loss parts and routing balance over steps, EMA, log-y, hover values, runs overlaid.
void drawCurvesView(ViewData& d);
// Speedup: naive, FLOP-model and measured speedups per component, forward and decode, with why.
void drawSpeedupView(ViewData& d);
// Generate: prompt and sampling settings; the output tinted by its routing.
void drawGenerateView(ViewData& d);

// Distinct colour of expert / head i (ImU32).
unsigned viewColour(int i);
// Colour of the i-th overlaid run: a palette of its own, apart from the current run's series.
unsigned overlayColour(int i);
