// routelab-cli's shared parts: the parsed command line, the messages and exit codes, the config
// flags, and one entry point per command (each group of commands in a file of its own:
// cli_train.cpp train/resume/sweep, cli_runs.cpp runs, cli_bench.cpp bench and its PyTorch peer,
// cli_inspect.cpp presets/params/lesson/generate/probe/export, cli_model.cpp the same on a Hugging Face
// model folder; cli_main.cpp holds the table).
#pragma once
#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "infer/interventions.h"
#include "io/checkpoint.h"
#include "io/hf_model.h"
#include "io/run_store.h"
#include "util/status.h"

namespace cli {

struct Args {
    std::string cmd;
    std::map<std::string, std::string> opt;
    std::vector<std::string> sets;
    std::vector<std::string> domains;  // analyse: each --domain NAME=FILE
    std::vector<std::string> flags;
    std::vector<std::string> pos;  // positional words (runs: the subcommand and its id)
    bool has(const std::string& k) const { return opt.count(k) > 0; }
    bool flag(const std::string& k) const { return std::find(flags.begin(), flags.end(), k) != flags.end(); }
};

// Exit codes: 0 ok, 1 a user error (message on stderr), 2 bad usage (with every command's usage).
int fail(const std::string& msg);
int usage(const std::string& msg);
std::string usage_text();  // every command's usage, from the command table (cli_main.cpp)

bool parse_int(const std::string& s, long long lo, long long hi, long long& out);
bool parse_float(const std::string& s, double& out);
// --preset / --config plus --set overrides (and --device); validated once, here.
rl::Result<rl::Config> load_config(const Args& a);
// vocab_size the way training will have it: from the tokenizer built on the configured corpus.
rl::Result<int> resolve_vocab(const rl::Config& cfg);
// --steps, --batch, --seed and --corpus onto the loaded config, then the config check again.
// 0, or the exit code of the bad value.
int apply_train_flags(const Args& a, rl::Config& cfg);
// --workspace DIR, else the per-user workspace the window uses (io/run_recorder.h).
std::string workspace_of(const Args& a);
// Writes `text` to dir/name whole or not at all (the old file stays); false after the message.
bool write_file(const std::string& dir, const std::string& name, const std::string& text, const char* hint);
std::string fmt_eta(double s);
double seconds_since(std::chrono::steady_clock::time_point t);

// What probe and generate run on: a checkpoint (--checkpoint F) or a Hugging Face model folder
// (--model DIR, with its own tokenizer); cli_model.cpp.
struct OpenedModel {
    std::unique_ptr<rl::LoadedCheckpoint> ck;
    std::unique_ptr<rl::HfModel> hf;
    const rl::Model& model() const;
    const rl::Tokenizer& tok() const;
    int step() const;         // training steps behind the weights (0 for a model folder)
    float attn_entropy() const;
    rl::Status intervene(const rl::Interventions& iv);  // the routing interventions onto the open model
    rl::Model& model_mut() { return ck ? ck->model : hf->model; }
};
// "1,17,255" -> ids, each in [0, V) (probe and eval --ids); false with the message in err.
bool parse_ids(const std::string& s, int V, std::vector<int>& ids, std::string& err);
// --top-k K, --renorm / --no-renorm, --mask-experts LIST, --capacity-factor C (probe and eval on a
// model): 0, or the exit code of a bad value after its message.
int interventions_from_args(const Args& a, rl::Interventions& iv);
// --expert-bias F (a routelab-cli calibrate file) and --router-weights F (a routelab-cli tune-router
// --save file) onto m: 0, or the exit code after the message.
int routing_files_from_args(const Args& a, rl::Model& m);
// Fails with a message when neither or both are given, the file does not load, or a folder has no tokenizer.
rl::Result<OpenedModel> open_model(const Args& a, const std::string& cmd);

// params' tensor table of a layout: [{"name", "shape", "count"}], and the parameter count in *total.
nlohmann::json layout_table(const rl::Layout& layout, size_t* total);

int cmd_presets(const Args& a);
int cmd_params(const Args& a);
int cmd_train(const Args& a);
int cmd_sweep(const Args& a);
int cmd_tune_bench(const Args& a);
int cmd_lesson(const Args& a);
int cmd_runs(const Args& a);
int cmd_generate(const Args& a);
int cmd_probe(const Args& a);
int cmd_probe_model(const Args& a);   // cli_model.cpp: probe --model DIR
int cmd_params_model(const Args& a);  // params --model DIR
int cmd_tokenize(const Args& a);
// Shared by eval, calibrate and tune-router (cli_eval.cpp): the model of --model / --checkpoint (a folder
// without its tokenizer when --ids gives the text), the ids of --ids or --text-file (0, or the exit code
// after the message), and G written whole or not at all (false after the message).
rl::Result<OpenedModel> eval_open(const Args& a, const std::string& cmd);
int eval_ids(const Args& a, const OpenedModel& om, std::vector<int>& ids);
bool write_json(const std::string& path, const nlohmann::json& j, const char* cmd = "eval");
int cmd_eval(const Args& a);          // cli_eval.cpp
int cmd_calibrate(const Args& a);     // cli_eval.cpp
int cmd_tune_router(const Args& a);   // cli_tune.cpp
int cmd_analyse(const Args& a);       // cli_analyse.cpp
int cmd_cluster(const Args& a);       // cli_cluster.cpp
// A model's routing over a text, window by window (cli_cluster.cpp): for each sparse layer (`layers`),
// each full window's expert shares (the text's one window when it is shorter than a context), the pairs
// a full window holds, and the first max_tokens tokens' expert sets.
struct RoutingMeasure {
    std::vector<int> layers;                               // the sparse layers' indices
    std::vector<std::vector<std::vector<double>>> batches; // [sparse layer][window][E]
    double pairs = 0;                                      // (token, expert) pairs in a full window
    std::vector<rl::TokenSets> sets;                       // [sparse layer]
};
RoutingMeasure routing_measure(const rl::Model& m, const std::vector<int>& ids, int context, int max_tokens);
int cmd_bench(const Args& a);
int cmd_export(const Args& a);

}  // namespace cli
