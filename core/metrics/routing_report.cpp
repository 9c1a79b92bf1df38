#include "metrics/routing_report.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "layers/head_router.h"
#include "layers/moe_router.h"

namespace rl {

void routing_token_experts(const LayerActs& L, int rows, std::vector<std::vector<std::pair<float, int>>>& out) {
    out.assign(rows, {});
    for (int r = 0; r < *L.ms.n_assign; r++) out[L.ms.a_token[r]].push_back({L.ms.a_w[r], L.ms.a_expert[r]});
    for (auto& v : out)
        std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
}

ProbeSnapshot probe_run(const Model& m, const Tokenizer& tok, const std::string& text, int step, bool with_attention) {
    return probe_run_ids(m, tok, tok.encode(text), step, with_attention);
}

ProbeSnapshot probe_run_ids(const Model& m, const Tokenizer& tok, std::vector<int> ids, int step, bool with_attention) {
    const ModelConfig& c = m.cfg;
    ProbeSnapshot p;
    p.step = step;
    if ((int)ids.size() > c.seq_len) ids.resize(c.seq_len);
    if (ids.empty()) ids.push_back(std::max(tok.eos_id(), 0));  // a model folder may name no end token (-1)
    const int T = (int)ids.size();
    for (int id : ids) p.tokens.push_back({id, tok.token_text(id)});
    p.n_heads = c.n_heads;
    p.n_shared_heads = c.attention.heads.kind == HeadSelection::moh ? c.attention.heads.n_shared : 0;
    p.n_experts = c.moe.kind != FfnRouting::dense ? c.moe.n_experts : 0;
    p.mh_heads = c.moe.kind == FfnRouting::mh_moe ? c.moe.n_heads : 1;
    const bool moh = c.attention.heads.kind == HeadSelection::moh;
    p.head_top_k = moh ? c.attention.heads.n_active_routed : 0;
    p.n_head_experts = moh && c.attention.heads.router == HeadRouterKind::experts ? c.attention.heads.n_experts : 0;
    p.head_paper_scaling = moh && c.attention.heads.gate_scaling == GateScaling::paper;
    p.head_kind = head_selection_name(c.attention.heads.kind);
    if (p.n_experts) {
        p.expert_kind = c.moe.kind == FfnRouting::mh_moe ? ffn_routing_name(c.moe.kind) : moe_routing_name(c.moe.routing);
        p.expert_top_k = c.moe.routing == MoeRouting::expert_choice ? 0 : c.moe.routing == MoeRouting::top1_capacity ? 1 : c.moe.top_k;
        p.n_shared_experts = c.moe.n_shared_experts;
        p.expert_score = score_function_name(c.moe.score_function);
    }
    const int S = p.n_shared_heads, R = c.n_heads - S, E = p.n_experts;
    auto rows = [](const float* base, int n, int width) {
        std::vector<std::vector<float>> out;
        for (int t = 0; t < n; t++) out.emplace_back(base + (size_t)t * width, base + (size_t)(t + 1) * width);
        return out;
    };
    Activations a;
    activations_create(a, c, 1, T);
    model_forward(m, a, ids.data(), nullptr, 1, T, {.window = model_window(c, c.seq_len, 4.f)});
    for (const LayerActs& L : a.layers) {
        ProbeLayer pl;
        if (c.attention.heads.kind != HeadSelection::all_heads) pl.head_gates = rows(L.head_gates, T, c.n_heads);
        if (moh) {
            pl.head_probs = rows(L.hr.r, T, R);
            // The query-norm rule (MoH-LLaMA3) has no shared or type router: only r and the mask.
            if (S > 0 && c.attention.heads.router == HeadRouterKind::learned)
                pl.shared_probs = rows(L.hr.ss, T, S), pl.head_type = rows(L.hr.alpha, T, 2);
        }
        if (with_attention) {
            const float* att = L.att;  // (1,H,T,T): batch 1, so head h's rows start at h*T*T
            for (int h = 0; h < c.n_heads; h++) pl.attention.emplace_back(att + (size_t)h * T * T, att + (size_t)(h + 1) * T * T);
        }
        const LayerWeights& lw = m.w.layers[&L - a.layers.data()];
        if (lw.head_bias) pl.head_bias.assign(lw.head_bias, lw.head_bias + R);
        if (E && lw.moe.router) {  // (model.moe.dense_layers: a dense layer has no routing to show)
            pl.expert_probs = rows(L.ms.probs, T * p.mh_heads, E);
            MoeDims md = model_moe_dims(c, T, false, 0, L.layer);
            if (lw.moe.bias || md.group_topk > 0) {  // the key top-k read, and the choice without the bias
                md.bias = lw.moe.bias;
                MoeDims plain = md;
                plain.bias = nullptr;
                std::vector<float> key(E);
                for (int r = 0; r < md.N; r++) {
                    const float* z = L.ms.logits + (size_t)r * E;
                    const float* s = L.ms.probs + (size_t)r * E;
                    moe_selection_key(key.data(), z, s, md);
                    pl.expert_keys.push_back(key);
                    moe_selection_key(key.data(), z, s, plain);
                    std::vector<int> idx(md.K);
                    topk_indices(idx.data(), key.data(), E, md.K);
                    pl.experts_unbiased.push_back(idx);
                }
                if (lw.moe.bias) pl.expert_bias.assign(lw.moe.bias, lw.moe.bias + E);
            }
            std::vector<std::vector<std::pair<float, int>>> te;
            routing_token_experts(L, T * p.mh_heads, te);
            for (auto& v : te) {
                pl.experts.emplace_back();
                pl.expert_weights.emplace_back();
                for (auto& [w, e] : v) pl.experts.back().push_back(e), pl.expert_weights.back().push_back(w);
            }
        }
        p.layers.push_back(std::move(pl));
    }
    // How well the model predicts the text: each next token's -log p from the logits (log-sum-exp in
    // double), and their mean's exp.
    const int V = c.vocab_size;
    double sum = 0;
    for (int t = 0; t + 1 < T; t++) {
        const float* z = a.logits + (size_t)t * V;
        const float mx = *std::max_element(z, z + V);
        double se = 0;
        for (int v = 0; v < V; v++) se += std::exp((double)z[v] - mx);
        const float nll = (float)(std::log(se) + mx - z[ids[t + 1]]);
        p.token_nll.push_back(nll);
        sum += nll;
    }
    p.perplexity = T > 1 ? std::exp(sum / (T - 1)) : 0.0;
    return p;
}

std::string probe_to_json(const ProbeSnapshot& p) {
    nlohmann::json j;
    j["step"] = p.step;
    j["n_heads"] = p.n_heads;
    j["n_shared_heads"] = p.n_shared_heads;
    j["n_experts"] = p.n_experts;
    j["sub_tokens_per_token"] = p.mh_heads;
    j["head_kind"] = p.head_kind;
    j["expert_kind"] = p.expert_kind;
    j["head_top_k"] = p.head_top_k;
    if (p.n_head_experts) j["n_head_experts"] = p.n_head_experts;
    j["expert_top_k"] = p.expert_top_k;
    for (const auto& t : p.tokens) j["tokens"].push_back({{"id", t.id}, {"text", t.text}});
    for (const auto& l : p.layers) {
        nlohmann::json jl;
        jl["head_gates"] = l.head_gates;
        jl["experts"] = l.experts;
        jl["expert_weights"] = l.expert_weights;
        jl["head_probs"] = l.head_probs;
        jl["shared_probs"] = l.shared_probs;
        jl["head_type"] = l.head_type;
        jl["expert_probs"] = l.expert_probs;
        if (!l.expert_bias.empty()) jl["expert_bias"] = l.expert_bias;
        if (!l.experts_unbiased.empty()) jl["experts_unbiased"] = l.experts_unbiased;
        if (!l.head_bias.empty()) jl["head_bias"] = l.head_bias;
        j["layers"].push_back(jl);
    }
    return j.dump(1);
}

const char* lex_class_name(int c) {
    static const char* n[] = {"punctuation", "number", "capitalised", "function word", "other"};
    return c >= 0 && c < lex_count ? n[c] : "?";
}

int lex_class_of(const std::string& s) {
    static const std::unordered_set<std::string> function_words = {
        "a", "an", "the", "and", "or", "but", "if", "of", "in", "on", "at", "to", "for", "with", "by", "from",
        "is", "are", "was", "were", "be", "it", "he", "she", "they", "we", "you", "i", "his", "her", "their",
        "its", "this", "that", "these", "those", "not", "no", "so", "as", "do", "does", "did", "have", "has",
        "had", "can", "will", "would", "there", "what", "who", "how", "when", "where", "which", "my", "your",
        "me", "him", "them", "us", "our", "up", "out", "into", "over", "than", "then", "too", "very", "all"};
    std::string w = s;
    // SentencePiece marks word starts with U+2581; drop it for classification.
    if (w.rfind("\xe2\x96\x81", 0) == 0) w = w.substr(3);
    if (w.empty()) return lex_other;
    if (std::all_of(w.begin(), w.end(), [](unsigned char ch) { return std::ispunct(ch); })) return lex_punct;
    if (std::all_of(w.begin(), w.end(), [](unsigned char ch) { return std::isdigit(ch); })) return lex_number;
    std::string lower = w;
    for (auto& ch : lower) ch = (char)std::tolower((unsigned char)ch);
    if (function_words.count(lower)) return lex_function;
    if (std::isupper((unsigned char)w[0])) return lex_capitalised;
    return lex_other;
}

double nmi(const std::vector<std::vector<double>>& counts) {
    double total = 0;
    const size_t nx = counts.size(), ny = nx ? counts[0].size() : 0;
    std::vector<double> px(nx, 0), py(ny, 0);
    for (size_t i = 0; i < nx; i++)
        for (size_t j = 0; j < ny; j++) px[i] += counts[i][j], py[j] += counts[i][j], total += counts[i][j];
    if (total <= 0) return 0;
    auto H = [&](const std::vector<double>& p) {
        double h = 0;
        for (double v : p)
            if (v > 0) h -= v / total * std::log(v / total);
        return h;
    };
    double I = 0;
    for (size_t i = 0; i < nx; i++)
        for (size_t j = 0; j < ny; j++)
            if (counts[i][j] > 0) I += counts[i][j] / total * std::log(counts[i][j] * total / (px[i] * py[j]));
    const double hm = (H(px) + H(py)) / 2;
    return hm > 0 ? I / hm : 0;
}

Specialization specialization_measure(const Model& m, const Tokenizer& tok, const TokenStream& val, int n_tokens,
                                      int B, int T, const std::function<bool(double)>& progress) {
    const ModelConfig& c = m.cfg;
    Specialization sp;
    if (c.moe.kind == FfnRouting::dense) return sp;
    if (T <= 0 || T > c.seq_len) T = c.seq_len;
    const int E = c.moe.n_experts;
    const int h = c.moe.kind == FfnRouting::mh_moe ? c.moe.n_heads : 1;
    const int batches = std::max(1, n_tokens / (B * T));
    sp.layers.assign(c.n_layers, {});
    std::vector<std::vector<std::map<int, int>>> tok_counts(c.n_layers, std::vector<std::map<int, int>>(E));
    for (auto& L : sp.layers) {
        L.by_domain.assign(E, std::vector<double>(dom_count, 0));
        L.by_lex.assign(E, std::vector<double>(lex_count, 0));
    }
    std::vector<int> lex_of(tok.vocab_size());
    for (int i = 0; i < tok.vocab_size(); i++) lex_of[i] = lex_class_of(tok.token_text(i));
    Activations a;
    activations_create(a, c, B, T);
    std::vector<int> tokens(B * T), targets(B * T);
    std::vector<uint8_t> domains(B * T);
    std::vector<std::vector<std::pair<float, int>>> te;
    for (int k = 0; k < batches; k++) {
        batch_fixed(val, B, T, k, batches, tokens.data(), targets.data(), domains.data());
        model_forward(m, a, tokens.data(), nullptr, B, T);
        sp.tokens += B * T;
        for (int l = 0; l < c.n_layers; l++) {
            if (!m.w.layers[l].moe.router) continue;  // a dense layer of a sparse model (model.moe.dense_layers)
            routing_token_experts(a.layers[l], B * T * h, te);
            for (int r = 0; r < B * T * h; r++) {
                if (te[r].empty()) continue;  // dropped
                const int e = te[r][0].second, t = r / h;
                sp.layers[l].by_domain[e][domains[t]] += 1;
                sp.layers[l].by_lex[e][lex_of[tokens[t]]] += 1;
                tok_counts[l][e][tokens[t]]++;
            }
        }
        if (progress && !progress((double)(k + 1) / batches)) break;
    }
    for (int l = 0; l < c.n_layers; l++) {
        auto& L = sp.layers[l];
        // Only the domains present count in the NMI table.
        std::vector<std::vector<double>> present(E);
        for (int e = 0; e < E; e++)
            for (int d = 0; d < dom_count; d++) present[e].push_back(L.by_domain[e][d]);
        L.nmi_domain = nmi(present);
        L.nmi_lex = nmi(L.by_lex);
        L.top_tokens.assign(E, {});
        for (int e = 0; e < E; e++) {
            std::vector<std::pair<int, int>> v;
            for (auto& [id, n] : tok_counts[l][e]) v.push_back({n, id});
            std::sort(v.begin(), v.end(), [](auto& x, auto& y) { return x.first > y.first || (x.first == y.first && x.second < y.second); });
            for (size_t i = 0; i < std::min<size_t>(8, v.size()); i++) L.top_tokens[e].push_back({tok.token_text(v[i].second), v[i].first});
        }
    }
    return sp;
}

std::string specialization_to_json(const Specialization& s) {
    nlohmann::json j;
    j["tokens"] = s.tokens;
    std::vector<std::string> dn, ln;
    for (int d = 0; d < dom_count; d++) dn.push_back(domain_name(d));
    for (int c = 0; c < lex_count; c++) ln.push_back(lex_class_name(c));
    j["domains"] = dn;
    j["lexical_classes"] = ln;
    for (const auto& l : s.layers) {
        nlohmann::json jl;
        jl["by_domain"] = l.by_domain;
        jl["by_lexical_class"] = l.by_lex;
        jl["nmi_domain"] = l.nmi_domain;
        jl["nmi_lexical"] = l.nmi_lex;
        for (const auto& t : l.top_tokens) {
            nlohmann::json tt = nlohmann::json::array();
            for (auto& [w, n] : t) tt.push_back({w, n});
            jl["top_tokens"].push_back(tt);
        }
        j["layers"].push_back(jl);
    }
    return j.dump(1);
}

Model specialization_random_router(const Model& m, unsigned seed) {
    Model rnd;
    model_create(rnd, m.cfg, 0, 0.02f);
    std::copy(m.params.data.begin(), m.params.data.end(), rnd.params.data.begin());  // same weights, in place
    std::mt19937 g(seed);
    for (const TensorSpec& t : rnd.layout.specs())
        if (t.name.find("moe.router") != std::string::npos) {
            float* w = rnd.params.data.data() + t.offset;  // (numel) this router's weights
            double ss = 0;
            for (size_t i = 0; i < t.numel; i++) ss += (double)w[i] * w[i];
            std::normal_distribution<float> nd(0.f, (float)std::sqrt(ss / t.numel));  // same scale as trained
            for (size_t i = 0; i < t.numel; i++) w[i] = nd(g);
        }
    return rnd;
}

SpecializationBaseline specialization_baseline_measure(const Model& m, const Tokenizer& tok, const TokenStream& val,
                                                       int n_tokens, unsigned seed) {
    SpecializationBaseline b;
    b.trained = specialization_measure(m, tok, val, n_tokens);
    b.random_router = specialization_measure(specialization_random_router(m, seed), tok, val, n_tokens);
    return b;
}

nlohmann::json specialization_baseline_to_json(const SpecializationBaseline& b) {
    nlohmann::json j = nlohmann::json::array();
    for (size_t l = 0; l < b.trained.layers.size(); l++)
        j.push_back({{"nmi_domain", b.trained.layers[l].nmi_domain},
                     {"nmi_domain_random_router", b.random_router.layers[l].nmi_domain},
                     {"nmi_lexical", b.trained.layers[l].nmi_lex},
                     {"nmi_lexical_random_router", b.random_router.layers[l].nmi_lex}});
    return j;
}

std::string specialization_baseline_text(const SpecializationBaseline& b) {
    std::string out;
    char line[256];
    for (size_t l = 0; l < b.trained.layers.size(); l++) {
        const LayerSpecialization &t = b.trained.layers[l], &r = b.random_router.layers[l];
        std::snprintf(line, sizeof line,
                      "specialization layer %zu: NMI(expert; domain) %.3f (random router %.3f), NMI(expert; lexical "
                      "class) %.3f (random %.3f)\n",
                      l, t.nmi_domain, r.nmi_domain, t.nmi_lex, r.nmi_lex);
        out += line;
    }
    return out;
}

}  // namespace rl
