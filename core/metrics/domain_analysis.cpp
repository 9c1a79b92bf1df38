#include "metrics/domain_analysis.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <unordered_map>

#include "metrics/routing_report.h"
#include "train/corpus.h"

namespace rl {

namespace {

// What the forwards leave per sparse layer, before the summaries.
struct LayerTally {
    std::vector<std::vector<double>> by_domain;  // (E, D)
    std::vector<int> first;                      // per routed token: its first expert (-1: dropped)
    std::vector<int64_t> pairs;                  // id * E + e of every (token, expert) pair, counted at the end
};
// Per routed token, the same in every layer.
struct TokenTally {
    std::vector<int> id, domain;
};

// Mean NMI(first expert; domain) over `shuffles` random permutations of the first experts: the same
// load and the same domain sizes, with the link between them cut.
double shuffled_nmi(const LayerTally& t, const TokenTally& tok, int E, int D, int shuffles, unsigned seed) {
    std::vector<int> perm, dom;
    for (size_t i = 0; i < t.first.size(); i++)
        if (t.first[i] >= 0) perm.push_back(t.first[i]), dom.push_back(tok.domain[i]);
    std::mt19937 rng(seed);
    double sum = 0;
    for (int s = 0; s < shuffles; s++) {
        std::shuffle(perm.begin(), perm.end(), rng);
        std::vector<std::vector<double>> c(E, std::vector<double>(D, 0.0));
        for (size_t i = 0; i < perm.size(); i++) c[perm[i]][dom[i]] += 1;
        sum += nmi(c);
    }
    return shuffles > 0 ? sum / shuffles : 0;
}

// Top tokens per expert and the frequency-weighted mean of each token's largest expert share.
void vocabulary(LayerAnalysis& la, LayerTally& t, const TokenTally& tt, const Tokenizer& tok, int E, int top,
                int min_occurrences) {
    std::unordered_map<int, int> occ;  // id -> occurrences
    for (int id : tt.id) occ[id]++;
    std::unordered_map<int, int> best;  // id -> its largest (token, expert) count
    std::vector<std::vector<ExpertToken>> per(E);
    std::sort(t.pairs.begin(), t.pairs.end());
    for (size_t i = 0; i < t.pairs.size();) {  // runs of equal keys: one (token, expert) count each
        size_t j = i;
        while (j < t.pairs.size() && t.pairs[j] == t.pairs[i]) j++;
        const int id = (int)(t.pairs[i] / E), e = (int)(t.pairs[i] % E), n = (int)(j - i);
        best[id] = std::max(best[id], n);
        per[e].push_back({id, "", n, (double)n / occ[id]});
        i = j;
    }
    std::vector<int64_t>().swap(t.pairs);
    double weighted = 0, seen = 0;  // sum over frequent tokens of occ * (best / occ), and of occ
    for (const auto& [id, n] : best)
        if (occ[id] >= min_occurrences) weighted += n, seen += occ[id];
    la.vocab_specialisation = seen > 0 ? weighted / seen : 0;
    la.top_tokens.assign(E, {});
    for (int e = 0; e < E; e++) {
        auto& v = per[e];
        const size_t k = std::min<size_t>(top, v.size());
        std::partial_sort(v.begin(), v.begin() + k, v.end(), [](const ExpertToken& a, const ExpertToken& b) {
            return a.count > b.count || (a.count == b.count && a.id < b.id);
        });
        v.resize(k);
        for (ExpertToken& x : v) x.text = tok.token_text(x.id);
        la.top_tokens[e] = std::move(v);
    }
}

// One window's routing into the tallies: every (token, expert) pair and each token's first expert.
void tally_window(std::vector<LayerTally>& tally, TokenTally& tt, const Model& m, const Activations& a, const int* ids,
                  int T, int d) {
    const ModelConfig& c = m.cfg;
    const int E = c.moe.n_experts, h = c.moe.kind == FfnRouting::mh_moe ? c.moe.n_heads : 1;
    std::vector<std::vector<std::pair<float, int>>> te;
    for (int l = 0; l < c.n_layers; l++) {
        if (!m.w.layers[l].moe.router) continue;
        routing_token_experts(a.layers[l], T * h, te);
        LayerTally& t = tally[l];
        for (int r = 0; r < T * h; r++) {
            for (const auto& [w, e] : te[r]) {
                t.by_domain[e][d] += 1;
                t.pairs.push_back((int64_t)ids[r / h] * E + e);
            }
            t.first.push_back(te[r].empty() ? -1 : te[r][0].second);
        }
    }
    for (int r = 0; r < T * h; r++) tt.id.push_back(ids[r / h]), tt.domain.push_back(d);
}

}  // namespace

Analysis analysis_run(const Model& m, const Tokenizer& tok, const std::vector<AnalysisDomain>& domains,
                      const AnalysisOptions& o) {
    const ModelConfig& c = m.cfg;
    Analysis an;
    const int D = (int)domains.size(), E = c.moe.n_experts;
    for (const auto& d : domains) an.domains.push_back(d.name);
    an.domain_tokens.assign(D, 0);
    an.context = std::clamp(o.context, 1, c.seq_len);
    if (c.moe.kind == FfnRouting::dense) return an;
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<LayerTally> tally(c.n_layers);
    TokenTally tt;
    for (auto& t : tally) t.by_domain.assign(E, std::vector<double>(D, 0.0));
    int64_t total = 0;
    for (const auto& d : domains) total += (int64_t)d.ids.size();
    Activations a;
    activations_create(a, c, 1, an.context);
    for (int d = 0; d < D && !an.cancelled; d++)
        for (size_t s = 0; s < domains[d].ids.size(); s += an.context) {
            if (o.cancel && o.cancel->load()) {
                an.cancelled = true;
                break;
            }
            const int T = (int)std::min<size_t>(an.context, domains[d].ids.size() - s);
            model_forward(m, a, domains[d].ids.data() + s, nullptr, 1, T);
            tally_window(tally, tt, m, a, domains[d].ids.data() + s, T, d);
            an.domain_tokens[d] += T;
            an.tokens += T;
            if (o.progress) o.progress(an.tokens, total);
        }
    int prev = -1;
    for (int l = 0; l < c.n_layers; l++) {
        if (!m.w.layers[l].moe.router) continue;
        LayerAnalysis la;
        la.layer = l;
        la.by_domain = tally[l].by_domain;
        std::vector<std::vector<double>> first(E, std::vector<double>(D, 0.0));
        for (size_t i = 0; i < tally[l].first.size(); i++)
            if (tally[l].first[i] >= 0) first[tally[l].first[i]][tt.domain[i]] += 1;
        la.nmi_domain = nmi(first);
        la.nmi_domain_random_router = shuffled_nmi(tally[l], tt, E, D, o.shuffles, o.seed + l);
        vocabulary(la, tally[l], tt, tok, E, o.top_tokens, o.min_occurrences);
        if (prev >= 0) {  // the previous sparse layer's first experts against this one's, token by token
            LayerAnalysis& p = an.layers.back();
            p.next_layer = l;
            p.next_counts.assign(E, std::vector<double>(E, 0.0));
            for (size_t i = 0; i < tally[l].first.size(); i++)
                if (tally[prev].first[i] >= 0 && tally[l].first[i] >= 0) p.next_counts[tally[prev].first[i]][tally[l].first[i]] += 1;
            p.nmi_next = nmi(p.next_counts);
        }
        an.layers.push_back(std::move(la));
        prev = l;
    }
    an.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return an;
}

nlohmann::json analysis_to_json(const Analysis& a) {
    nlohmann::json j = {{"domains", a.domains}, {"domain_tokens", a.domain_tokens}, {"tokens", a.tokens},
                        {"context", a.context}, {"seconds", a.seconds}, {"cancelled", a.cancelled}};
    j["layers"] = nlohmann::json::array();
    for (const LayerAnalysis& l : a.layers) {
        nlohmann::json top = nlohmann::json::array();
        for (const auto& v : l.top_tokens) {
            nlohmann::json tv = nlohmann::json::array();
            for (const ExpertToken& t : v) tv.push_back({{"id", t.id}, {"text", t.text}, {"count", t.count}, {"share", t.share}});
            top.push_back(tv);
        }
        nlohmann::json jl = {{"layer", l.layer}, {"by_domain", l.by_domain}, {"nmi_domain", l.nmi_domain},
                             {"nmi_domain_random_router", l.nmi_domain_random_router}, {"top_tokens", top},
                             {"vocab_specialisation", l.vocab_specialisation}};
        if (l.next_layer >= 0)
            jl["next"] = {{"layer", l.next_layer}, {"counts", l.next_counts}, {"nmi", l.nmi_next}};
        j["layers"].push_back(jl);
    }
    return j;
}

Result<std::vector<AnalysisDomain>> analysis_domains_read(const std::vector<std::string>& specs, const Tokenizer& tok,
                                                          size_t cap) {
    std::vector<AnalysisDomain> out;
    for (const std::string& d : specs) {
        const size_t eq = d.find('=');
        if (eq == 0 || eq == std::string::npos || eq + 1 == d.size())
            return Status::error("a domain is NAME=FILE (for example code=src.txt), got '" + d + "'");
        const std::string name = d.substr(0, eq), path = d.substr(eq + 1);
        std::ifstream in(path, std::ios::binary);
        if (!in) return Status::error("cannot read the file of domain '" + name + "': '" + path + "'");
        // A token is a few bytes: 64 bytes a token is more than any tokenizer needs, and a huge file is
        // not read whole for the first `cap` tokens.
        std::string text((size_t)std::min<uint64_t>((uint64_t)cap * 64, 1ull << 31), '\0');
        in.read(text.data(), (std::streamsize)text.size());
        text.resize((size_t)in.gcount());
        AnalysisDomain ad{name, tok.encode(text)};
        if (ad.ids.size() > cap) ad.ids.resize(cap);
        if (ad.ids.empty()) return Status::error("domain '" + name + "' ('" + path + "') has no text");
        out.push_back(std::move(ad));
    }
    if (!specs.empty()) return out;
    std::map<int, std::string> text;  // the embedded corpus, one text per domain
    for (const Document& doc : corpus_embedded(400, 1)) text[doc.domain] += doc.text + "\n";
    for (const auto& [d, t] : text) {
        AnalysisDomain ad{domain_name(d), tok.encode(t)};
        if (ad.ids.size() > cap) ad.ids.resize(cap);
        out.push_back(std::move(ad));
    }
    return out;
}

}  // namespace rl
