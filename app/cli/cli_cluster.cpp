// routelab-cli cluster: what a measured routing would cost on a cluster of expert-parallel GPUs
// (issue 25; metrics/cluster_cost.h, docs/cluster-cost.md):
//   cluster --run ID [--steps N] | --loads F | --model DIR --text-file F | --checkpoint F --text-file F
//           --ep N --gpus-per-node G [--capacity-factor C] [--pad-to-capacity] [--tokens-per-rank T]
//           [--hidden H] [--top-k K] [--expert-width F] [--dtype bf16|fp8|fp32] [--placement contiguous|balanced]
//           [--edp D] [--nvlink GBPS] [--rdma GBPS] [--tokens N] [--context N] --json OUT
// --loads F: a JSON list, per sparse layer, of each expert's share of the routed assignments (counts
// are normalised). With a model and a text, the loads are measured window by window (each window a
// batch: the noise split) and each token's experts kept for the node counts. --run ID: the loads a
// stored run kept per step (its last steps the batches) and the token sets stored at its end.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli.h"
#include "infer/eval.h"
#include "io/run_recorder.h"
#include "metrics/cluster_cost.h"
#include "metrics/routing_report.h"

using namespace rl;
using json = nlohmann::json;

namespace cli {

RoutingMeasure routing_measure(const Model& m, const std::vector<int>& ids, int context, int max_tokens) {
    const ModelConfig& c = m.cfg;
    const int E = c.moe.n_experts, K = c.moe.top_k;
    RoutingMeasure r;
    for (int l = 0; l < c.n_layers; l++)
        if (m.w.layers[l].moe.router) r.layers.push_back(l), r.sets.push_back({l, K, {}});
    std::vector<std::vector<std::vector<double>>> partial(r.layers.size());  // a window shorter than the context
    r.batches.resize(r.layers.size());
    Activations a;
    activations_create(a, c, 1, context);
    std::vector<std::vector<std::pair<float, int>>> te;
    eval_windows(m, a, ids, context, nullptr, [&](int T) {
        for (size_t i = 0; i < r.layers.size(); i++) {
            const MoeSaved& sv = a.layers[r.layers[i]].ms;
            std::vector<double> share(E);
            double n = 0;
            for (int e = 0; e < E; e++) n += share[e] = sv.offset[e + 1] - sv.offset[e];
            for (double& v : share) v /= std::max(n, 1.0);
            (T == context ? r.batches[i] : partial[i]).push_back(share);
            if (T == context || r.pairs == 0) r.pairs = n;
            routing_token_experts(a.layers[r.layers[i]], T, te);
            std::vector<int16_t>& out = r.sets[i].experts;
            for (const auto& row : te) {
                if ((int)(out.size() / K) >= max_tokens) break;
                for (int j = 0; j < K; j++) out.push_back(j < (int)row.size() ? (int16_t)row[j].second : (int16_t)-1);
            }
        }
    });
    for (size_t i = 0; i < r.layers.size(); i++)
        if (r.batches[i].empty()) r.batches[i] = std::move(partial[i]);  // a text shorter than one window
    return r;
}

namespace {

// --loads F: [[share, ...], ...] per layer (or {"layers": [[...], ...]}); each row normalised to sum 1.
Result<std::vector<LayerLoads>> loads_from_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) return Status::error("cluster: cannot read --loads '" + path + "'");
    json j;
    try {
        j = json::parse(in);
    } catch (...) {
        return Status::error("cluster: '" + path + "' is not JSON; give a list, per layer, of each expert's share");
    }
    if (j.is_object() && j.contains("layers")) j = j["layers"];
    if (!j.is_array() || j.empty()) return Status::error("cluster: '" + path + "' must be a list, per layer, of each expert's share");
    std::vector<LayerLoads> out;
    for (size_t l = 0; l < j.size(); l++) {
        if (!j[l].is_array() || j[l].empty()) return Status::error("cluster: layer " + std::to_string(l) + " of '" + path + "' is not a list of shares");
        LayerLoads ll;
        ll.layer = (int)l;
        double sum = 0;
        for (const json& v : j[l]) {
            if (!v.is_number() || v.get<double>() < 0) return Status::error("cluster: layer " + std::to_string(l) + " of '" + path + "' has a share that is not a number >= 0");
            ll.share.push_back(v.get<double>()), sum += v.get<double>();
        }
        if (sum <= 0) return Status::error("cluster: layer " + std::to_string(l) + " of '" + path + "' routes nothing");
        for (double& v : ll.share) v /= sum;
        out.push_back(std::move(ll));
    }
    return out;
}

// Each token's experts of a token set onto the layer's loads (a slot of -1, dropped at capacity, left out).
void add_token_sets(LayerLoads& ll, const TokenSets& t) {
    for (size_t token = 0; token < t.experts.size() / t.k; token++) {
        std::vector<int>& row = ll.token_experts.emplace_back();
        for (int j = 0; j < t.k; j++)
            if (int e = t.experts[token * t.k + j]; e >= 0) row.push_back(e);
    }
}

// The loads of a model on a text: per sparse layer, each full window's expert shares (a batch for the
// noise split; the text's only window when it is shorter than one) and the token sets.
Result<std::vector<LayerLoads>> loads_from_model(const Model& m, const std::vector<int>& ids, int context) {
    const RoutingMeasure r = routing_measure(m, ids, context, 8192);
    std::vector<LayerLoads> out;
    for (size_t i = 0; i < r.layers.size(); i++) {
        LayerLoads ll = cluster_loads_split(r.batches[i], r.pairs);
        ll.layer = r.layers[i];
        add_token_sets(ll, r.sets[i]);
        out.push_back(std::move(ll));
    }
    if (out.empty()) return Status::error("cluster: this model's FFN is dense: there is no routing to cost");
    return out;
}

// The loads of a stored run: its last `steps` stored steps (each a batch of B T K pairs for the noise
// split; the late steps, where the routing has settled) and the token sets stored at its end.
Result<std::vector<LayerLoads>> loads_from_run(RunStore& store, const RunRecord& run, const Config& cfg, int steps) {
    auto loads = run_store_loads(store, run.id, std::max(0, run.steps - steps + 1));
    if (!loads) return loads.status;
    const ModelConfig& m = cfg.model;
    if (m.moe.kind != FfnRouting::dense && (m.n_layers > k_stats_layers || m.moe.n_experts > k_stats_experts))
        return Status::error("cluster: run " + std::to_string(run.id) + " has " + std::to_string(m.n_layers) + " layers and " +
                             std::to_string(m.moe.n_experts) + " experts; RouteLab keeps per-step loads for up to " +
                             std::to_string(k_stats_layers) + " layers and " + std::to_string(k_stats_experts) +
                             " experts: cost its checkpoint with --checkpoint F --text-file F");
    if (loads->empty())
        return Status::error("cluster: run " + std::to_string(run.id) + " has no stored loads (runs stored before RouteLab " +
                             "kept them, or a dense model); train it again, or give --model / --loads");
    auto sets = run_store_token_sets(store, run.id);
    if (!sets) return sets.status;
    const int E = cfg.model.moe.n_experts;
    std::vector<LayerLoads> out = cluster_loads_of_steps(*loads, cluster_step_pairs(cfg), E);
    for (LayerLoads& ll : out)
        for (const TokenSets& t : *sets)
            if (t.layer == ll.layer && std::all_of(t.experts.begin(), t.experts.end(), [&](int16_t e) { return e < E; }))
                add_token_sets(ll, t);
    if (out.empty()) return Status::error("cluster: run " + std::to_string(run.id) + "'s model has no routed experts: there is no routing to cost");
    return out;
}

// The cluster flags onto s (the model's shape already in it, where there is one): 0, or the exit code.
int setup_from_args(const Args& a, ClusterSetup& s) {
    auto integer = [&](const char* k, long long lo, long long hi, int& out) {
        long long v;
        if (!a.has(k)) return true;
        if (!parse_int(a.opt.at(k), lo, hi, v)) return false;
        out = (int)v;
        return true;
    };
    if (!a.has("ep") || !a.has("gpus-per-node")) return usage("cluster needs --ep N and --gpus-per-node G");
    if (!integer("ep", 1, 4096, s.ep)) return usage("--ep must be an integer in 1..4096");
    if (!integer("gpus-per-node", 1, 64, s.gpus_per_node)) return usage("--gpus-per-node must be an integer in 1..64");
    if (!integer("tokens-per-rank", 1, 1 << 24, s.tokens_per_rank)) return usage("--tokens-per-rank must be a positive integer");
    if (!integer("hidden", 1, 1 << 20, s.hidden)) return usage("--hidden must be a positive integer");
    if (!integer("top-k", 1, 4096, s.top_k)) return usage("--top-k must be a positive integer");
    int width = (int)s.expert_width;
    if (!integer("expert-width", 1, 1 << 20, width)) return usage("--expert-width must be a positive integer");
    s.expert_width = width;
    if (!integer("edp", 1, 1 << 20, s.expert_dp)) return usage("--edp must be a positive integer");
    for (const auto& [k, field] : {std::pair<const char*, double*>{"capacity-factor", &s.capacity_factor},
                                   {"nvlink", &s.nvlink_gbps}, {"rdma", &s.rdma_gbps}}) {
        double v;
        if (!a.has(k)) continue;
        if (!parse_float(a.opt.at(k), v) || !(v > 0 && v < 1e6)) return usage(std::string("--") + k + " must be a number > 0");
        *field = v;
    }
    s.pad_to_capacity = a.flag("pad-to-capacity");
    if (s.pad_to_capacity && s.capacity_factor <= 0) return usage("--pad-to-capacity pads to a capacity: give --capacity-factor C");
    const std::string dt = a.has("dtype") ? a.opt.at("dtype") : "bf16";
    // fp8 dispatch: one byte an element and an fp32 scale per 128 (DeepEP's accounting); the combine stays bf16.
    if (dt == "bf16") s.dispatch_bytes = s.combine_bytes = 2;
    else if (dt == "fp8") s.dispatch_bytes = 1 + 4.0 / 128, s.combine_bytes = 2;
    else if (dt == "fp32") s.dispatch_bytes = s.combine_bytes = 4;
    else return usage("--dtype must be bf16, fp8 or fp32");
    const std::string pl = a.has("placement") ? a.opt.at("placement") : "contiguous";
    if (pl != "contiguous" && pl != "balanced") return usage("--placement must be contiguous or balanced");
    s.placement = pl == "balanced" ? ExpertPlacement::balanced : ExpertPlacement::contiguous;
    return 0;
}

json report_json(const ClusterReport& r, const std::vector<LayerLoads>& loads, const std::string& source) {
    const ClusterSetup& s = r.setup;
    json layers = json::array();
    for (size_t i = 0; i < r.layers.size(); i++) {
        const ClusterLayer& l = r.layers[i];
        layers.push_back({{"layer", l.layer}, {"imbalance", l.imbalance}, {"imbalance_popularity", l.imbalance_popularity},
                          {"imbalance_measured", l.imbalance_measured}, {"expert_imbalance", l.expert_imbalance},
                          {"a2a_bytes_per_rank", l.a2a_bytes_per_rank}, {"hottest_rank_bytes", l.hottest_rank_bytes},
                          {"hottest_rank_nvlink_bytes", l.nvlink_bytes_hottest}, {"hottest_rank_rdma_bytes", l.rdma_bytes_hottest},
                          {"dropped_share", l.dropped_share}, {"padded_share", l.padded_share},
                          {"nodes_per_token", l.nodes_per_token}, {"nodes_counted_on_tokens", l.nodes_from_tokens},
                          {"comm_s", l.comm_s}, {"comm_s_balanced", l.comm_s_balanced}, {"compute_s", l.compute_s},
                          {"compute_s_balanced", l.compute_s_balanced}, {"rank_share", l.rank_share},
                          // this layer's part of the total below: every sparse layer holds E / EP experts a GPU
                          {"expert_bytes_per_gpu", r.expert_bytes_per_gpu / std::max<size_t>(1, r.layers.size())},
                          {"expert_share", loads[i].share}, {"batches", loads[i].batches}});  // as measured, before any split
    }
    json inputs = {{"source", source}, {"ep", s.ep}, {"gpus_per_node", s.gpus_per_node}, {"nodes", s.nodes()},
                   {"tokens_per_rank", s.tokens_per_rank}, {"hidden", s.hidden}, {"top_k", s.top_k},
                   {"expert_width", s.expert_width}, {"n_experts", r.n_experts}, {"dispatch_bytes", s.dispatch_bytes},
                   {"combine_bytes", s.combine_bytes}, {"capacity_factor", s.capacity_factor},
                   {"pad_to_capacity", s.pad_to_capacity},
                   {"placement", s.placement == ExpertPlacement::balanced ? "balanced" : "contiguous"},
                   {"nvlink_gbps", s.nvlink_gbps}, {"rdma_gbps", s.rdma_gbps}, {"peak_tflops", s.peak_tflops},
                   {"gemm_efficiency", s.gemm_efficiency}, {"edp", s.expert_dp}, {"split_experts", r.split}};
    return {{"inputs", inputs}, {"layers", layers}, {"expert_params_per_gpu", r.expert_params_per_gpu},
            {"expert_bytes_per_gpu", r.expert_bytes_per_gpu}, {"time_balanced_s", r.time_balanced_s},
            {"time_measured_s", r.time_measured_s}, {"assumptions", r.assumptions}};
}

void print_table(const ClusterReport& r) {
    char cf[32] = "none (dropless)";
    if (r.setup.capacity_factor > 0) std::snprintf(cf, sizeof cf, "%g%s", r.setup.capacity_factor, r.setup.pad_to_capacity ? ", padded" : "");
    std::printf("EP %d on %d node(s) of %d GPUs, %d tokens per rank, top-%d, hidden %d, capacity factor %s\n", r.setup.ep,
                r.setup.nodes(), r.setup.gpus_per_node, r.setup.tokens_per_rank, r.setup.top_k, r.setup.hidden, cf);
    std::printf("layer  imbalance (popularity, small batch)  E*max p  MB/rank  hottest MB  dropped  nodes/token  ms balanced -> measured\n");
    for (const ClusterLayer& l : r.layers)
        std::printf("%5d  %9.3f (%.3f, %.3f)  %14.2f  %7.2f  %10.2f  %6.2f%%  %11.2f  %.3f -> %.3f\n", l.layer, l.imbalance,
                    l.imbalance_popularity, l.imbalance_measured, l.expert_imbalance, l.a2a_bytes_per_rank / 1e6,
                    l.hottest_rank_bytes / 1e6, 100 * l.dropped_share, l.nodes_per_token,
                    1e3 * (l.comm_s_balanced + l.compute_s_balanced), 1e3 * (l.comm_s + l.compute_s));
    if (r.setup.expert_width > 0)
        std::printf("expert memory per GPU %.2f GB (%.0f parameters); a micro-batch's MoE layers %.2f ms balanced, %.2f ms as measured\n",
                    r.expert_bytes_per_gpu / 1e9, r.expert_params_per_gpu, 1e3 * r.time_balanced_s, 1e3 * r.time_measured_s);
    else
        std::printf("(give --expert-width F for the experts' compute time and memory; the times above are the all-to-all's)\n");
}

}  // namespace

namespace {

// --run ID [--steps N] [--workspace DIR]: the loads a stored run kept (the model's shape from its config).
int loads_of_run(const Args& a, ClusterSetup& s, std::vector<LayerLoads>& loads, std::string& source) {
    long long id, steps = 0;
    if (!parse_int(a.opt.at("run"), 1, 1LL << 62, id)) return usage("--run needs a run id (routelab-cli runs list shows them)");
    if (a.has("steps") && !parse_int(a.opt.at("steps"), 1, 1 << 30, steps)) return usage("--steps must be a positive integer");
    auto store = workspace_open_store(workspace_of(a));
    if (!store) return fail(store.status.msg);
    auto run = run_store_get(*store, id);
    if (!run) return fail(run.status.msg);
    auto cfg = config_from_json(run->config_json);
    if (!cfg) return fail("cluster: run " + std::to_string(id) + "'s stored config does not load: " + cfg.status.msg);
    // The late steps, where the routing has settled: the last quarter of the run, at most 200 steps.
    if (!steps) steps = (long long)cluster_late_steps((size_t)std::max(0, run->steps));
    auto l = loads_from_run(*store, *run, *cfg, (int)steps);
    if (!l) return fail(l.status.msg);
    loads = std::move(*l);
    source = "run " + std::to_string(id) + " (" + run->name + "), its last " + std::to_string(steps) + " stored steps";
    const ModelConfig& c = cfg->model;
    cluster_setup_model(s, c);
    return 0;
}

// --model DIR | --checkpoint F, with --text-file F [--tokens N] [--context N]: the loads measured on a text.
int loads_of_model(const Args& a, ClusterSetup& s, std::vector<LayerLoads>& loads, std::string& source) {
    if (!a.has("text-file")) return usage("cluster --model / --checkpoint measures the loads on a text: give --text-file F");
    auto om = eval_open(a, "cluster");
    if (!om) return fail(om.status.msg);
    std::vector<int> ids;
    if (int rc = eval_ids(a, *om, ids)) return rc;
    long long v = 8192;
    if (a.has("tokens") && !parse_int(a.opt.at("tokens"), 2, 1 << 26, v)) return usage("--tokens must be an integer >= 2");
    if ((long long)ids.size() > v) ids.resize(v);
    const ModelConfig& c = om->model().cfg;
    long long context = std::min(512, c.seq_len);
    if (a.has("context") && !parse_int(a.opt.at("context"), 2, c.seq_len, context))
        return usage("--context must be an integer in 2.." + std::to_string(c.seq_len) + " (the model's)");
    if (om->hf)
        if (Status st = hf_probe_fits(*om->hf, (int)context); !st) return fail(st.msg + " (or pass a smaller --context)");
    auto l = loads_from_model(om->model(), ids, (int)context);
    if (!l) return fail(l.status.msg);
    loads = std::move(*l);
    source = (a.has("model") ? "model " + a.opt.at("model") : "checkpoint " + a.opt.at("checkpoint")) + " on " + a.opt.at("text-file");
    cluster_setup_model(s, c);
    return 0;
}

}  // namespace

int cmd_cluster(const Args& a) {
    if (!a.has("json")) return usage("cluster needs --json OUT (the file to write)");
    if ((int)a.has("loads") + (int)a.has("run") + (int)(a.has("model") || a.has("checkpoint")) != 1)
        return usage("cluster needs one of --run ID, --loads F, or --model DIR / --checkpoint F with --text-file F");
    ClusterSetup s;
    std::vector<LayerLoads> loads;
    std::string source;
    if (a.has("loads")) {
        auto l = loads_from_file(a.opt.at("loads"));
        if (!l) return fail(l.status.msg);
        loads = std::move(*l), source = "loads " + a.opt.at("loads");
    } else if (int rc = a.has("run") ? loads_of_run(a, s, loads, source) : loads_of_model(a, s, loads, source)) {
        return rc;
    }
    if (int rc = setup_from_args(a, s)) return rc;
    auto r = cluster_cost(loads, s);
    if (!r) return fail(r.status.msg);
    print_table(*r);
    for (const std::string& note : r->assumptions) std::printf("  assumes: %s\n", note.c_str());
    return write_json(a.opt.at("json"), report_json(*r, loads, source), "cluster") ? 0 : 1;
}

}  // namespace cli
