// Forwarding header: StepStats moved to train/step_stats.h (the trainer fills it, so train must
// not import metrics). Only views/views.h still includes this path; delete the file once it
// includes train/step_stats.h.
#pragma once
#include "train/step_stats.h"
