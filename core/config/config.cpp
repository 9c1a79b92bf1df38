// Config JSON: the defaults, written out by config_to_json, double as the schema. A user file is
// merged onto them key by key, so an unknown key or a wrong type is caught with its full path.
#include "config/config.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

namespace rl {
using json = nlohmann::json;

namespace {

template <class E>
struct EnumName { E value; const char* name; };

const EnumName<NormKind> k_norms[] = {{NormKind::rmsnorm, "rmsnorm"}, {NormKind::layernorm, "layernorm"}};
const EnumName<NormPosition> k_norm_pos[] = {{NormPosition::pre, "pre"}, {NormPosition::post, "post"}};
const EnumName<PosKind> k_pos[] = {{PosKind::none, "none"}, {PosKind::learned, "learned"},
                                   {PosKind::rope, "rope"}, {PosKind::cope, "cope"}};
const EnumName<WindowKind> k_windows[] = {{WindowKind::full, "full"}, {WindowKind::sliding, "sliding"},
                                          {WindowKind::adaptive, "adaptive"}};
const EnumName<WindowStrategy> k_strategies[] = {{WindowStrategy::fixed, "fixed"},
                                                 {WindowStrategy::seq_len, "seq_len"},
                                                 {WindowStrategy::entropy, "entropy"}};
const EnumName<FfnKind> k_ffns[] = {{FfnKind::swiglu, "swiglu"}, {FfnKind::relu, "relu"}, {FfnKind::gelu, "gelu"}};
const EnumName<HeadSelection> k_heads[] = {{HeadSelection::all_heads, "all_heads"},
                                           {HeadSelection::static_pruning, "static_pruning"},
                                           {HeadSelection::moh, "moh"}};
const EnumName<GateScaling> k_scalings[] = {{GateScaling::official, "official"}, {GateScaling::paper, "paper"}};
const EnumName<HeadRouterKind> k_head_routers[] = {{HeadRouterKind::learned, "learned"}, {HeadRouterKind::query_norm, "query_norm"},
                                                     {HeadRouterKind::experts, "experts"}};
const EnumName<HeadsPath> k_heads_paths[] = {{HeadsPath::skip, "skip"}, {HeadsPath::dense_masked, "dense_masked"}};
const EnumName<DeviceKind> k_devices[] = {{DeviceKind::automatic, "auto"}, {DeviceKind::cpu, "cpu"}, {DeviceKind::cuda, "cuda"}};
const EnumName<FfnRouting> k_ffn_routing[] = {{FfnRouting::dense, "dense"}, {FfnRouting::moe, "moe"},
                                              {FfnRouting::mh_moe, "mh_moe"}};
const EnumName<MoeRouting> k_moe_routing[] = {{MoeRouting::topk, "topk"}, {MoeRouting::top1_capacity, "top1_capacity"},
                                              {MoeRouting::noisy_topk, "noisy_topk"},
                                              {MoeRouting::expert_choice, "expert_choice"}};
const EnumName<AuxConvention> k_aux[] = {{AuxConvention::switch_t, "switch"}, {AuxConvention::hf, "hf"}};
const EnumName<ScoreFunction> k_scores[] = {{ScoreFunction::softmax, "softmax"}, {ScoreFunction::sigmoid, "sigmoid"}};
const EnumName<LoadBalancing> k_balancing[] = {{LoadBalancing::aux_loss, "aux_loss"},
                                               {LoadBalancing::seq_aux_loss, "seq_aux_loss"},
                                               {LoadBalancing::global_aux_loss, "global_aux_loss"},
                                               {LoadBalancing::none, "none"}};
const EnumName<TokenDropPolicy> k_drop[] = {{TokenDropPolicy::position, "position"}, {TokenDropPolicy::probs, "probs"}};
const EnumName<QkNorm> k_qk_norm[] = {{QkNorm::none, "none"}, {QkNorm::full, "full"}, {QkNorm::head, "head"}};
const EnumName<RopeScaling> k_rope_scaling[] = {{RopeScaling::none, "none"}, {RopeScaling::llama3, "llama3"}};
const EnumName<TopkWeights> k_topk_weights[] = {{TopkWeights::automatic, "auto"},
                                                {TopkWeights::renormalised, "renormalised"},
                                                {TopkWeights::probs, "probs"}};

template <class E, size_t N>
const char* enum_name(const EnumName<E> (&table)[N], E v) {
    for (const auto& e : table)
        if (e.value == v) return e.name;
    return "?";
}

template <class E, size_t N>
Status enum_parse(const EnumName<E> (&table)[N], const std::string& key, const std::string& s, E& out) {
    std::string allowed;
    for (const auto& e : table) {
        if (s == e.name) { out = e.value; return Status::ok(); }
        allowed += allowed.empty() ? "" : ", ";
        allowed += e.name;
    }
    return Status::error("config: '" + key + "' is \"" + s + "\"; allowed: " + allowed);
}

const char* json_type(const json& j) {
    if (j.is_boolean()) return "boolean";
    if (j.is_number()) return "number";
    if (j.is_string()) return "string";
    if (j.is_object()) return "object";
    if (j.is_array()) return "array";
    return "null";
}

Status out_of_range(const std::string& key, const json& v) {
    return Status::error("config: '" + key + "' is out of range: got " + v.dump() +
                         " (a whole-number key takes -2147483648..2147483647; the README gives each key's own range)");
}

// Merges `user` onto `base` (the defaults); every user key must exist in base with the same type.
Status merge_checked(json& base, const json& user, const std::string& path) {
    if (!user.is_object())
        return Status::error("config: '" + (path.empty() ? std::string("<top>") : path) +
                             "' must be an object, got " + json_type(user));
    for (auto it = user.begin(); it != user.end(); ++it) {
        const std::string key = path.empty() ? it.key() : path + "." + it.key();
        if (!base.contains(it.key())) {
            std::string allowed;
            for (auto b = base.begin(); b != base.end(); ++b) allowed += (allowed.empty() ? "" : ", ") + b.key();
            return Status::error("config: unknown key '" + key + "' (allowed here: " + allowed + ")");
        }
        json& slot = base[it.key()];
        if (slot.is_object()) {
            Status s = merge_checked(slot, it.value(), key);
            if (!s) return s;
            continue;
        }
        const bool same = (slot.is_number() && it.value().is_number()) ||
                          (slot.is_boolean() && it.value().is_boolean()) ||
                          (slot.is_string() && it.value().is_string());
        if (!same)
            return Status::error("config: '" + key + "' must be a " + json_type(slot) + ", got " +
                                 json_type(it.value()));
        if (slot.is_number_integer() && !it.value().is_number_integer()) {
            double d = it.value().get<double>();
            if (d != std::floor(d)) return Status::error("config: '" + key + "' must be an integer, got " + it.value().dump());
            // Converting a double beyond 64 bits is undefined behaviour (1e300 came from a fuzzed file).
            if (!(std::fabs(d) < 0x1p62)) return out_of_range(key, it.value());
            slot = static_cast<long long>(d);
        } else {
            slot = it.value();
        }
    }
    return Status::ok();
}

// The model.attention.* keys of config_fields, in its order. A is AttentionConfig or const AttentionConfig.
template <class A, class Visit>
void attention_fields(A& a, Visit& visit) {
    auto& w = a.window;
    auto& h = a.heads;
    visit("model.attention.use_wo", a.use_wo);
    visit("model.attention.positional", a.positional, k_pos);
    visit("model.attention.cope_npos", a.cope_npos);
    visit("model.attention.cope_shared", a.cope_shared);
    visit("model.attention.rope_theta", a.rope_theta);
    visit("model.attention.rope_scaling.kind", a.rope_scaling.kind, k_rope_scaling);
    visit("model.attention.rope_scaling.factor", a.rope_scaling.factor);
    visit("model.attention.rope_scaling.low_freq_factor", a.rope_scaling.low_freq_factor);
    visit("model.attention.rope_scaling.high_freq_factor", a.rope_scaling.high_freq_factor);
    visit("model.attention.rope_scaling.original_max_positions", a.rope_scaling.original_max_positions);
    visit("model.attention.scale", a.scale);
    visit("model.attention.qkv_bias", a.qkv_bias);
    visit("model.attention.out_bias", a.out_bias);
    visit("model.attention.qk_norm", a.qk_norm, k_qk_norm);
    visit("model.attention.window.kind", w.kind, k_windows);
    visit("model.attention.window.size", w.size);
    visit("model.attention.window.strategy", w.strategy, k_strategies);
    visit("model.attention.window.min", w.min);
    visit("model.attention.window.max", w.max);
    visit("model.attention.heads.kind", h.kind, k_heads);
    visit("model.attention.heads.n_active", h.n_active);
    visit("model.attention.heads.n_shared", h.n_shared);
    visit("model.attention.heads.n_active_routed", h.n_active_routed);
    visit("model.attention.heads.beta", h.beta);
    visit("model.attention.heads.gate_scaling", h.gate_scaling, k_scalings);
    visit("model.attention.heads.head_bias", h.head_bias);
    visit("model.attention.heads.bias_update_rate", h.bias_update_rate);
    visit("model.attention.heads.router", h.router, k_head_routers);
    visit("model.attention.heads.n_experts", h.n_experts);
}

// Every config key, once: its path and its place in Config. Writing and reading both walk this list,
// so a key cannot be written and not read, or read from another path than it was written to.
// `visit(path, field)` for plain values, `visit(path, field, names)` for enums. C is Config or const Config.
template <class C, class Visit>
void config_fields(C& c, Visit&& visit) {
    auto& m = c.model;
    auto& a = m.attention;
    auto& e = m.moe;
    auto& t = c.train;
    auto& d = c.data;
    visit("name", c.name);
    visit("description", c.description);
    visit("model.d_model", m.d_model);
    visit("model.n_layers", m.n_layers);
    visit("model.n_heads", m.n_heads);
    visit("model.n_kv_heads", m.n_kv_heads);
    visit("model.head_dim", m.head_dim);
    visit("model.seq_len", m.seq_len);
    visit("model.vocab_size", m.vocab_size);
    visit("model.norm", m.norm, k_norms);
    visit("model.norm_position", m.norm_position, k_norm_pos);
    visit("model.norm_eps", m.norm_eps);
    visit("model.final_norm", m.final_norm);
    visit("model.final_norm_eps", m.final_norm_eps);
    visit("model.tie_embeddings", m.tie_embeddings);
    visit("model.lm_head_bias", m.lm_head_bias);
    visit("model.embedding_multiplier", m.embedding_multiplier);
    visit("model.residual_multiplier", m.residual_multiplier);
    visit("model.logits_scaling", m.logits_scaling);
    attention_fields(a, visit);
    visit("model.ffn.kind", m.ffn.kind, k_ffns);
    visit("model.ffn.d_ff", m.ffn.d_ff);
    visit("model.moe.kind", e.kind, k_ffn_routing);
    visit("model.moe.n_experts", e.n_experts);
    visit("model.moe.top_k", e.top_k);
    visit("model.moe.routing", e.routing, k_moe_routing);
    visit("model.moe.capacity_factor", e.capacity_factor);
    visit("model.moe.n_shared_experts", e.n_shared_experts);
    visit("model.moe.d_ff_expert", e.d_ff_expert);
    visit("model.moe.aux_weight", e.aux_weight);
    visit("model.moe.aux_convention", e.aux_convention, k_aux);
    visit("model.moe.z_loss_weight", e.z_loss_weight);
    visit("model.moe.jitter", e.jitter);
    visit("model.moe.n_heads", e.n_heads);
    visit("model.moe.score_function", e.score_function, k_scores);
    visit("model.moe.expert_bias", e.expert_bias);
    visit("model.moe.bias_update_rate", e.bias_update_rate);
    visit("model.moe.load_balancing", e.load_balancing, k_balancing);
    visit("model.moe.global_aux_window", e.global_aux_window);
    visit("model.moe.topk_scaling_factor", e.topk_scaling_factor);
    visit("model.moe.n_groups", e.n_groups);
    visit("model.moe.group_topk", e.group_topk);
    visit("model.moe.token_drop_policy", e.token_drop_policy, k_drop);
    visit("model.moe.topk_weights", e.topk_weights, k_topk_weights);
    visit("model.moe.d_ff_shared", e.d_ff_shared);
    visit("model.moe.shared_expert_gate", e.shared_expert_gate);
    visit("model.moe.out_bias", e.out_bias);
    visit("model.moe.dense_layers", e.dense_layers);
    visit("model.moe.masked_experts", e.masked_experts);
    visit("model.moe.inference_capacity_factor", e.inference_capacity_factor);
    visit("train.steps", t.steps);
    visit("train.batch_size", t.batch_size);
    visit("train.lr", t.lr);
    visit("train.min_lr", t.min_lr);
    visit("train.warmup_steps", t.warmup_steps);
    visit("train.weight_decay", t.weight_decay);
    visit("train.beta1", t.beta1);
    visit("train.beta2", t.beta2);
    visit("train.eps", t.eps);
    visit("train.grad_clip", t.grad_clip);
    visit("train.eval_every", t.eval_every);
    visit("train.eval_batches", t.eval_batches);
    visit("train.seed", t.seed);
    visit("train.init_std", t.init_std);
    visit("train.heads_path", t.heads_path, k_heads_paths);
    visit("train.device", t.device, k_devices);
    visit("data.tokenizer", d.tokenizer);
    visit("data.vocab_size", d.vocab_size);
    visit("data.corpus", d.corpus);
    visit("data.synthetic_docs", d.synthetic_docs);
    visit("data.val_fraction", d.val_fraction);
    visit("data.corpus_seed", d.corpus_seed);
}

// "model.attention.use_wo" -> /model/attention/use_wo
json::json_pointer key_pointer(const char* key) {
    std::string p = std::string("/") + key;
    std::replace(p.begin(), p.end(), '.', '/');
    return json::json_pointer(p);
}

struct FieldWriter {
    json& j;
    template <class T>
    void operator()(const char* key, const T& v) { j[key_pointer(key)] = v; }
    template <class E, size_t N>
    void operator()(const char* key, const E& v, const EnumName<E> (&names)[N]) { j[key_pointer(key)] = enum_name(names, v); }
};

// Reads every field from a tree that has them all (the defaults with the user's keys merged in);
// stops at the first bad value.
struct FieldReader {
    const json& j;
    Status status;
    template <class T>
    void operator()(const char* key, T& v) {
        if (status) v = j.at(key_pointer(key)).get<T>();
    }
    // Whole numbers are read as int: a value beyond it would silently wrap (4294967304 read as 8).
    void operator()(const char* key, int& v) {
        if (!status) return;
        const json& x = j.at(key_pointer(key));
        if (!fits(x, INT_MIN, INT_MAX)) status = out_of_range(key, x);
        else v = x.get<int>();
    }
    void operator()(const char* key, unsigned& v) {  // seeds: JSON has no unsigned, so refuse negatives by name
        if (!status) return;
        const json& x = j.at(key_pointer(key));
        if (x.is_number_integer() && !x.is_number_unsigned() && x.get<long long>() < 0)
            status = Status::error("config: '" + std::string(key) + "' must be >= 0, got " + x.dump());
        else if (!fits(x, 0, UINT_MAX))
            status = Status::error("config: '" + std::string(key) + "' is out of range: got " + x.dump() +
                                   " (a seed takes 0..4294967295)");
        else v = static_cast<unsigned>(x.get<long long>());
    }
    static bool fits(const json& x, long long lo, long long hi) {
        if (x.is_number_unsigned()) return x.get<unsigned long long>() <= (unsigned long long)hi;
        const long long y = x.get<long long>();
        return y >= lo && y <= hi;
    }
    template <class E, size_t N>
    void operator()(const char* key, E& v, const EnumName<E> (&names)[N]) {
        if (status) status = enum_parse(names, key, j.at(key_pointer(key)).get<std::string>(), v);
    }
};

json to_json_obj(const Config& c) {
    json j = json::object();
    config_fields(c, FieldWriter{j});
    return j;
}

Result<Config> from_json_obj(const json& j) {
    Config c;
    FieldReader r{j, Status::ok()};
    config_fields(c, r);
    if (!r.status) return r.status;
    return c;
}

// Collects the allowed names of every enum key (the form's drop-downs).
struct ChoiceCollector {
    std::map<std::string, std::vector<std::string>> out;
    template <class T>
    void operator()(const char*, const T&) {}
    template <class E, size_t N>
    void operator()(const char* key, const E&, const EnumName<E> (&names)[N]) {
        for (const auto& n : names) out[key].push_back(n.name);
    }
};

}  // namespace

std::vector<std::string> config_key_choices(const std::string& key) {
    static const std::map<std::string, std::vector<std::string>> choices = [] {
        ChoiceCollector c;
        const Config cfg;
        config_fields(cfg, c);
        c.out["data.tokenizer"] = {"auto", "word", "bpe", "unigram"};  // a string key, validated by name
        return c.out;
    }();
    auto it = choices.find(key);
    return it == choices.end() ? std::vector<std::string>{} : it->second;
}

const char* pos_kind_name(PosKind k) { return enum_name(k_pos, k); }
const char* ffn_kind_name(FfnKind k) { return enum_name(k_ffns, k); }
const char* head_selection_name(HeadSelection k) { return enum_name(k_heads, k); }
const char* head_router_name(HeadRouterKind k) { return enum_name(k_head_routers, k); }
const char* ffn_routing_name(FfnRouting k) { return enum_name(k_ffn_routing, k); }
const char* moe_routing_name(MoeRouting k) { return enum_name(k_moe_routing, k); }
const char* aux_convention_name(AuxConvention k) { return enum_name(k_aux, k); }
const char* score_function_name(ScoreFunction k) { return enum_name(k_scores, k); }
const char* load_balancing_name(LoadBalancing k) { return enum_name(k_balancing, k); }
const char* token_drop_policy_name(TokenDropPolicy k) { return enum_name(k_drop, k); }
const char* qk_norm_name(QkNorm k) { return enum_name(k_qk_norm, k); }
const char* rope_scaling_name(RopeScaling k) { return enum_name(k_rope_scaling, k); }
const char* topk_weights_name(TopkWeights k) { return enum_name(k_topk_weights, k); }
const char* device_kind_name(DeviceKind k) { return enum_name(k_devices, k); }

MhMoeMatch mh_moe_match_flops(int d_model, int n_heads, int smoe_experts, int smoe_d_ff, int top_k) {
    const int c = 3;  // SwiGLU: gate, up, down
    const int dff = std::max(1, (int)std::lround(smoe_d_ff - 2.0 * d_model / (top_k * c)));
    const int e = std::max(1, (int)std::lround((double)n_heads * smoe_experts * smoe_d_ff / dff));
    return {dff, e};
}

// Floats are stored as float: write them with 7 significant digits (0.01, not 0.009999999776).
static void round_floats(json& j) {
    if (j.is_object() || j.is_array()) {
        for (auto& v : j) round_floats(v);
    } else if (j.is_number_float()) {
        char b[32];
        std::snprintf(b, sizeof b, "%.7g", j.get<double>());
        j = std::strtod(b, nullptr);
    }
}

std::string config_to_json(const Config& cfg) {
    json j = to_json_obj(cfg);
    round_floats(j);
    return j.dump(2);
}

Result<Config> config_from_json(const std::string& text) {
    json user = json::parse(text, nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
    if (user.is_discarded())
        return Status::error("config: not valid JSON (check commas, quotes and braces)");
    json base = to_json_obj(Config{});
    Status s = merge_checked(base, user, "");
    if (!s) return s;
    try {
        return from_json_obj(base);
    } catch (const std::exception& e) {  // a number out of the target type's range
        return Status::error(std::string("config: a value is out of range: ") + e.what());
    }
}

Result<Config> config_load(const std::string& path) {
    std::ifstream f(path);
    if (!f) return Status::error("config '" + path + "': cannot open the file (check the path)");
    std::stringstream ss;
    ss << f.rdbuf();
    auto r = config_from_json(ss.str());
    if (!r) return Status::error("config '" + path + "': " + r.status.msg.substr(r.status.msg.find(':') + 2));
    return r;
}

Status config_apply_override(Config& cfg, const std::string& assignment) {
    auto eq = assignment.find('=');
    if (eq == std::string::npos || eq == 0)
        return Status::error("--set expects key=value (e.g. model.attention.use_wo=true), got '" + assignment + "'");
    std::string key = assignment.substr(0, eq), val = assignment.substr(eq + 1);
    json v = json::parse(val, nullptr, false);
    if (v.is_discarded()) v = val;
    json patch = v;
    // Build {"a":{"b":{"c":v}}} from "a.b.c".
    for (size_t end = key.size(); end != std::string::npos && end > 0;) {
        size_t dot = key.rfind('.', end - 1);
        std::string part = key.substr(dot == std::string::npos ? 0 : dot + 1, end - (dot == std::string::npos ? 0 : dot + 1));
        patch = json{{part, patch}};
        end = dot;
    }
    json base = to_json_obj(cfg);
    Status s = merge_checked(base, patch, "");
    if (!s) return s;
    auto r = from_json_obj(base);
    if (!r) return r.status;
    cfg = *r;
    return Status::ok();
}

namespace {
Status bad(const std::string& key, const std::string& what) {
    return Status::error("config: '" + key + "' " + what);
}
}  // namespace

std::vector<std::string> config_warnings(const Config& c) {
    std::vector<std::string> w;
    const auto& h = c.model.attention.heads;
    if (h.kind == HeadSelection::moh && h.n_active_routed == 1 && h.gate_scaling == GateScaling::official)
        w.push_back("model.attention.heads.n_active_routed = 1: the renormalised routed gate is constant, so the head "
                    "router learns only through the balance loss (minimind #858); use K >= 2 or gate_scaling=paper");
    if (c.model.moe.kind != FfnRouting::dense && c.model.moe.routing == MoeRouting::expert_choice)
        w.push_back("model.moe.routing = expert_choice is not causal (experts pick tokens across the batch): training "
                    "only, generation is not available");
    return w;
}

std::string config_generation_blocker(const ModelConfig& m) {
    if (m.moe.kind != FfnRouting::dense && m.moe.routing == MoeRouting::expert_choice)
        return "generation is not available with expert_choice routing: it is not causal (each expert picks its "
               "tokens from the whole batch); retrain with model.moe.routing=topk";
    return {};
}

namespace {

// "0, 3,5" -> {0, 3, 5}; false on anything that is not a comma-separated list of whole numbers.
bool parse_layer_list(const std::string& s, std::vector<int>& out) {
    out.clear();
    size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && s[i] == ' ') i++;
        size_t j = i;
        while (j < s.size() && std::isdigit((unsigned char)s[j])) j++;
        if (j == i || j - i > 6) return false;
        out.push_back(std::stoi(s.substr(i, j - i)));
        while (j < s.size() && s[j] == ' ') j++;
        if (j < s.size() && s[j] != ',') return false;
        i = j + 1;
        if (j + 1 == s.size()) return false;  // a trailing comma
    }
    return true;
}

}  // namespace

std::vector<char> config_dense_layers(const ModelConfig& m) {
    if (m.moe.kind == FfnRouting::dense) return {};
    std::vector<char> dense(m.n_layers, 0);
    std::vector<int> list;
    if (parse_layer_list(m.moe.dense_layers, list))
        for (int l : list)
            if (l >= 0 && l < m.n_layers) dense[l] = 1;
    return dense;
}

bool config_layer_sparse(const ModelConfig& m, int l) {
    if (m.moe.kind == FfnRouting::dense) return false;
    if (m.moe.dense_layers.empty()) return true;
    return !config_dense_layers(m)[l];
}

std::string config_training_blocker(const ModelConfig& m) {
    std::vector<std::string> keys;
    if (m.embedding_multiplier != 1.f) keys.push_back("model.embedding_multiplier");
    if (m.residual_multiplier != 1.f) keys.push_back("model.residual_multiplier");
    if (m.logits_scaling != 1.f) keys.push_back("model.logits_scaling");
    if (m.attention.scale != 0.f) keys.push_back("model.attention.scale");
    if (m.attention.qkv_bias) keys.push_back("model.attention.qkv_bias");
    if (m.attention.out_bias) keys.push_back("model.attention.out_bias");
    if (m.final_norm_eps != 0.f) keys.push_back("model.final_norm_eps");
    if (m.attention.qk_norm != QkNorm::none) keys.push_back("model.attention.qk_norm");
    if (m.attention.rope_scaling.kind != RopeScaling::none) keys.push_back("model.attention.rope_scaling.kind");
    const bool sparse = m.moe.kind != FfnRouting::dense;
    if (sparse && m.moe.d_ff_shared != 0) keys.push_back("model.moe.d_ff_shared");
    if (sparse && m.moe.shared_expert_gate) keys.push_back("model.moe.shared_expert_gate");
    if (sparse && m.moe.out_bias) keys.push_back("model.moe.out_bias");
    if (sparse && !m.moe.dense_layers.empty()) keys.push_back("model.moe.dense_layers");
    if (m.attention.heads.router != HeadRouterKind::learned) keys.push_back("model.attention.heads.router");
    if (keys.empty()) return {};
    std::string list;
    for (const auto& k : keys) list += (list.empty() ? "" : ", ") + k;
    return "training is not available for " + list +
           " (settings of imported Hugging Face models that only the forward supports); probe, generate and "
           "evaluate the model instead, or reset them to their defaults";
}

namespace {

bool in(long long v, long long lo, long long hi) { return v >= lo && v <= hi; }

// Sizes and the divisibility rules between them (C % H, H % G, H*D = C without W_O).
Status validate_dims(const ModelConfig& m) {
    const auto& a = m.attention;
    if (!in(m.d_model, 1, 8192)) return bad("model.d_model", "must be in 1..8192, got " + std::to_string(m.d_model));
    if (!in(m.n_layers, 1, 64)) return bad("model.n_layers", "must be in 1..64, got " + std::to_string(m.n_layers));
    if (!in(m.n_heads, 1, 128)) return bad("model.n_heads", "must be in 1..128, got " + std::to_string(m.n_heads));
    if (!in(m.n_kv_heads, 1, m.n_heads))
        return bad("model.n_kv_heads", "must be in 1..n_heads (" + std::to_string(m.n_heads) + "), got " + std::to_string(m.n_kv_heads));
    if (m.n_heads % m.n_kv_heads != 0)
        return bad("model.n_kv_heads", "must divide n_heads: n_heads " + std::to_string(m.n_heads) + " % n_kv_heads " +
                                           std::to_string(m.n_kv_heads) + " != 0 (use 1 for MQA, n_heads for MHA)");
    if (!in(m.head_dim, 1, 1024)) return bad("model.head_dim", "must be in 1..1024, got " + std::to_string(m.head_dim));
    if (m.d_model % m.n_heads != 0)
        return bad("model.n_heads", "must divide d_model: d_model " + std::to_string(m.d_model) + " % n_heads " +
                                        std::to_string(m.n_heads) + " != 0");
    if (!a.use_wo && m.n_heads * m.head_dim != m.d_model)
        return bad("model.head_dim", "without W_O the concatenated heads are the block output, so n_heads*head_dim (" +
                                         std::to_string(m.n_heads * m.head_dim) + ") must equal d_model (" +
                                         std::to_string(m.d_model) + "); set model.attention.use_wo=true or change head_dim");
    if (!in(m.seq_len, 2, 4096)) return bad("model.seq_len", "must be in 2..4096, got " + std::to_string(m.seq_len));
    if (m.vocab_size < 0 || m.vocab_size > 1000000) return bad("model.vocab_size", "must be 0 (from tokenizer) or 1..1000000");
    if (!(m.norm_eps > 0 && m.norm_eps < 1)) return bad("model.norm_eps", "must be in (0, 1)");
    if (!(m.final_norm_eps >= 0 && m.final_norm_eps < 1)) return bad("model.final_norm_eps", "must be in [0, 1) (0: norm_eps)");
    if (!(m.embedding_multiplier > 0 && m.embedding_multiplier < 1e4)) return bad("model.embedding_multiplier", "must be in (0, 1e4) (1 = off)");
    if (!(m.residual_multiplier > 0 && m.residual_multiplier < 1e4)) return bad("model.residual_multiplier", "must be in (0, 1e4) (1 = off)");
    if (!(m.logits_scaling > 0 && m.logits_scaling < 1e4)) return bad("model.logits_scaling", "must be in (0, 1e4) (1 = off)");
    if (!(a.scale >= 0 && a.scale < 100)) return bad("model.attention.scale", "must be in [0, 100) (0 = 1/sqrt(head_dim))");
    if (!in(m.ffn.d_ff, 1, 65536)) return bad("model.ffn.d_ff", "must be in 1..65536, got " + std::to_string(m.ffn.d_ff));
    return Status::ok();
}

Status validate_positions_and_window(const ModelConfig& m) {
    const auto& a = m.attention;
    if (a.positional == PosKind::rope && m.head_dim % 2 != 0)
        return bad("model.head_dim", "must be even for RoPE (pairs i, i+D/2 rotate together), got " + std::to_string(m.head_dim));
    if (a.positional == PosKind::rope && !(a.rope_theta > 1)) return bad("model.attention.rope_theta", "must be > 1");
    if (const RopeScalingConfig& r = a.rope_scaling; r.kind == RopeScaling::llama3) {
        if (a.positional != PosKind::rope) return bad("model.attention.rope_scaling.kind", "needs positional rope");
        if (!(r.factor >= 1 && r.factor < 1e4)) return bad("model.attention.rope_scaling.factor", "must be in [1, 1e4)");
        if (!(r.low_freq_factor > 0 && r.low_freq_factor < 1e4))
            return bad("model.attention.rope_scaling.low_freq_factor", "must be in (0, 1e4)");
        if (!(r.high_freq_factor > r.low_freq_factor && r.high_freq_factor < 1e4))
            return bad("model.attention.rope_scaling.high_freq_factor", "must be above low_freq_factor and below 1e4");
        if (!in(r.original_max_positions, 1, 1 << 24))
            return bad("model.attention.rope_scaling.original_max_positions", "must be in 1..16777216");
    }
    if (a.positional == PosKind::cope && !in(a.cope_npos, 2, 4096))
        return bad("model.attention.cope_npos", "must be in 2..4096, got " + std::to_string(a.cope_npos));
    const auto& w = a.window;
    if (w.kind == WindowKind::sliding && !in(w.size, 1, m.seq_len))
        return bad("model.attention.window.size", "must be in 1..seq_len (" + std::to_string(m.seq_len) + ") for a sliding window, got " + std::to_string(w.size));
    if (w.kind == WindowKind::adaptive) {
        if (!in(w.min, 1, m.seq_len)) return bad("model.attention.window.min", "must be in 1..seq_len, got " + std::to_string(w.min));
        if (!in(w.max, w.min, m.seq_len))
            return bad("model.attention.window.max", "must be in window.min.." + std::to_string(m.seq_len) +
                                                         " (a window larger than the sequence does nothing), got " + std::to_string(w.max));
        if (w.strategy == WindowStrategy::fixed && !in(w.size, w.min, w.max))
            return bad("model.attention.window.size", "must be in window.min..window.max for the fixed strategy");
    }
    return Status::ok();
}

Status validate_heads(const ModelConfig& m) {
    const auto& h = m.attention.heads;
    if (h.kind == HeadSelection::static_pruning && !in(h.n_active, 1, m.n_heads))
        return bad("model.attention.heads.n_active", "must be in 1..n_heads (" + std::to_string(m.n_heads) + "), got " + std::to_string(h.n_active));
    if (h.kind == HeadSelection::moh) {
        if (!in(h.n_shared, 0, m.n_heads - 1))
            return bad("model.attention.heads.n_shared", "must be in 0..n_heads-1 (at least one routed head), got " + std::to_string(h.n_shared));
        const int hr = m.n_heads - h.n_shared;
        if (!in(h.n_active_routed, 1, hr))
            return bad("model.attention.heads.n_active_routed", "must be in 1..n_heads-n_shared (" + std::to_string(hr) + "), got " + std::to_string(h.n_active_routed));
    }
    // Weights and factors are range-checked whatever the routing kind: they are live-changeable, and
    // a value that could never be right is refused even where it has no effect yet.
    if (!(h.beta >= 0 && h.beta < 10)) return bad("model.attention.heads.beta", "must be in [0, 10)");
    const auto& a = m.attention;
    if (h.kind != HeadSelection::all_heads && (a.qkv_bias || a.qk_norm != QkNorm::none || a.scale != 0.f))
        return bad("model.attention.heads.kind", "must be all_heads with qkv_bias, qk_norm or attention.scale (the "
                                                 "head-selection path has none of them)");
    if (h.head_bias && h.kind != HeadSelection::moh)
        return bad("model.attention.heads.head_bias", "needs routed heads (heads.kind=moh); it balances the head router");
    if (h.router == HeadRouterKind::query_norm && h.kind != HeadSelection::moh)
        return bad("model.attention.heads.router", "query_norm chooses routed heads: it needs heads.kind=moh");
    if (h.router != HeadRouterKind::learned && h.head_bias)
        return bad("model.attention.heads.head_bias", "balances a learned head router; query_norm and experts have none");
    if (a.out_bias && !a.use_wo) return bad("model.attention.out_bias", "is added after W_O: it needs attention.use_wo");
    if (h.router == HeadRouterKind::experts) {
        if (h.kind != HeadSelection::moh || h.n_shared != 0)
            return bad("model.attention.heads.router", "experts routes every head: it needs heads.kind=moh and n_shared=0");
        if (!in(h.n_experts, 1, m.n_heads) || m.n_heads % h.n_experts != 0)
            return bad("model.attention.heads.n_experts", "must divide n_heads (" + std::to_string(m.n_heads) + "), got " + std::to_string(h.n_experts));
        const int per = m.n_heads / h.n_experts;
        if (h.n_active_routed % per != 0)
            return bad("model.attention.heads.n_active_routed", "must be a multiple of the heads per expert (" + std::to_string(per) + "), got " + std::to_string(h.n_active_routed));
    }
    if (!(h.bias_update_rate >= 0 && h.bias_update_rate < 1))
        return bad("model.attention.heads.bias_update_rate", "must be in [0, 1)");
    return Status::ok();
}

// The engine-routing keys (docs/routing-math.md §12): which routings each one applies to.
Status validate_engine_routing(const MoeConfig& e) {
    const bool token_choice = e.routing == MoeRouting::topk || e.routing == MoeRouting::top1_capacity;
    if (e.score_function == ScoreFunction::sigmoid && !token_choice)
        return bad("model.moe.score_function", "sigmoid needs routing topk or top1_capacity, got " +
                                                   std::string(moe_routing_name(e.routing)));
    if (e.expert_bias && !token_choice)
        return bad("model.moe.expert_bias", "needs routing topk or top1_capacity (expert choice is balanced by "
                                            "construction; noisy top-k balances with its noise), got " +
                                                std::string(moe_routing_name(e.routing)));
    if (e.load_balancing != LoadBalancing::aux_loss && e.load_balancing != LoadBalancing::none &&
        e.routing == MoeRouting::expert_choice)
        return bad("model.moe.load_balancing", "expert_choice takes aux_loss or none (its load is fixed)");
    if (!in(e.global_aux_window, 1, 4096)) return bad("model.moe.global_aux_window", "must be in 1..4096 steps");
    if (!in(e.n_groups, 1, e.n_experts) || e.n_experts % e.n_groups != 0)
        return bad("model.moe.n_groups", "must divide n_experts (" + std::to_string(e.n_experts) + "), got " +
                                             std::to_string(e.n_groups));
    if (e.group_topk != 0) {
        if (!token_choice) return bad("model.moe.group_topk", "needs routing topk or top1_capacity");
        if (e.n_groups < 2) return bad("model.moe.group_topk", "needs model.moe.n_groups >= 2 (experts in groups)");
        if (!in(e.group_topk, 1, e.n_groups))
            return bad("model.moe.group_topk", "must be 0 (off) or in 1..n_groups (" + std::to_string(e.n_groups) +
                                                   "), got " + std::to_string(e.group_topk));
        const int per_group = e.n_experts / e.n_groups, K = e.routing == MoeRouting::top1_capacity ? 1 : e.top_k;
        if (K % e.group_topk != 0 || K > e.group_topk * per_group)
            return bad("model.moe.group_topk", "must divide top_k (" + std::to_string(K) +
                                                   ": each kept group scores its top top_k/group_topk experts) and "
                                                   "the kept groups must hold top_k experts, got " +
                                                   std::to_string(e.group_topk));
    }
    if (!(e.topk_scaling_factor > 0 && e.topk_scaling_factor <= 100))
        return bad("model.moe.topk_scaling_factor", "must be in (0, 100] (1 = off)");
    if (!(e.bias_update_rate >= 0 && e.bias_update_rate < 1)) return bad("model.moe.bias_update_rate", "must be in [0, 1)");
    return Status::ok();
}

// The routing interventions of experiments on a frozen model (config.h, MoeConfig::masked_experts).
Status validate_interventions(const ModelConfig& m) {
    const auto& e = m.moe;
    std::vector<std::pair<int, int>> list;  // (layer or -1, expert)
    if (!config_masks_each(e.masked_experts, [&](int l, int x) { list.push_back({l, x}); }))
        return bad("model.moe.masked_experts", "must be comma-separated experts such as \"3,5\", each optionally for one "
                                               "layer as layer:expert (\"0:3,1:5\"), got \"" + e.masked_experts + "\"");
    std::vector<std::vector<char>> seen(m.n_layers, std::vector<char>(e.n_experts, 0));
    int masked = 0, fewest = e.n_experts;
    for (auto [l, x] : list) {
        if (!in(x, 0, e.n_experts - 1))
            return bad("model.moe.masked_experts", "names expert " + std::to_string(x) + "; experts are 0.." + std::to_string(e.n_experts - 1));
        if (l >= m.n_layers)
            return bad("model.moe.masked_experts", "names layer " + std::to_string(l) + "; layers are 0.." + std::to_string(m.n_layers - 1));
        for (int k = l < 0 ? 0 : l; k < (l < 0 ? m.n_layers : l + 1); k++) seen[k][x] = 1;
        masked++;
    }
    for (const auto& row : seen) fewest = std::min(fewest, e.n_experts - (int)std::count(row.begin(), row.end(), 1));
    if (fewest < e.top_k)
        return bad("model.moe.masked_experts", "leaves " + std::to_string(fewest) + " experts for top_k " +
                                                   std::to_string(e.top_k) + ": mask fewer or lower model.moe.top_k");
    if (masked > 0 && (e.routing != MoeRouting::topk || e.kind != FfnRouting::moe))
        return bad("model.moe.masked_experts", "applies to token-choice top-k routing only (routing topk, moe.kind=moe)");
    if (!(e.inference_capacity_factor >= 0 && e.inference_capacity_factor <= 64))
        return bad("model.moe.inference_capacity_factor", "must be 0 (no capacity) or in (0, 64]");
    if (e.inference_capacity_factor > 0 && e.routing != MoeRouting::topk)
        return bad("model.moe.inference_capacity_factor", "applies to routing topk only (top1_capacity and expert_choice have their own)");
    return Status::ok();
}

// The sparse-FFN settings Hugging Face checkpoints carry (docs/hf-models.md).
Status validate_hf_moe(const ModelConfig& m) {
    const auto& e = m.moe;
    if (e.topk_weights != TopkWeights::automatic &&
        (e.routing != MoeRouting::topk || e.score_function != ScoreFunction::softmax))
        return bad("model.moe.topk_weights", "applies to softmax top-k routing only (routing topk, score_function softmax)");
    if (!in(e.d_ff_shared, 0, 65536)) return bad("model.moe.d_ff_shared", "must be 0 (= d_ff_expert) or in 1..65536");
    if (e.shared_expert_gate && (e.n_shared_experts == 0 || e.kind != FfnRouting::moe))
        return bad("model.moe.shared_expert_gate", "needs shared experts (model.moe.n_shared_experts > 0) and moe.kind=moe");
    std::vector<int> list;
    if (!parse_layer_list(e.dense_layers, list))
        return bad("model.moe.dense_layers", "must be comma-separated layer indices such as \"0,3\", got \"" + e.dense_layers + "\"");
    for (int l : list)
        if (!in(l, 0, m.n_layers - 1))
            return bad("model.moe.dense_layers", "names layer " + std::to_string(l) + "; layers are 0.." + std::to_string(m.n_layers - 1));
    return validate_interventions(m);
}

Status validate_moe(const ModelConfig& m) {
    const auto& e = m.moe;
    if (e.kind != FfnRouting::dense) {
        if (m.ffn.kind != FfnKind::swiglu) return bad("model.ffn.kind", "must be swiglu with a sparse FFN (experts are SwiGLU FFNs)");
        if (!in(e.n_experts, 1, 1024)) return bad("model.moe.n_experts", "must be in 1..1024, got " + std::to_string(e.n_experts));
        if (!in(e.top_k, 1, e.n_experts))
            return bad("model.moe.top_k", "must be in 1..n_experts (" + std::to_string(e.n_experts) + "), got " + std::to_string(e.top_k));
        if (e.routing == MoeRouting::top1_capacity && e.top_k != 1)
            return bad("model.moe.top_k", "must be 1 for top1_capacity routing (Switch)");

        if (!in(e.n_shared_experts, 0, 64)) return bad("model.moe.n_shared_experts", "must be in 0..64");
        if (!in(e.d_ff_expert, 1, 65536)) return bad("model.moe.d_ff_expert", "must be in 1..65536, got " + std::to_string(e.d_ff_expert));
        if (e.kind == FfnRouting::mh_moe && (!in(e.n_heads, 1, m.d_model) || m.d_model % e.n_heads != 0))
            return bad("model.moe.n_heads", "must divide d_model (" + std::to_string(m.d_model) + "), got " + std::to_string(e.n_heads));
        if (Status s = validate_engine_routing(e); !s) return s;
        if (Status s = validate_hf_moe(m); !s) return s;
    }
    if (!(e.capacity_factor > 0 && e.capacity_factor <= 64)) return bad("model.moe.capacity_factor", "must be in (0, 64]");
    if (!(e.aux_weight >= 0 && e.aux_weight < 10)) return bad("model.moe.aux_weight", "must be in [0, 10)");
    if (!(e.z_loss_weight >= 0 && e.z_loss_weight < 10)) return bad("model.moe.z_loss_weight", "must be in [0, 10)");
    if (!(e.jitter >= 0 && e.jitter < 10)) return bad("model.moe.jitter", "must be in [0, 10)");
    return Status::ok();
}

Status validate_train(const TrainConfig& t) {
    if (!in(t.steps, 0, 100000000)) return bad("train.steps", "must be >= 0");
    if (!in(t.batch_size, 1, 4096)) return bad("train.batch_size", "must be in 1..4096, got " + std::to_string(t.batch_size));
    if (!(t.lr > 0 && t.lr < 10)) return bad("train.lr", "must be in (0, 10)");
    if (!(t.min_lr >= 0 && t.min_lr <= t.lr)) return bad("train.min_lr", "must be in [0, lr]");
    if (t.warmup_steps < 0) return bad("train.warmup_steps", "must be >= 0");
    if (!(t.weight_decay >= 0 && t.weight_decay < 1)) return bad("train.weight_decay", "must be in [0, 1)");
    if (!(t.beta1 >= 0 && t.beta1 < 1)) return bad("train.beta1", "must be in [0, 1)");
    if (!(t.beta2 >= 0 && t.beta2 < 1)) return bad("train.beta2", "must be in [0, 1)");
    if (!(t.eps > 0)) return bad("train.eps", "must be > 0");
    if (!(t.grad_clip >= 0)) return bad("train.grad_clip", "must be >= 0 (0 turns clipping off)");
    if (t.eval_every < 1) return bad("train.eval_every", "must be >= 1");
    if (t.eval_batches < 1) return bad("train.eval_batches", "must be >= 1");
    if (!(t.init_std > 0 && t.init_std < 1)) return bad("train.init_std", "must be in (0, 1)");
    return Status::ok();
}

Status validate_data(const DataConfig& d) {
    if (d.tokenizer != "auto" && d.tokenizer != "word" && d.tokenizer != "bpe" && d.tokenizer != "unigram")
        return bad("data.tokenizer", "is \"" + d.tokenizer + "\"; allowed: auto, word, bpe, unigram");
    if (d.vocab_size != 0 && !in(d.vocab_size, 16, 1000000))
        return bad("data.vocab_size", "must be 0 (sized to the text) or in 16..1000000, got " + std::to_string(d.vocab_size));
    if (d.corpus.empty()) return bad("data.corpus", "must be \"embedded\" or a path to a .txt or .json file");
    if (!in(d.synthetic_docs, 0, 10000000)) return bad("data.synthetic_docs", "must be >= 0");
    if (!(d.val_fraction > 0 && d.val_fraction < 0.5f)) return bad("data.val_fraction", "must be in (0, 0.5)");
    return Status::ok();
}

}  // namespace

// In order, each part only when the ones before passed (later rules divide by earlier sizes).
Status config_validate(const Config& c) {
    Status s = validate_dims(c.model);
    if (s) s = validate_positions_and_window(c.model);
    if (s) s = validate_heads(c.model);
    if (s) s = validate_moe(c.model);
    if (s) s = validate_train(c.train);
    if (s) s = validate_data(c.data);
    return s;
}

}  // namespace rl
