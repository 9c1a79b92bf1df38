// Dear ImGui views of a training run. A view reads the run data (the GUI thread's copy of what the
// trainer sent, which only the window writes) and keeps its UI state in a struct of its own; what it
// asks of the window (a generation) it leaves in the out-box.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "experiments/experiment.h"
#include "infer/cost.h"
#include "io/run_store.h"
#include "metrics/cluster_cost.h"
#include "metrics/routing_report.h"
#include "train/step_stats.h"

// A stored run drawn next to the current one in the curves view.
struct OverlayRun {
    int64_t id = 0;
    std::string name;
    unsigned colour = 0;  // ImU32
    std::vector<rl::CurvePoint> curve;
};

// The run as the window received it. The views get it read-only.
struct RunData {
    rl::ProbeSnapshot probe;                 // newest probe snapshot (with attention rows)
    std::vector<rl::ProbeSnapshot> history;  // earlier snapshots for the step scrubber (no attention rows)
    int historyEpoch = 0;                    // bumped when history is thinned or cleared: positions into it are stale
    std::vector<rl::StepStats> stats;        // recent steps, thinned to every 2nd, 4th... when long
    std::vector<rl::CurvePoint> curve;       // every step received, for the curves and the run store
    std::vector<rl::StepLoads> loads;        // every step's routing loads, for the cluster view and the run store
    // The model's shape as the cluster view costs it (0 experts: dense, nothing to cost).
    struct Shape {
        int hidden = 0, topK = 0, expertWidth = 0, nExperts = 0;
        double stepPairs = 0;  // (token, expert) pairs one training step routes: B T K
    } shape;
    std::string runName;
    std::vector<OverlayRun> overlays;        // runs ticked in the runs dock
    std::vector<rl::RunRecord> runs;         // every stored run of the workspace, newest first (the tuning view)
    int64_t currentRunId = 0;                // the store's id of the run being trained (0 = none)
    rl::Specialization spec;                 // expert x class counts on validation text
    bool hasSpec = false;
    rl::CostReport cost;                     // measured when a routed run finishes
    bool hasCost = false;
    bool measuring = false;                  // a Re-measure was asked for and has not come back
    bool generating = false;                 // a generation was sent and has not come back
    rl::ProbeSnapshot generation;            // routing of prompt + output
    int generationPromptTokens = 0;
    std::string generationError;
    std::string generationNote;              // how the generation ended, when the end token ended it
    // The experiments view: by rl::ExperimentKind, the newest progress or result of each (id 0: none yet).
    std::array<rl::ExperimentResult, 4> experiments;
    int experimentRunning = 0;               // id of the request in flight (0 = none)
    std::string biasesSaved;                 // where the last calibration's biases were written ("" = not yet)
};

// Each view's own UI state, written by that view.
struct HeadsState {
    int scrub = -1;  // history index, -1 = newest
    int epoch = 0;   // the RunData::historyEpoch that scrub indexes
};
struct RoutingState {
    int token = -1;    // selected probe token (-1 = the last)
    int subToken = 0;  // MH-MoE sub-token
    // The diagram replays router -> top-k -> sum when the token or layer changes.
    int animToken = -2, animLayer = -1;
    double animStart = 0;
    bool animating = false;  // the view wants another frame
};
struct AttentionState {
    int head = 0;  // the enlarged head
};
struct CurvesState {
    float ema = 0.6f;  // smoothing weight of the previous value (0 = raw)
    bool logY = false;
    // Set from the Runs dock: x = seconds of training instead of steps, and the raw min/max band
    // around each run's smoothed loss (the span the EMA averages over).
    bool wallTime = false;
    bool band = false;
};
// The tuning view: filters, the parallel plot's axes, and the run under the mouse.
struct TuningState {
    std::string sweep;                 // only this sweep's runs ("" = all)
    char tag[64] = "";                 // only runs with a tag containing this ("" = all)
    std::map<std::string, bool> axes;  // differing key -> an axis of the plot; absent = default (numeric keys)
    int64_t hovered = 0;               // run under the mouse in the plot or the table (0 = none)
    bool hoverFromPlot = false;        // the table scrolls to a run hovered in the plot
    int64_t pinned = 0;                // highlighted without a mouse (--highlight-run)
    bool groupSeeds = true;            // a sweep's runs of one config on several seeds: one row, their mean
    int plot = 0;                      // 0 parallel coordinates, 1 Pareto scatter, 2 importance
    int paretoX = 2, paretoY = 0;      // rl::TuneMetric: tok_per_s across, val_loss up
    bool maxX = true, maxY = false;    // each objective maximised or minimised
    char constraint[64] = "dropped <= 0.01";  // "" = none
};
struct GenerateState {
    char prompt[256] = "User: What is the capital of France? Assistant:";
    float temperature = 0.8f, topP = 0.95f;
    int topK = 20, maxNew = 40, minNew = 0;
    int tint = 0;  // 0 = top expert, 1 = active-head gate mass
};

// The experiments view: its routing keys (live: each change evaluates again), its texts and domains.
struct ExperimentsState {
    int topK = 0;                   // 0 = the model's
    int renorm = 0;                 // 0 = the model's, 1 = renormalise, 2 = plain probabilities
    char mask[96] = "";             // experts no token may choose: "3,5"
    float capacity = 0;             // capacity factor, 0 = none
    int maskLeastUsed = 0;         // mask each layer's this many least used experts (compare; measured unchanged)
    bool biasOff = false;           // the selection biases held at 0
    bool live = true;               // a changed key evaluates again at once
    char textFile[256] = "";        // held-out text ("" = the validation text)
    int tokens = 2048;              // of the held-out text
    int context = 512;              // tokens per forward
    char domains[1024] = "";        // NAME=FILE per line ("" = the embedded corpus's domains)
    int domainTokens = 20000;       // per domain
    char biasFile[256] = "expert_bias.json";
    std::vector<int> sweepKs;       // the sweep's top-k (empty: 1, 2, 4 ... E and the model's)
    std::string sent;               // the keys of the last compare sent (live: a change sends again)
};

// The cluster the cluster view asks about: its sliders and checkboxes (they carry over to a new run).
struct ClusterSettings {
    int ep = 8;                  // expert-parallel ranks (a divisor of E, or a multiple: each expert split)
    int gpusPerNode = 8;
    float capacityFactor = 0;    // 0 = dropless
    bool pad = false;            // pad every chunk to the capacity
    bool balanced = false;       // a placement that balances the measured popularity, not Megatron's blocks
    int tokensPerRank = 4096;
    int dtype = 0;               // 0 bf16, 1 fp8 dispatch, 2 fp32
    bool operator==(const ClusterSettings&) const = default;
};
// The cluster view: the cluster asked about, and the report of it kept until the loads or the cluster change.
struct ClusterState {
    ClusterSettings set;
    // Kept between frames: recomputed when these differ from the run and the settings drawn.
    size_t steps = 0;            // run.loads.size() it was computed for
    ClusterSettings computedFor;
    std::optional<rl::ClusterReport> report;  // the late steps' report
    std::string error;                        // why there is none
    std::vector<float> trendX;                // step at each window's end
    std::vector<std::vector<float>> trendI;   // [layer][window]: imbalance at the cluster's batch
    std::vector<float> trendSlow;             // [window]: measured / balanced time of the MoE layers
    std::vector<float> trendDrop;             // [window]: dropped share, layer mean
};

// The states of all the views. The experts, routing, attention, curves and generate views show one
// layer at a time, the same one: switching between them keeps it.
struct ViewStates {
    int layer = 0;
    HeadsState heads;
    RoutingState routing;
    AttentionState attention;
    CurvesState curves;
    GenerateState generate;
    TuningState tuning;
    ExperimentsState experiments;
    ClusterState cluster;
};

// An interactive item the last frame drew, in the view's pixels: what the tests point at with real
// input (tests/gui), and where the monkey test aims some of its events.
struct ViewTarget {
    std::string kind;  // "routing.token", "attention.thumb", ... (markTarget's callers)
    int index = 0;
    float x = 0, y = 0, w = 0, h = 0;
};

// What the views hand back to the window.
struct ViewOutbox {
    bool generateRequested = false;  // the Generate button; the window sends the request and clears it
    bool remeasureRequested = false;  // the speedup view's Re-measure button (the same way)
    std::string hoverText;           // last tooltip text (tests read it)
    int64_t toggleOverlay = 0;       // a run clicked in the tuning view: the window ticks or unticks it in the Runs dock
    std::string spotlit;             // the spotlight region drawn in the last frame ("" = none), and its rect
    float spotlitRect[4] = {0, 0, 0, 0};  // x, y, w, h in the view's pixels
    std::vector<ViewTarget> targets;      // the frame's interactive items (cleared before each frame)
    std::optional<rl::ExperimentRequest> experiment;  // the experiments view: run this (the window sends it and clears it)
    bool experimentCancel = false;        // its Cancel button
    std::string saveBiases;               // its Save button: write the last calibration's biases to this file
};

// What reaches the window, from the trainer or the runs dock. A view is redrawn only when something
// it shows arrived: with software GL every frame is taken from the trainer.
namespace Arrival {
enum : unsigned {
    Stats = 1u << 0,           // step stats and their curve points
    Probe = 1u << 1,           // a probe snapshot
    Specialization = 1u << 2,  // expert x class counts on validation text
    Cost = 1u << 3,            // the speedup measurement
    Generation = 1u << 4,      // a generation sent, refused or returned
    Overlays = 1u << 5,        // runs ticked or unticked in the runs dock
    Runs = 1u << 6,            // the stored runs list changed (a run began, ended, was renamed; a CLI wrote one)
    Experiment = 1u << 7,      // an experiment's progress or result
};
}

// One view. The table of them is the window's only list of views: its tabs, the View menu and
// the Ctrl+1... shortcuts, the view drawn, and when it is redrawn.
struct ViewEntry {
    const char* name;  // tab text and --view name
    // Draws the view into the current ImGui window; true = it animates and wants another frame.
    bool (*draw)(const RunData& run, ViewStates& states, ViewOutbox& out);
    unsigned redrawOn;  // the Arrival bits it shows
};
// The views, in tab order.
std::span<const ViewEntry> viewTable();

// Heads: per layer, tokens x heads heatmap of the gates on the probe text; shared heads marked.
void drawHeadsView(const RunData& run, HeadsState& s, ViewOutbox& out);
// Experts: probe text coloured by top expert, load bars, expert x domain / lexical-class matrices, top tokens.
void drawExpertsView(const RunData& run, int& layer, ViewOutbox& out);
// Routing diagram: for one token, router probabilities -> top-k -> weights -> weighted sum.
void drawRoutingView(const RunData& run, RoutingState& s, int& layer, ViewOutbox& out);
// Attention: per layer and head, the attention pattern on the probe text.
void drawAttentionView(const RunData& run, AttentionState& s, int& layer, ViewOutbox& out);
// Curves: loss parts and routing balance over steps, EMA, log-y, hover values, runs overlaid.
void drawCurvesView(const RunData& run, CurvesState& s, int& layer, ViewOutbox& out);
// Speedup: naive, FLOP-model and measured speedups per component, forward and decode, with why.
void drawSpeedupView(const RunData& run, ViewOutbox& out);
// Generate: prompt and sampling settings; the output tinted by its routing.
void drawGenerateView(const RunData& run, GenerateState& s, int& layer, ViewOutbox& out);
// Tuning: the stored runs ranked, their differing config keys and final metrics, a parallel-coordinates
// plot of chosen keys against validation loss; true = the highlight moved and wants one more frame.
bool drawTuningView(const RunData& run, TuningState& s, ViewOutbox& out);
// Experiments on a model nothing trains: routing interventions next to the unchanged model, the top-k
// sweep, bias calibration, specialisation on named domains (drawn by the experts view).
void drawExperimentsView(const RunData& run, ExperimentsState& s, ViewOutbox& out);
// The request the experiments view sends for kind k with these settings (its buttons, scripted runs).
rl::ExperimentRequest experimentRequest(const ExperimentsState& s, rl::ExperimentKind k);

// Cluster: what the run's measured routing would cost with expert parallelism (metrics/cluster_cost.h):
// per-layer imbalance over training, all-to-all bytes, drops, memory and a time range, sliders for the
// cluster.
void drawClusterView(const RunData& run, ClusterState& s, int& layer, ViewOutbox& out);

// Distinct colour of expert / head i (ImU32): k_viewColours of them, then they repeat.
constexpr int k_viewColours = 64;
unsigned viewColour(int i);
// How far apart two of them look (CIELAB Delta-E 76; about 10 or more reads as another colour).
float viewColourDistance(int a, int b);
// Colour of the i-th overlaid run: a palette of its own, apart from the current run's series.
unsigned overlayColour(int i);
