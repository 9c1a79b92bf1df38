#include "views.h"

namespace {

// Each entry hands its view the run, that view's own state and the out-box.
const ViewEntry k_views[] = {
    {"heads", [](const RunData& run, ViewStates& s, ViewOutbox& out) { drawHeadsView(run, s.heads, out); return false; },
     Arrival::Probe},
    {"experts", [](const RunData& run, ViewStates& s, ViewOutbox& out) { drawExpertsView(run, s.layer, out); return false; },
     Arrival::Stats | Arrival::Probe | Arrival::Specialization | Arrival::Experiment},
    {"routing",
     [](const RunData& run, ViewStates& s, ViewOutbox& out) {
         drawRoutingView(run, s.routing, s.layer, out);
         return s.routing.animating;  // the diagram's replay
     },
     Arrival::Probe},
    {"attention", [](const RunData& run, ViewStates& s, ViewOutbox& out) { drawAttentionView(run, s.attention, s.layer, out); return false; },
     Arrival::Probe},
    {"curves", [](const RunData& run, ViewStates& s, ViewOutbox& out) { drawCurvesView(run, s.curves, s.layer, out); return false; },
     Arrival::Stats | Arrival::Overlays},
    {"speedup", [](const RunData& run, ViewStates&, ViewOutbox& out) { drawSpeedupView(run, out); return false; }, Arrival::Cost},
    {"generate", [](const RunData& run, ViewStates& s, ViewOutbox& out) { drawGenerateView(run, s.generate, s.layer, out); return false; },
     Arrival::Generation},
    {"tuning", [](const RunData& run, ViewStates& s, ViewOutbox& out) { return drawTuningView(run, s.tuning, out); },
     Arrival::Runs | Arrival::Overlays},
    {"cluster", [](const RunData& run, ViewStates& s, ViewOutbox& out) { drawClusterView(run, s.cluster, s.layer, out); return false; },
     Arrival::Stats},
    {"experiments", [](const RunData& run, ViewStates& s, ViewOutbox& out) { drawExperimentsView(run, s.experiments, out); return false; },
     Arrival::Experiment | Arrival::Probe},
};

}  // namespace

std::span<const ViewEntry> viewTable() { return k_views; }
