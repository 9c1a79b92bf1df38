// routelab-cli on a Hugging Face model folder (--model DIR, docs/hf-models.md): probe's scripted form
// (--ids ... --json F: every position's logits and each MoE layer's experts and weights), params, and
// tokenize (a model's tokenizer.json or tokenizer.model on a text file).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <chrono>
#include <fstream>
#include <sstream>
#include <cstdio>
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli.h"
#include "io/router_weights.h"
#include "infer/calibrate.h"
#include "io/hf_model.h"
#include "tensor/gemm_bf16.h"
#include "train/hf_tokenizer.h"
#include "model/model.h"
#include "util/atomic_file.h"

using namespace rl;

namespace cli {

namespace {

// Shortest text that reads back as the same float (std::to_chars): [T][V] logits stay a readable size.
void put_float(std::string& out, float v) {
    if (!std::isfinite(v)) {  // JSON has no NaN or infinity
        out += "null";
        return;
    }
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

// Each sparse layer's experts and combine weights per token, heaviest first: the experts the token
// reached; those a capacity dropped (--capacity-factor) are listed apart, as "dropped", in layers
// where any were.
void moe_layers_json(std::string& out, const Model& m, const Activations& a, int T) {
    out += "\"moe_layers\":[";
    bool first = true;
    const int K = m.cfg.moe.top_k, E = m.cfg.moe.n_experts;
    for (int l = 0; l < m.cfg.n_layers; l++) {
        if (!m.w.layers[l].moe.router) continue;
        const MoeSaved& sv = a.layers[l].ms;
        std::vector<char> reached((size_t)T * E, 0);  // (T,E) after capacity
        for (int i = 0; i < sv.n_assign[0]; i++) reached[(size_t)sv.a_token[i] * E + sv.a_expert[i]] = 1;
        std::string ex = "[", wt = "[", dr = "[";
        bool any_dropped = false;
        for (int t = 0; t < T; t++) {
            std::vector<int> order(K);
            for (int k = 0; k < K; k++) order[k] = k;
            const float* cw = sv.cw + (size_t)t * K;
            std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return cw[x] > cw[y]; });
            std::string te, tw, td;
            for (int k = 0; k < K; k++) {
                const int e = sv.choice[(size_t)t * K + order[k]];
                if (e < 0 || !reached[(size_t)t * E + e]) {
                    td += (td.empty() ? "" : ",") + std::to_string(e);
                    continue;
                }
                te += (te.empty() ? "" : ",") + std::to_string(e);
                if (!tw.empty()) tw += ",";
                put_float(tw, cw[order[k]]);
            }
            any_dropped |= !td.empty();
            ex += (t ? ",[" : "[") + te + "]";
            wt += (t ? ",[" : "[") + tw + "]";
            dr += (t ? ",[" : "[") + td + "]";
        }
        out += std::string(first ? "" : ",") + "{\"layer\":" + std::to_string(l) + ",\"experts\":" + ex +
               "],\"weights\":" + wt + "]" + (any_dropped ? ",\"dropped\":" + dr + "]" : "") + "}";
        first = false;
    }
    out += "]";
}

}  // namespace

// "1,17,255" -> ids, each in [0, V).
bool parse_ids(const std::string& s, int V, std::vector<int>& ids, std::string& err) {
    size_t i = 0;
    while (i <= s.size()) {
        const size_t j = std::min(s.find(',', i), s.size());
        long long v;
        if (!parse_int(s.substr(i, j - i), 0, (long long)V - 1, v)) {
            err = "--ids must be comma-separated token ids in 0.." + std::to_string(V - 1) + ", got '" + s.substr(i, j - i) + "'";
            return false;
        }
        ids.push_back((int)v);
        i = j + 1;
    }
    return true;
}

const Model& OpenedModel::model() const { return ck ? ck->model : hf->model; }

// The model keeps a copy of its config's model part: both change together.
static Status intervene(Config& cfg, Model& m, const Interventions& iv) {
    if (Status s = interventions_apply(cfg, iv); !s) return s;
    const bool biased = m.cfg.moe.expert_bias;  // biases given to m (--expert-bias) stay
    m.cfg = cfg.model;
    m.cfg.moe.expert_bias = biased;
    return Status::ok();
}

Status OpenedModel::intervene(const Interventions& iv) {
    return ck ? cli::intervene(ck->cfg, ck->model, iv) : cli::intervene(hf->cfg, hf->model, iv);
}

int routing_files_from_args(const Args& a, Model& m) {
    if (a.has("expert-bias") && a.flag("no-expert-bias")) return usage("--expert-bias F and --no-expert-bias: pass one of them");
    if (a.has("router-weights"))
        if (Status s = router_weights_apply(m, a.opt.at("router-weights")); !s) return fail(s.msg);
    if (a.has("expert-bias")) {
        std::ifstream in(a.opt.at("expert-bias"));
        if (!in) return fail("cannot read --expert-bias '" + a.opt.at("expert-bias") + "'");
        const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
        if (j.is_discarded()) return fail("--expert-bias '" + a.opt.at("expert-bias") + "' is not JSON; write it with routelab-cli calibrate");
        if (Status s = calibration_apply(m, j); !s) return fail(s.msg);
    }
    // --no-expert-bias: routing without the selection biases (the aux-loss-free rule's, or calibrate's);
    // a key plus 0 is the key, so holding them at 0 is the router without them.
    if (a.flag("no-expert-bias")) {
        if (!m.cfg.moe.expert_bias) return fail("--no-expert-bias: this model has no selection biases (train with "
                                                "model.moe.expert_bias, or give it calibrate's with --expert-bias F)");
        for (LayerWeights& lw : m.w.layers)
            if (lw.moe.bias) std::fill_n(lw.moe.bias, m.cfg.moe.n_experts, 0.f);
    }
    return 0;
}

int interventions_from_args(const Args& a, Interventions& iv) {
    if (a.has("top-k")) {
        long long k;
        if (!parse_int(a.opt.at("top-k"), 1, 1024, k)) return usage("--top-k must be an integer in 1..n_experts");
        iv.top_k = (int)k;
    }
    if (a.flag("renorm") && a.flag("no-renorm")) return usage("--renorm and --no-renorm: pass one of them");
    if (a.flag("renorm")) iv.renorm = 1;
    if (a.flag("no-renorm")) iv.renorm = 0;
    if (a.has("mask-experts")) iv.mask = a.opt.at("mask-experts");
    if (a.has("mask-least-used")) {
        long long k;
        if (!parse_int(a.opt.at("mask-least-used"), 1, 1024, k)) return usage("--mask-least-used must be an integer in 1..n_experts-top_k");
        iv.mask_least_used = (int)k;
    }
    if (a.has("capacity-factor")) {
        double cf;
        if (!parse_float(a.opt.at("capacity-factor"), cf) || !(cf > 0 && cf <= 64))
            return usage("--capacity-factor must be a number in (0, 64], such as 1.25");
        iv.capacity_factor = (float)cf;
    }
    return 0;
}
const Tokenizer& OpenedModel::tok() const { return ck ? ck->tok : *hf->tok; }
int OpenedModel::step() const { return ck ? ck->info.step : 0; }
float OpenedModel::attn_entropy() const { return ck ? ck->info.attn_entropy : 0.f; }

Result<OpenedModel> open_model(const Args& a, const std::string& cmd) {
    if (a.has("checkpoint") == a.has("model")) return Status::error(cmd + " needs --checkpoint F or --model DIR (one of them)");
    OpenedModel o;
    if (a.has("checkpoint")) {
        auto ck = checkpoint_load(a.opt.at("checkpoint"));
        if (!ck) return ck.status;
        o.ck = std::move(*ck);
        return o;
    }
    auto hf = hf_model_open(a.opt.at("model"));
    if (!hf) return hf.status;
    if (!(*hf)->tok)
        return Status::error("'" + a.opt.at("model") + "': no tokenizer.json or tokenizer.model in the folder; download it "
                             "too (or pass token ids: probe --model DIR --ids ... --json F)");
    o.hf = std::move(*hf);
    return o;
}

int cmd_probe_model(const Args& a) {
    if (!a.has("ids")) return usage("probe --model DIR needs --ids 1,17,255,... (token ids)");
    if (!a.has("json")) return usage("probe --model DIR --ids ... needs --json F (the file to write)");
    const auto t0 = std::chrono::steady_clock::now();
    auto hf = hf_model_open(a.opt.at("model"), /*tokenizer=*/false);
    if (!hf) return fail(hf.status.msg);
    const double open_s = seconds_since(t0);
    Interventions iv;
    if (int rc = interventions_from_args(a, iv)) return rc;
    if (Status s = intervene((*hf)->cfg, (*hf)->model, iv); !s) return fail("probe: " + s.msg);
    if (int rc = routing_files_from_args(a, (*hf)->model)) return rc;
    const Model& m = (*hf)->model;
    std::vector<int> ids;
    std::string err;
    if (!parse_ids(a.opt.at("ids"), m.cfg.vocab_size, ids, err)) return usage(err);
    const int T = (int)ids.size(), V = m.cfg.vocab_size;
    if (T > m.cfg.seq_len)
        return fail("--ids has " + std::to_string(T) + " tokens; this model's context in RouteLab is " +
                    std::to_string(m.cfg.seq_len) + ": pass fewer");
    if (Status s = hf_probe_fits(**hf, T); !s) return fail(s.msg);
    Activations act;
    activations_create(act, m.cfg, 1, T);
    // --runs N: the forward N times. The first also brings every weight page into this process (on a
    // VM that shadows page tables, a first touch per 4 KiB page of the mapped experts costs more than
    // the product: granite's cold forward took 2.4 s against ~1 s after), so later runs' median is the
    // steady speed a window that keeps the model open sees.
    const int runs = a.has("runs") ? std::max(1, std::atoi(a.opt.at("runs").c_str())) : 1;
    std::vector<double> times;
    for (int r = 0; r < runs; r++) {
        const auto t1 = std::chrono::steady_clock::now();
        model_forward(m, act, ids.data(), nullptr, 1, T);
        times.push_back(seconds_since(t1));
    }
    const double forward_s = times[0];
    std::vector<double> later(times.begin() + 1, times.end());
    std::sort(later.begin(), later.end());
    char steady[96] = "";
    if (!later.empty())
        std::snprintf(steady, sizeof steady, ", then %.3f s (median of %zu more)", later[later.size() / 2], later.size());
    std::string out = "{\"ids\":[";
    for (int t = 0; t < T; t++) out += (t ? "," : "") + std::to_string(ids[t]);
    out += "],\"logits\":[";
    for (int t = 0; t < T; t++) {
        out += t ? ",[" : "[";
        for (int v = 0; v < V; v++) {
            if (v) out += ",";
            put_float(out, act.logits[(size_t)t * V + v]);
        }
        out += "]";
    }
    out += "],";
    moe_layers_json(out, m, act, T);
    out += "}\n";
    const std::string path = a.opt.at("json");
    Status s = atomic_file_write(path, [&](std::FILE* f) {
        std::fwrite(out.data(), 1, out.size(), f);
        return Status::ok();
    });
    if (!s) return fail("probe: " + s.msg);
    const std::string experts = (*hf)->mapped_elements ? std::string(", matrices ") + bf16_kernel_name(gemm_bf16_kernel()) +
                                                             ((*hf)->packed ? ", packed at open" : "") : "";
    const std::string routing = iv.any() ? "; routing " + iv.describe() : "";
    std::fprintf(stderr, "probe: %d tokens through %s (%s%s%s): opened in %.2f s, forward %.3f s%s -> %s\n", T,
                 (*hf)->info.architecture.c_str(), (*hf)->info.dtype.c_str(), experts.c_str(), routing.c_str(), open_s,
                 forward_s, steady, path.c_str());
    return 0;
}

// tokenize --model DIR | --tokenizer FILE --text-file F [--no-special] --json G: `ids` of the whole
// file and `lines`, the ids of each line (split on \n), special tokens added unless --no-special.
int cmd_tokenize(const Args& a) {
    if (a.has("model") == a.has("tokenizer")) return usage("tokenize needs --model DIR or --tokenizer FILE (one of them)");
    if (!a.has("text-file") || !a.has("json")) return usage("tokenize needs --text-file F and --json G");
    std::string path = a.has("tokenizer") ? a.opt.at("tokenizer") : "";
    if (a.has("model")) {
        HfModelInfo info;
        if (auto cfg = hf_config_read(a.opt.at("model"), &info); !cfg) return fail(cfg.status.msg);
        if (info.tokenizer_path.empty())
            return fail("'" + a.opt.at("model") + "': no tokenizer.json or tokenizer.model in the folder; download it too");
        path = info.tokenizer_path;
    }
    auto tok = HfTokenizer::load(path);
    if (!tok) return fail(tok.status.msg);
    std::ifstream in(a.opt.at("text-file"), std::ios::binary);
    if (!in) return fail("tokenize: cannot read --text-file '" + a.opt.at("text-file") + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    const bool special = !a.flag("no-special");
    nlohmann::json j;
    j["ids"] = tok->encode(text, special);
    j["lines"] = nlohmann::json::array();
    for (size_t i = 0;;) {
        const size_t n = text.find('\n', i);
        j["lines"].push_back(tok->encode(std::string_view(text).substr(i, n == std::string::npos ? n : n - i), special));
        if (n == std::string::npos) break;
        i = n + 1;
    }
    Status s = atomic_file_write(a.opt.at("json"), [&](std::FILE* f) {
        const std::string out = j.dump() + "\n";
        std::fwrite(out.data(), 1, out.size(), f);
        return Status::ok();
    });
    if (!s) return fail("tokenize: " + s.msg);
    std::fprintf(stderr, "tokenize: %zu tokens, %zu lines -> %s\n", j["ids"].size(), j["lines"].size(),
                 a.opt.at("json").c_str());
    return 0;
}

int cmd_params_model(const Args& a) {
    HfModelInfo info;
    auto cfg = hf_config_read(a.opt.at("model"), &info);
    if (!cfg) return fail(cfg.status.msg);
    // A BF16 checkpoint's matrices stay BF16 when opened (hf_model_open); config.json says the dtype.
    const bool bf16 = info.dtype == "BF16";
    const double open_bytes =
        hf_model_bytes(cfg->model, 256, bf16 ? hf_held_elements(cfg->model) : 0, bf16 && cfg->model.tie_embeddings);
    Layout L = model_param_layout(cfg->model);
    size_t total = 0;
    const nlohmann::json j = layout_table(L, &total);
    if (a.flag("json")) {
        std::cout << nlohmann::json{{"tensors", j}, {"vocab_size", cfg->model.vocab_size}, {"total", total},
                                    {"config", nlohmann::json::parse(config_to_json(*cfg))},
                                    {"open_bytes", open_bytes}}
                         .dump(2)
                  << "\n";
        return 0;
    }
    std::printf("%s: %zu parameters; opening it takes about %.1f GiB\n", cfg->name.c_str(), total,
                open_bytes / (1024.0 * 1024 * 1024));
    return 0;
}

}  // namespace cli
