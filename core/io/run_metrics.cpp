#include "io/run_metrics.h"

#include <cmath>

namespace rl {

double run_record_metric(const RunRecord& r, TuneMetric m) {
    auto measured = [](float v) { return v >= 0 ? (double)v : NAN; };  // the store writes -1 for "not measured"
    switch (m) {
        case TuneMetric::val_loss: return measured(r.val_loss);
        case TuneMetric::final_loss: return r.steps > 0 ? r.final_loss : NAN;
        case TuneMetric::tok_per_s: return measured(r.tok_per_s);
        case TuneMetric::load_cv: return measured(r.load_cv);
        case TuneMetric::head_cv: return measured(r.head_cv);
        case TuneMetric::dropped: return measured(r.dropped);
        case TuneMetric::wall_s: return r.steps > 0 ? r.wall_s : NAN;
        case TuneMetric::active_params:
        case TuneMetric::count: break;
    }
    return NAN;
}

}  // namespace rl
