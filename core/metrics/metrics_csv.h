// metrics.csv, the per-step record a CLI run writes: the step's loss parts, then five routing
// columns per layer. The header and every row come from one column list.
#pragma once
#include <optional>
#include <string>

#include "train/step_stats.h"

namespace rl {

// "step,loss,val_loss,...,window" then head_cv_l<l>,load_cv_l<l>,dropped_l<l>,router_entropy_l<l>,
// dead_l<l> for each of the n_layers (at most k_stats_layers) layers; ends with '\n'.
std::string metrics_csv_header(int n_layers);
// One row for s; val_loss is left empty on steps without a validation pass. Ends with '\n'.
std::string metrics_csv_row(const StepStats& s, std::optional<float> val_loss);

}  // namespace rl
