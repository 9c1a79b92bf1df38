// One experiment of the window's experiments view (issue 24) on a model nothing is training: the
// unchanged model next to a routing intervention on the same held-out text, perplexity against
// active compute over top-k, a bias calibration, or what the experts specialise in on named domains.
// The window's session thread runs it (it owns the model); the CLI runs the same core functions
// (eval, calibrate, analyse). Core only: the request and result are plain data.
#pragma once
#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "config/config.h"
#include "infer/calibrate.h"
#include "infer/eval.h"
#include "infer/interventions.h"
#include "metrics/domain_analysis.h"
#include "model/model.h"
#include "train/tokenizer.h"

namespace rl {

enum class ExperimentKind { compare, sweep, calibrate, analyse };
const char* experiment_kind_name(ExperimentKind k);

struct ExperimentRequest {
    ExperimentKind kind = ExperimentKind::compare;
    int id = 0;                        // the caller's number for it (the result carries it back)
    Interventions iv;                  // compare and sweep (sweep sets the top-k itself)
    bool bias_off = false;             // the selection biases held at 0 (a model with expert_bias)
    std::vector<int> ks;               // sweep: the top-k values (empty: 1, 2, 4, ... up to E, and the model's)
    std::string text_file;             // held-out text ("" = the run's validation text)
    int tokens = 4096;                 // of the held-out text, or per domain for analyse
    int context = 512;                 // tokens per forward (clamped to the model's seq_len)
    std::vector<std::string> domains;  // analyse: "NAME=FILE" ("" = the embedded corpus's domains)
};

struct ExperimentResult {
    ExperimentKind kind = ExperimentKind::compare;
    int id = 0;
    std::string error;                 // one line: why it did not run ("" = it ran)
    std::string what;                  // the request in words ("top-k 1 vs the model's top-k 8")
    bool done = false;                 // false in a progress update
    bool cancelled = false;
    double progress = 0;               // 0..1
    int64_t text_tokens = 0;           // held-out tokens used
    EvalReport base, changed;          // compare
    Interventions applied;             // compare: the request's, its least-used experts named (mask "l:e")
    int model_top_k = 0;               // the model's own top-k
    std::vector<int> ks;               // sweep: the top-k of each point
    std::vector<EvalReport> sweep;
    CalibrationReport calibration;     // calibrate: its passes so far
    Analysis analysis;                 // analyse
};

// What an experiment reuses between requests: the unchanged model's report on the last text.
struct ExperimentCache {
    std::string key;                   // text, tokens, context and biases it was measured with
    EvalReport base;
};

// The held-out ids: the file's text through tok (at most `tokens`), or the first `tokens` of val.
Result<std::vector<int>> experiment_text(const Tokenizer& tok, const std::vector<int>& val, const std::string& file,
                                         int tokens);

// Runs r on m (cfg: the run's config; m.cfg is put back, and the biases too unless r calibrates, which
// leaves the kept biases in m). progress: partial results (a calibration's passes, a sweep's points),
// from this thread; cancel: checked between windows.
ExperimentResult experiment_run(Model& m, const Config& cfg, const Tokenizer& tok, const std::vector<int>& val,
                                const ExperimentRequest& r, ExperimentCache& cache,
                                const std::function<void(const ExperimentResult&)>& progress = {},
                                const std::atomic<bool>* cancel = nullptr);

// The config and selection biases of an intervention, in place for as long as it lives (the window's
// probe and an experiment's forwards), then m's own again.
class RoutingOverride {
public:
    // Fails (a message, m untouched) when m cannot take iv.
    static Result<std::unique_ptr<RoutingOverride>> make(Model& m, const Config& cfg, const Interventions& iv,
                                                         bool bias_off);
    // The message make would fail with (ok when it would not); applied: the config make would put in m.
    static Status check(const Model& m, const Config& cfg, const Interventions& iv, bool bias_off,
                        Config* applied = nullptr);
    ~RoutingOverride();
    RoutingOverride(const RoutingOverride&) = delete;
    RoutingOverride& operator=(const RoutingOverride&) = delete;

private:
    explicit RoutingOverride(Model& m) : m_(m), kept_(m.cfg) {}
    Model& m_;
    ModelConfig kept_;
    std::vector<std::vector<float>> bias_;  // (L)(E) the biases held at 0, to put back
};

}  // namespace rl
