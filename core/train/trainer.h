// The trainer: owns the dataset, model, optimizer state and activations of one run, and advances
// it one step at a time. Callers (CLI, later the GUI session thread) drive the loop.
#pragma once
#include <memory>
#include <random>
#include <vector>

#include "config/config.h"
#include "model/model.h"
#include "train/corpus.h"
#include "train/memory.h"
#include "train/step_stats.h"
#include "util/cpu_load.h"
#include "util/status.h"

namespace rl {

// Threads per training step. Beside another CPU-bound process (a sweep, a browser, a second
// trainer) a step on every core waits at each of its parallel regions for a thread the OS has
// descheduled (2 threads fell to 2.2k tok/s where one thread ran 23k); on an idle machine every
// core is faster. The governor runs on the cores other processes leave free, read from /proc/stat
// less our own CPU time (cpu_load.h). Where that cannot be read it times both counts instead: an
// average time per token for 1 thread and for all of them, runs the faster, and re-measures the
// other for k_probe_steps every k_probe_every steps (4x less often while one is 1.5x ahead).
struct ThreadGovernor {
    static constexpr int k_probe_every = 32, k_probe_steps = 2;
    int max_threads = 1;            // what the arenas were sized for (thread_count() at creation)
    int current = 1;                // threads of the step in progress
    double sec_per_tok[2] = {0, 0}; // moving averages: [0] one thread, [1] max_threads (0: unmeasured)
    int since_probe = 0, probe_left = 0;
    bool use_load = true;           // false: the timing fallback only (tests; no /proc/stat)
    CpuLoad load;
    int cores = 1;                  // online CPUs
};
// Threads for the next step (and sets them for this thread's parallel regions).
int governor_begin(ThreadGovernor& g);
// Records the step's time; restores max_threads for whatever runs between steps.
void governor_end(ThreadGovernor& g, double secs, int tokens);

struct TrainState {
    Config cfg;
    std::unique_ptr<Dataset> data;
    Model model;
    Activations acts;
    std::vector<float> adam_m, adam_v;          // (params) moments
    std::vector<unsigned char> decay_mask;      // (params) 1 where weight decay applies
    std::vector<int> tokens, targets;           // (B,T)
    std::mt19937_64 rng;
    int step = 0;
    float prev_entropy = 0.f;                   // feeds the adaptive "entropy" window
    double wall_s = 0;                          // seconds spent in trainer_step so far (resumes carry it)
    std::string device_note;                    // what train.device = auto chose and why ("" otherwise), said once
    MemoryEstimate memory;                      // what trainer_create counted before allocating (train/memory.h)
    double rss_before = 0;                      // the process's resident bytes just before the model was made
    // A text file's preparation (reading, the tokenizer, encoding): its predicted peak (memory_estimate
    // before the corpus is read; 0 for the embedded corpus), the resident peak it reached, its seconds.
    double prepare_predicted = 0, prepare_peak = 0, prepare_seconds = 0;
    int inject_nan_at = 0;                      // tests: the loss of this step is made NaN (0 = never)
    ThreadGovernor threads;
};

// Validates the config, picks the device (backend/device.h), builds the dataset (tokenizer trained on it) and the model. Every user
// mistake comes back as a Status naming what to fix.
// progress: as dataset_build's, then "building the model".
Result<std::unique_ptr<TrainState>> trainer_create(const Config& cfg, const DataProgress& progress = {});
// Same, over an already built dataset (tests and benches reuse one).
Result<std::unique_ptr<TrainState>> trainer_create(const Config& cfg, std::unique_ptr<Dataset> data);
// One step. A NaN or infinite loss or gradient norm is not applied: the returned stats say which
// (non_finite), and s keeps the weights, moments and step count of the step before.
StepStats trainer_step(TrainState& s);
// "step 25: the loss is NaN" (or "the gradient norm is infinite") for a step trainer_step refused.
std::string non_finite_message(const StepStats& st);
// Mean validation cross-entropy over cfg.train.eval_batches fixed windows.
float trainer_eval(TrainState& s);

}  // namespace rl
