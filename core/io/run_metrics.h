// A stored run's final metrics as the tuning search, the CLI's sweep and the tuning view read them: one
// mapping from RunRecord to TuneMetric, so a sweep ranks in the window what it ranks in the terminal.
#pragma once

#include "config/sweep.h"
#include "io/run_store.h"

namespace rl {

// Run R's value of M: NaN where the run did not measure it (no validation, no steps). Active parameters
// follow from the config, not the store (infer's eval_active_params): NaN here, the caller fills them.
double run_record_metric(const RunRecord& r, TuneMetric m);

}  // namespace rl
