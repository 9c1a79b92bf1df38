// The training loop that `train`, `train --resume` and `sweep` share (cli_train.cpp): a run's files in
// its folder, its row in the run store, and where it stops.
#pragma once
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "cli.h"
#include "io/run_recorder.h"
#include "train/trainer.h"

namespace cli {

// What the training loop leaves for the summary.
struct TrainOutcome {
    rl::StepStats last;
    std::vector<rl::StepStats> tail;  // the final k_routing_summary_steps steps, oldest first
    float val = NAN;              // validation loss at the last eval
    double train_tokens = 0, seconds = 0;
};

// The run's row in the workspace's run store (docs/architecture.md §11), kept by the recorder the
// window uses too (io/run_recorder.h): begun with the run, its curve stored every few steps, each
// checkpoint recorded, its status set at the end. A store that cannot be opened or written is a
// warning: the run itself and its files in --out go on.
struct StoreLink {
    rl::RunRecorder rec;
    std::string path;  // the store's file, named in out/run_store so --resume continues the row
    void said() {      // one warning when recording stopped, then the run goes on without the store
        if (rec.error.empty()) return;
        std::fprintf(stderr, "warning: %s\n", rec.error.c_str());
        rec.error.clear();
    }
    void add(const rl::StepStats& st) { rl::recorder_add(rec, st); }
    // Each token's experts on (up to 8192 tokens of) the validation text: the cluster cost's node counts.
    void token_sets(const rl::TrainState& s) {
        if (!rec.store || !rec.id || s.cfg.model.moe.kind == rl::FfnRouting::dense) return;
        const std::vector<int>& val = s.data->val.ids;
        const std::vector<int> ids(val.begin(), val.begin() + (std::ptrdiff_t)std::min<size_t>(val.size(), 8192));
        if (ids.size() >= 2) rl::recorder_token_sets(rec, routing_measure(s.model, ids, s.cfg.model.seq_len, 8192).sets), said();
    }
    void flush() { rl::recorder_flush(rec), said(); }
    void checkpoint(const std::string& file, int step) { rl::recorder_checkpoint(rec, std::filesystem::absolute(file).string(), step), said(); }
    void end(rl::RunStatus status, const std::string& message, float val) { rl::recorder_end(rec, status, message, val), said(); }
};

// --workspace DIR (default: the per-user workspace the window uses) -> its run store, opened.
StoreLink store_open(const Args& a);
// A new row for the run, and out/run_store naming it, so --resume continues the same row.
void store_begin(StoreLink& l, const rl::TrainState& s, const std::string& out, const rl::RunStart& start);
// One run into `out`: config.json, metrics.csv (resumed: its rows up to the resumed step kept),
// the steps, the final files; the store row follows it. stop_at > 0 (a sweep's rung): the run pauses
// there, evaluated and saved, its row interrupted ("paused at step N"), and `train --resume` goes on.
int run_training(rl::TrainState& s, const std::string& out, StoreLink& link, double setup_s, bool quiet, TrainOutcome& o,
                 int stop_at);

}  // namespace cli
