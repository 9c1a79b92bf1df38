#include "metrics/routing_report.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <unordered_set>

#include <nlohmann/json.hpp>

namespace rl {

namespace {

// Per (sub-)token: the experts it reached, ordered by combine weight (ties to the lower expert).
void token_experts(const LayerActs& L, int rows, std::vector<std::vector<std::pair<float, int>>>& out) {
    out.assign(rows, {});
    for (int r = 0; r < *L.ms.n_assign; r++) out[L.ms.a_token[r]].push_back({L.ms.a_w[r], L.ms.a_expert[r]});
    for (auto& v : out)
        std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
}

}  // namespace

ProbeSnapshot probe_run(const Model& m, const Tokenizer& tok, const std::string& text, int step) {
    const ModelConfig& c = m.cfg;
    ProbeSnapshot p;
    p.step = step;
    std::vector<int> ids = tok.encode(text);
    if ((int)ids.size() > c.seq_len) ids.resize(c.seq_len);
    if (ids.empty()) ids.push_back(tok.eos_id());
    const int T = (int)ids.size();
    for (int id : ids) p.tokens.push_back({id, tok.token_text(id)});
    p.n_heads = c.n_heads;
    p.n_shared_heads = c.attention.heads.kind == HeadSelection::moh ? c.attention.heads.n_shared : 0;
    p.n_experts = c.moe.kind != FfnRouting::dense ? c.moe.n_experts : 0;
    p.mh_heads = c.moe.kind == FfnRouting::mh_moe ? c.moe.n_heads : 1;
    Activations a;
    activations_create(a, c, 1, T);
    model_forward(m, a, ids.data(), nullptr, 1, T, {.window = model_window(c, c.seq_len, 4.f)});
    for (const LayerActs& L : a.layers) {
        ProbeLayer pl;
        if (c.attention.heads.kind != HeadSelection::all_heads)
            for (int t = 0; t < T; t++)
                pl.head_gates.emplace_back(L.head_gates + (size_t)t * c.n_heads, L.head_gates + (size_t)(t + 1) * c.n_heads);
        if (p.n_experts) {
            std::vector<std::vector<std::pair<float, int>>> te;
            token_experts(L, T * p.mh_heads, te);
            for (auto& v : te) {
                pl.experts.emplace_back();
                pl.expert_weights.emplace_back();
                for (auto& [w, e] : v) pl.experts.back().push_back(e), pl.expert_weights.back().push_back(w);
            }
        }
        p.layers.push_back(std::move(pl));
    }
    return p;
}

std::string probe_to_json(const ProbeSnapshot& p) {
    nlohmann::json j;
    j["step"] = p.step;
    j["n_heads"] = p.n_heads;
    j["n_shared_heads"] = p.n_shared_heads;
    j["n_experts"] = p.n_experts;
    j["sub_tokens_per_token"] = p.mh_heads;
    for (const auto& t : p.tokens) j["tokens"].push_back({{"id", t.id}, {"text", t.text}});
    for (const auto& l : p.layers) {
        nlohmann::json jl;
        jl["head_gates"] = l.head_gates;
        jl["experts"] = l.experts;
        jl["expert_weights"] = l.expert_weights;
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

Specialization specialization_measure(const Model& m, const Tokenizer& tok, const TokenStream& val, int n_tokens) {
    const ModelConfig& c = m.cfg;
    Specialization sp;
    if (c.moe.kind == FfnRouting::dense) return sp;
    const int B = 16, T = c.seq_len, E = c.moe.n_experts;
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
            token_experts(a.layers[l], B * T * h, te);
            for (int r = 0; r < B * T * h; r++) {
                if (te[r].empty()) continue;  // dropped
                const int e = te[r][0].second, t = r / h;
                sp.layers[l].by_domain[e][domains[t]] += 1;
                sp.layers[l].by_lex[e][lex_of[tokens[t]]] += 1;
                tok_counts[l][e][tokens[t]]++;
            }
        }
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

}  // namespace rl
