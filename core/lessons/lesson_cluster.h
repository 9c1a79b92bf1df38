// The lesson "the cost of imbalance" (issue 25): three balancing schemes on one model, costed on one
// cluster from each run's own loads (metrics/cluster_cost.h). Its own file: it is the only lesson
// that reads the cluster model.
#pragma once
#include "lessons/lessons.h"

namespace rl {

Lesson lesson_imbalance_cost();

}  // namespace rl
