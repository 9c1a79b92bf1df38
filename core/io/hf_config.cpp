// config.json of a Hugging Face model folder -> the one ModelConfig (docs/hf-models.md, "Settings").
// Each architecture's keys follow its configuration_<arch>.py in transformers; what its modeling file
// does differently becomes a model setting (multipliers, QK-norm, biases, shared-expert gate, dense
// layers, top-k weights), never a second forward.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/hf_model.h"
#include "io/hf_model_internal.h"

namespace rl {
using json = nlohmann::json;
namespace fs = std::filesystem;

const std::vector<std::string>& hf_supported_architectures() {
    static const std::vector<std::string> a = {"LlamaForCausalLM",    "MixtralForCausalLM", "GraniteMoeForCausalLM",
                                               "OlmoeForCausalLM",    "Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM",
                                               "JetMoeForCausalLM",   "JetMoEForCausalLM"};
    return a;
}

bool hf_is_model_dir(const std::string& path) {
    std::error_code ec;
    return fs::is_directory(path, ec) && fs::is_regular_file(fs::path(path) / "config.json", ec);
}

namespace {
struct TooDeep {};
}  // namespace

Result<json> hf_json_read(const std::string& path, const std::string& what_to_do) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status::error("'" + path + "': cannot open it; " + what_to_do);
    std::stringstream ss;
    ss << in.rdbuf();
    try {  // real files nest 4 deep; the cap keeps "[[[[..." from exhausting the stack
        return json::parse(ss.str(), [](int depth, json::parse_event_t, json&) {
            if (depth > 16) throw TooDeep{};
            return true;
        });
    } catch (...) {
        return Status::error("'" + path + "': not valid JSON; " + what_to_do);
    }
}

std::string hf_json_short(const json& v) {
    std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
    return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

namespace {

// Typed reads of config.json keys; the first bad one is kept in `err`.
struct Keys {
    const json& j;
    std::string file;
    Status err = Status::ok();
    bool has(const char* k) const { return j.contains(k) && !j[k].is_null(); }
    void fail(const char* k, const char* want) {
        if (err) err = Status::error("'" + file + "': '" + k + "' must be " + want + ", got " + hf_json_short(j[k]) +
                                     "; fix config.json or download it again");
    }
    int integer(const char* k, int dflt) {
        if (!has(k)) return dflt;
        if (!j[k].is_number_integer() || j[k].get<long long>() < 0 || j[k].get<long long>() > (1LL << 31) - 1) {
            fail(k, "a whole number");
            return dflt;
        }
        return j[k].get<int>();
    }
    int required(const char* k) {
        if (!has(k) && err) err = Status::error("'" + file + "': '" + k + "' is missing; download config.json again");
        return integer(k, 0);
    }
    double number(const char* k, double dflt) {
        if (!has(k)) return dflt;
        if (!j[k].is_number()) {
            fail(k, "a number");
            return dflt;
        }
        return j[k].get<double>();
    }
    bool boolean(const char* k, bool dflt) {
        if (!has(k)) return dflt;
        if (!j[k].is_boolean()) {
            fail(k, "true or false");
            return dflt;
        }
        return j[k].get<bool>();
    }
    std::string string(const char* k) { return has(k) && j[k].is_string() ? j[k].get<std::string>() : ""; }
};

}  // namespace

HfFamily hf_family(const std::string& arch) {
    if (arch == "LlamaForCausalLM") return HfFamily::llama;
    if (arch == "MixtralForCausalLM") return HfFamily::mixtral;
    if (arch == "GraniteMoeForCausalLM") return HfFamily::granitemoe;
    if (arch == "OlmoeForCausalLM") return HfFamily::olmoe;
    if (arch == "Qwen2MoeForCausalLM") return HfFamily::qwen2moe;
    // transformers' class, and the original myshell-ai/JetMoE's name that published config.json files carry
    if (arch == "JetMoeForCausalLM" || arch == "JetMoEForCausalLM") return HfFamily::jetmoe;
    return HfFamily::qwen3moe;
}

namespace {

// Settings this lab does not run yet, refused by name rather than run wrong.
Status refuse_unsupported(Keys& k, HfFamily f) {
    const std::string pre = "'" + k.file + "': ";
    auto no = [&](const std::string& what) { return Status::error(pre + what + "; RouteLab cannot run this model yet"); };
    if (k.string("hidden_act") != "" && k.string("hidden_act") != "silu")
        return no("hidden_act is \"" + k.string("hidden_act") + "\" (only silu)");
    if (f == HfFamily::olmoe && k.has("clip_qkv")) return no("clip_qkv is set");
    if (f == HfFamily::jetmoe) {  // the original JetMoEConfig's switches (transformers' JetMoeConfig has neither)
        if (k.string("activation_function") != "" && k.string("activation_function") != "silu")
            return no("activation_function is \"" + k.string("activation_function") + "\" (only silu)");
        if (!k.boolean("glu", true)) return no("glu is false (only the gated MLP)");
    }
    if (f != HfFamily::qwen2moe && k.boolean("attention_bias", false)) return no("attention_bias is true (biases on q/k/v/o)");
    if (k.boolean("mlp_bias", false)) return no("mlp_bias is true");
    // A window at least the lab's context (4096) never masks a key here.
    if (k.has("sliding_window") && (f == HfFamily::mixtral || k.boolean("use_sliding_window", false)) &&
        !(k.j["sliding_window"].is_number_integer() && k.j["sliding_window"].get<long long>() >= 4096))
        return no("a sliding window is set (sliding_window " + hf_json_short(k.j["sliding_window"]) + ")");
    if (const int L = k.integer("num_hidden_layers", 0); L > 64)  // the config's limit, said in the model's terms
        return Status::error(pre + "RouteLab opens models of at most 64 layers; this one has " + std::to_string(L));
    return Status::ok();
}

// A refusal of config_validate's, which names RouteLab's key ("config: 'model.d_model' must be in
// 1..8192, got 16384"), said with config.json's name for it (hidden_size) first.
std::string in_config_terms(const std::string& msg, HfFamily f) {
    const bool local = f == HfFamily::mixtral || f == HfFamily::granitemoe || f == HfFamily::jetmoe;
    const bool qwen = f == HfFamily::qwen2moe || f == HfFamily::qwen3moe, jet = f == HfFamily::jetmoe;
    const std::pair<const char*, const char*> names[] = {
        {"model.d_model", "hidden_size"}, {"model.n_layers", "num_hidden_layers"},
        {"model.n_heads", jet ? "num_key_value_heads x num_local_experts" : "num_attention_heads"},
        {"model.n_kv_heads", "num_key_value_heads"}, {"model.head_dim", jet ? "kv_channels" : "head_dim"},
        {"model.vocab_size", "vocab_size"}, {"model.ffn.d_ff", jet ? "intermediate_size (ffn_hidden_size)" : "intermediate_size"},
        {"model.moe.d_ff_expert", qwen ? "moe_intermediate_size" : "intermediate_size"},
        {"model.moe.n_experts", local ? "num_local_experts" : "num_experts"}, {"model.moe.top_k", "num_experts_per_tok"},
        {"model.moe.d_ff_shared", "shared_expert_intermediate_size"}, {"model.norm_eps", "rms_norm_eps"},
        {"model.attention.rope_theta", "rope_theta"}, {"model.attention.heads.n_experts", "num_local_experts"},
        {"model.attention.heads.n_active_routed", "num_key_value_heads x num_experts_per_tok"},
        {"model.attention.rope_scaling.original_max_positions", "rope_scaling's original_max_position_embeddings"},
        {"model.attention.rope_scaling.", "rope_scaling's "}};
    for (const auto& [ours, theirs] : names) {
        const size_t at = msg.find("'" + std::string(ours));
        if (at == std::string::npos) continue;
        const size_t end = msg.find('\'', at + 1);
        const std::string key = msg.substr(at + 1, end - at - 1), rest = end == std::string::npos ? "" : msg.substr(end + 1);
        const std::string hf = theirs + key.substr(std::string(ours).size());
        return hf + " (RouteLab's " + key + ")" + rest + "; RouteLab cannot run this model yet";
    }
    return msg;
}

// rope_theta, and rope_scaling (transformers 4.x) or rope_parameters (5.x, which also holds rope_theta):
// the default RoPE or Llama 3.1+'s rescaled frequencies (modeling_rope_utils.py
// _compute_llama3_parameters, whose four keys are required there too); other types are refused by name.
Status read_rope(Keys& k, HfFamily f, AttentionConfig& a) {
    a.rope_theta = (float)k.number("rope_theta", f == HfFamily::mixtral ? 1e6 : 10000.0);  // MixtralConfig: 1e6
    for (const char* key : {"rope_scaling", "rope_parameters"}) {
        if (!k.has(key)) continue;
        const json& r = k.j[key];
        Keys rk{r, k.file};
        std::string type = r.is_object() ? rk.string("rope_type") : "";
        if (type.empty() && r.is_object()) type = rk.string("type");
        if (type == "llama3") {
            for (const char* need : {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"})
                if (!rk.has(need))
                    return Status::error("'" + k.file + "': " + key + " of type llama3 has no '" + need +
                                         "'; download config.json again");
            RopeScalingConfig& rs = a.rope_scaling;
            rs.kind = RopeScaling::llama3;
            rs.factor = (float)rk.number("factor", rs.factor);
            rs.low_freq_factor = (float)rk.number("low_freq_factor", rs.low_freq_factor);
            rs.high_freq_factor = (float)rk.number("high_freq_factor", rs.high_freq_factor);
            rs.original_max_positions = rk.integer("original_max_position_embeddings", rs.original_max_positions);
        } else if (type != "default") {
            return Status::error("'" + k.file + "': " + key + " " + hf_json_short(r) +
                                 " is set (RoPE default or llama3 only); RouteLab cannot run this model yet");
        }
        a.rope_theta = (float)rk.number("rope_theta", a.rope_theta);
        if (!rk.err) return rk.err;
    }
    return Status::ok();
}

// Qwen2MoeDecoderLayer.__init__ / Qwen3MoeDecoderLayer.__init__: layer l is sparse when it is not in
// mlp_only_layers and (l + 1) % decoder_sparse_step == 0.
std::string qwen_dense_layers(Keys& k, int L) {
    const int step = std::max(1, k.integer("decoder_sparse_step", 1));
    std::vector<int> only;
    if (k.has("mlp_only_layers") && k.j["mlp_only_layers"].is_array())
        for (const json& v : k.j["mlp_only_layers"])
            if (v.is_number_integer()) only.push_back(v.get<int>());
    std::string out;
    for (int l = 0; l < L; l++)
        if (std::count(only.begin(), only.end(), l) || (l + 1) % step != 0)
            out += (out.empty() ? "" : ",") + std::to_string(l);
    return out;
}

void moe_settings(Keys& k, HfFamily f, ModelConfig& m) {
    MoeConfig& e = m.moe;
    e.kind = FfnRouting::moe;
    e.routing = MoeRouting::topk;
    e.score_function = ScoreFunction::softmax;
    e.aux_weight = 0;  // inference: the losses are not trained
    e.z_loss_weight = 0;
    const bool local = f == HfFamily::mixtral || f == HfFamily::granitemoe;
    e.n_experts = k.required(local ? "num_local_experts" : "num_experts");
    e.top_k = k.required("num_experts_per_tok");
    // Mixtral and Granite: intermediate_size is each expert's width; OLMoE's too; the Qwens' is the dense FFN's.
    e.d_ff_expert = f == HfFamily::qwen2moe || f == HfFamily::qwen3moe ? k.required("moe_intermediate_size")
                                                                       : m.ffn.d_ff;
    // MixtralSparseMoeBlock always renormalises; GraniteMoeTopKGating softmaxes the top-k logits (the same
    // weights); OLMoE and the Qwens read norm_topk_prob (false by default in their configuration files).
    const bool renorm = f == HfFamily::mixtral || f == HfFamily::granitemoe || k.boolean("norm_topk_prob", false);
    e.topk_weights = renorm ? TopkWeights::renormalised : TopkWeights::probs;
    if (f == HfFamily::qwen2moe && k.integer("shared_expert_intermediate_size", 0) > 0) {
        e.n_shared_experts = 1;
        e.d_ff_shared = k.integer("shared_expert_intermediate_size", 0);
        e.shared_expert_gate = true;
    }
    if (f == HfFamily::qwen2moe || f == HfFamily::qwen3moe) e.dense_layers = qwen_dense_layers(k, m.n_layers);
}

void family_settings(Keys& k, HfFamily f, ModelConfig& m) {
    if (f == HfFamily::granitemoe) {  // GraniteMoeModel / GraniteMoeAttention / GraniteMoeForCausalLM
        m.embedding_multiplier = (float)k.number("embedding_multiplier", 1.0);
        m.residual_multiplier = (float)k.number("residual_multiplier", 1.0);
        m.logits_scaling = (float)k.number("logits_scaling", 1.0);
        m.attention.scale = (float)k.number("attention_multiplier", 1.0);  // GraniteMoeConfig's default
    }
    if (f == HfFamily::olmoe) m.attention.qk_norm = QkNorm::full;  // OlmoeAttention: q_norm over H*D
    if (f == HfFamily::qwen3moe) m.attention.qk_norm = QkNorm::head;  // Qwen3MoeAttention: q_norm over D
    if (f == HfFamily::qwen2moe) m.attention.qkv_bias = k.boolean("qkv_bias", true);  // Qwen2MoeAttention: bias=True
    if (f != HfFamily::llama) moe_settings(k, f, m);
}

// JetMoE (docs/hf-models.md, "JetMoE"): transformers' JetMoeConfig keys, each falling back to the name
// the original myshell-ai/JetMoE config carries (published config.json files use those), then to
// JetMoeConfig's default. Its mixture of attention heads is the one model's MoH with the experts
// router: E experts of KV query heads each (kv_channels wide) are E*KV heads, k*KV of them on per
// token (the checkpoint's heads are reordered at load, hf_model.cpp). The two RMSNorms of a layer are
// built without eps (JetMoeRMSNorm's 1e-6); only model.norm reads rms_norm_eps.
void jetmoe_settings(Keys& k, ModelConfig& m) {
    auto either = [&](const char* key, const char* original, int dflt) {
        return k.has(key) ? k.integer(key, dflt) : k.integer(original, dflt);
    };
    const int KV = k.integer("num_key_value_heads", 16), E = either("num_local_experts", "moe_num_experts", 8);
    const int top = either("num_experts_per_tok", "moe_top_k", 2);
    m.n_kv_heads = KV;
    m.n_heads = E * KV;
    m.head_dim = k.integer("kv_channels", 128);
    m.ffn.d_ff = either("intermediate_size", "ffn_hidden_size", 5632);
    m.norm_eps = 1e-6f;
    m.final_norm_eps = (float)k.number("rms_norm_eps", 1e-6);
    m.tie_embeddings = k.boolean("tie_word_embeddings", true);
    HeadsConfig& h = m.attention.heads;
    h.kind = HeadSelection::moh;
    h.router = HeadRouterKind::experts;
    h.n_shared = 0;
    h.n_experts = E;
    h.n_active_routed = top * KV;
    h.beta = 0;  // inference: the balance loss is not trained
    const bool bias = k.boolean("bias", true);  // transformers' modules always have both biases
    m.attention.out_bias = bias;
    MoeConfig& e = m.moe;
    e.kind = FfnRouting::moe;
    e.routing = MoeRouting::topk;
    e.score_function = ScoreFunction::softmax;
    e.aux_weight = 0;
    e.z_loss_weight = 0;
    e.n_experts = E;
    e.top_k = top;
    e.d_ff_expert = m.ffn.d_ff;
    e.topk_weights = TopkWeights::renormalised;  // JetMoeTopKGating: softmax over the top-k logits
    e.out_bias = bias;
}

// SkyworkAI's MoH-LLaMA3 (Chat-UniVi/MoH-LLaMA3-8B): a plain Llama config.json whose auto_map points at
// the folder's own modeling_llama.py, which routes heads by their query norms with counts fixed in that
// file (half the heads shared, a quarter routed; docs/hf-models.md). The folder is recognised by that
// file naming both counts; dense Llama otherwise. *rule gets what was found, for the model's description.
void moh_llama3_settings(const std::string& dir, Keys& k, ModelConfig& m, std::string* rule) {
    if (!k.has("auto_map")) return;
    std::ifstream in(fs::path(dir) / "modeling_llama.py");
    if (!in) return;
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string code = ss.str();
    if (code.find("shared_head") == std::string::npos || code.find("routed_head") == std::string::npos) return;
    HeadsConfig& h = m.attention.heads;
    h.kind = HeadSelection::moh;
    h.router = HeadRouterKind::query_norm;
    h.n_shared = m.n_heads / 2;
    h.n_active_routed = m.n_heads / 4;
    *rule = "MoH-LLaMA3 head routing (its modeling_llama.py): heads 0.." + std::to_string(h.n_shared - 1) +
            " always on, " + std::to_string(h.n_active_routed) + " of the other " + std::to_string(m.n_heads - h.n_shared) +
            " per token by query norm";
}

// A token id key: a number, or a list whose first entry is taken (Llama 3.x Instruct lists its end
// tokens); -1 when absent or outside the vocabulary.
int token_id_of(const json& j, const char* key, int V) {
    if (!j.contains(key)) return -1;
    const json& v = j[key].is_array() && !j[key].empty() ? j[key][0] : j[key];
    if (!v.is_number_integer() || v.get<long long>() < 0 || v.get<long long>() >= V) return -1;
    return v.get<int>();
}

}  // namespace

Result<Config> hf_config_read(const std::string& dir, HfModelInfo* info) {
    const std::string file = (fs::path(dir) / "config.json").string();
    if (!hf_is_model_dir(dir))
        return Status::error("'" + dir + "': not a model folder (no config.json); pass the folder you downloaded from the "
                             "Hugging Face hub");
    auto j = hf_json_read(file, "download config.json again");
    if (!j) return j.status;
    if (!j->is_object()) return Status::error("'" + file + "': not a JSON object; download config.json again");
    Keys k{*j, file};
    std::string arch;
    if (j->contains("architectures") && (*j)["architectures"].is_array() && !(*j)["architectures"].empty() &&
        (*j)["architectures"][0].is_string())
        arch = (*j)["architectures"][0].get<std::string>();
    const auto& sup = hf_supported_architectures();
    if (std::find(sup.begin(), sup.end(), arch) == sup.end()) {
        std::string list;
        for (const auto& a : sup) list += (list.empty() ? "" : ", ") + a;
        return Status::error("'" + file + "': architecture \"" + (arch.empty() ? k.string("model_type") : arch) +
                             "\" is not supported; RouteLab opens " + list);
    }
    const HfFamily f = hf_family(arch);
    if (Status s = refuse_unsupported(k, f); !s) return s;
    Config cfg;
    cfg.name = arch + " " + fs::path(dir).filename().string();
    cfg.description = "Hugging Face model opened from " + dir;
    ModelConfig& m = cfg.model;
    m.vocab_size = k.required("vocab_size");
    m.d_model = k.required("hidden_size");
    m.n_layers = k.required("num_hidden_layers");
    if (f != HfFamily::jetmoe) {
        m.n_heads = k.required("num_attention_heads");
        m.n_kv_heads = k.integer("num_key_value_heads", m.n_heads);
        m.head_dim = k.integer("head_dim", m.n_heads > 0 ? m.d_model / m.n_heads : 0);
        m.ffn.d_ff = k.required("intermediate_size");
    }
    m.ffn.kind = FfnKind::swiglu;
    m.norm = NormKind::rmsnorm;
    m.norm_position = NormPosition::pre;
    // The configuration classes' defaults where a file leaves a key out (MixtralConfig, OlmoeConfig: 1e-5).
    const bool eps5 = f == HfFamily::mixtral || f == HfFamily::olmoe;
    m.norm_eps = (float)k.number("rms_norm_eps", eps5 ? 1e-5 : 1e-6);
    m.final_norm = true;
    m.tie_embeddings = k.boolean("tie_word_embeddings", false);
    const int max_pos = k.integer("max_position_embeddings", 4096);
    m.seq_len = std::clamp(max_pos, 2, 4096);  // the probe's and generation's context, within the lab's limit
    m.attention.use_wo = true;
    m.attention.positional = PosKind::rope;
    if (Status st = read_rope(k, f, m.attention); !st) return st;
    m.attention.heads.kind = HeadSelection::all_heads;
    m.moe.kind = FfnRouting::dense;
    if (f == HfFamily::jetmoe) jetmoe_settings(k, m);
    else family_settings(k, f, m);
    if (f == HfFamily::jetmoe && k.has("num_attention_heads") &&
        k.integer("num_attention_heads", 0) != m.attention.heads.n_active_routed)
        return Status::error("'" + file + "': num_attention_heads " + hf_json_short(k.j["num_attention_heads"]) +
                             " is not num_key_value_heads x num_experts_per_tok (" +
                             std::to_string(m.attention.heads.n_active_routed) +
                             "), as JetMoE's attention experts make it; fix config.json or download it again");
    std::string head_rule;
    if (f == HfFamily::llama) moh_llama3_settings(dir, k, m, &head_rule);
    if (!head_rule.empty()) cfg.description += "; " + head_rule;
    if (!k.err) return k.err;
    if (Status s = config_validate(cfg); !s) return Status::error("'" + file + "': " + in_config_terms(s.msg, f));
    if (info) {
        info->dir = dir;
        info->architecture = arch;
        info->max_positions = max_pos;
        info->bos_id = token_id_of(*j, "bos_token_id", m.vocab_size);
        info->eos_id = token_id_of(*j, "eos_token_id", m.vocab_size);
        // What config.json says the weights are (transformers 5 writes "dtype"); the shards' own headers
        // decide once they are read (hf_model_open).
        for (const char* key : {"dtype", "torch_dtype"})
            if (auto it = j->find(key); it != j->end() && it->is_string() && info->dtype.empty()) {
                const std::string d = it->get<std::string>();
                info->dtype = d == "bfloat16" ? "BF16" : d == "float16" ? "F16" : d == "float32" ? "F32" : "";
            }
        for (const char* t : {"tokenizer.json", "tokenizer.model"})
            if (std::error_code ec; info->tokenizer_path.empty() && fs::is_regular_file(fs::path(dir) / t, ec))
                info->tokenizer_path = (fs::path(dir) / t).string();
    }
    return cfg;
}

}  // namespace rl
