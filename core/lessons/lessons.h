// Lessons (README "Lessons"): short guided experiments that teach MoH and MoE by letting the user try
// them. Each lesson is a text, the one or two runs that show it (each under a minute on 2 cores),
// the view and what to look at in it, and a conclusion written from the user's own numbers, never
// canned. `routelab-cli lesson NAME` runs one and prints it; the window's Lessons dock will run the
// same lesson_run() and show the same conclusion.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "config/config.h"
#include "infer/cost.h"
#include "metrics/routing_report.h"
#include "metrics/routing_summary.h"
#include "util/status.h"

namespace rl {

struct LessonRunSpec {
    std::string label;                // "no balance loss"
    std::string preset;
    std::vector<std::string> sets;    // --set overrides
    bool measure_cost = false;        // the cost report (naive / FLOP model / measured) after training
    bool measure_specialization = false;
};

struct LessonResult {
    LessonRunSpec spec;
    Config cfg;                       // as trained (vocab resolved)
    int steps = 0;
    float val_loss = 0;
    float tok_per_s = 0;              // mean of the last 50 steps
    double flops_per_token = 0;       // forward FLOP model at T
    double seconds = 0;
    RoutingSummary routing;           // the last 50 steps
    std::vector<StepStats> curve;     // every step (for the "over steps" numbers)
    CostReport cost;                  // when measure_cost
    SpecializationBaseline spec_nmi;  // when measure_specialization
};

struct Lesson {
    std::string name, title;
    std::string text;                 // what the lesson is about, a few sentences
    std::string view;                 // the window's view that shows it
    std::string look_at;              // what to look at there
    std::string spotlight;            // the region of that view the window frames ("curves.bias"; views/widgets.h Spotlight)
    std::vector<LessonRunSpec> runs;
    std::function<std::string(const std::vector<LessonResult>&)> conclude;  // from the user's numbers
};

const std::vector<Lesson>& lessons();
const Lesson* lesson_find(const std::string& name);
// Trains the lesson's runs one after another; progress(run index, step, total steps) after each step.
Result<std::vector<LessonResult>> lesson_run(const Lesson& l,
                                             const std::function<void(int, int, int)>& progress = nullptr);

}  // namespace rl
