#include "io/export.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "io/safetensors.h"
#include "layers/moe_router.h"

namespace rl {

namespace {

bool sparse(const ModelConfig& m) { return m.moe.kind != FfnRouting::dense; }
// The router's own rules (model_moe_dims, moe_renormalised), not a copy: K per token, and whether the
// softmax weights are renormalised over the selected logits (else the plain p).
int routed_k(const ModelConfig& m) { return model_moe_dims(m, 1, false, 0).K; }
bool renormalised(const ModelConfig& m) { return moe_renormalised(model_moe_dims(m, 1, false, 0)); }
std::string num(double v) {
    std::ostringstream s;
    s << v;
    return s.str();
}
// A float config value as the decimal a user wrote (1e-05, not 9.999999747378752e-06) for JSON.
double dec(float v) { return std::stod(num(v)); }

}  // namespace

std::vector<std::string> export_unmapped(const ModelConfig& m, const std::string& engine) {
    std::vector<std::string> u;
    const bool hf = engine == "hf";
    const auto& a = m.attention;
    const auto& e = m.moe;
    if (a.heads.kind == HeadSelection::moh)
        u.push_back("model.attention.heads.kind=moh: Mixture-of-Heads routing (per-token head gates, shared and routed "
                    "heads, balance weight beta) has no equivalent; the export is a model with every head on");
    if (a.heads.kind == HeadSelection::static_pruning)
        u.push_back("model.attention.heads.kind=static_pruning: only heads 0.." + std::to_string(a.heads.n_active - 1) +
                    " are on here; the engine runs every head");
    if (a.heads.router == HeadRouterKind::query_norm)
        u.push_back("model.attention.heads.router=query_norm: MoH-LLaMA3's rule (heads chosen by their query norms) "
                    "lives in that model's own modeling file; a plain engine runs every head");
    if (a.heads.router == HeadRouterKind::experts)
        u.push_back("model.attention.heads.router=experts: JetMoE's mixture of attention heads (top-k attention experts) "
                    "has no equivalent in a plain engine; every head runs");
    if (a.out_bias) u.push_back("model.attention.out_bias: the engine's attention output projection has no bias");
    if (sparse(m) && e.out_bias) u.push_back("model.moe.out_bias: the engine's MoE block adds no output bias");
    if (m.final_norm_eps != 0.f && m.final_norm_eps != m.norm_eps)
        u.push_back("model.final_norm_eps: the engine uses one epsilon (norm_eps) for every RMSNorm");
    if (a.heads.head_bias) u.push_back("model.attention.heads.head_bias: aux-loss-free head balancing is RouteLab's own");
    if (a.positional == PosKind::cope)
        u.push_back("model.attention.positional=cope: contextual position encoding has no equivalent; use rope");
    if (hf && a.positional == PosKind::learned)
        u.push_back("model.attention.positional=learned: Llama/Mixtral use RoPE only");
    if (hf && a.positional == PosKind::none) u.push_back("model.attention.positional=none: Llama/Mixtral always apply RoPE");
    if (a.window.kind != WindowKind::full)
        u.push_back(std::string("model.attention.window.kind=") +
                    (a.window.kind == WindowKind::sliding ? "sliding" : "adaptive") +
                    ": the attention window is not exported (the engine attends to the full causal context)");
    if (!a.use_wo)
        u.push_back("model.attention.use_wo=false: no output projection here; the engine's has one (an identity "
                    "matrix in exported weights)");
    if (m.norm_position == NormPosition::post) u.push_back("model.norm_position=post: the engines here are pre-norm");
    if (hf && m.norm == NormKind::layernorm) u.push_back("model.norm=layernorm: Llama/Mixtral use RMSNorm");
    if (!m.final_norm) u.push_back("model.final_norm=false: the engine always normalises before the LM head");
    if (m.lm_head_bias) u.push_back("model.lm_head_bias: the engine's LM head has no bias");
    if (!sparse(m) && (hf ? m.ffn.kind != FfnKind::swiglu : m.ffn.kind == FfnKind::relu))
        u.push_back(std::string("model.ffn.kind=") + ffn_kind_name(m.ffn.kind) +
                    (hf ? ": Llama's MLP is SwiGLU" : ": Megatron-Core's dense FFN is GeLU or SwiGLU"));
    if (!sparse(m)) return u;
    if (e.kind == FfnRouting::mh_moe)
        u.push_back("model.moe.kind=mh_moe: multi-head MoE (sub-tokens, head and merge layers) has no equivalent; "
                    "exported as a plain MoE over whole tokens");
    if (e.routing == MoeRouting::expert_choice)
        u.push_back("model.moe.routing=expert_choice: experts choosing tokens has no equivalent; exported as top-k");
    if (e.routing == MoeRouting::noisy_topk)
        u.push_back("model.moe.routing=noisy_topk: the learned noise projection has no equivalent (moe.jitter is its "
                    "scale, not input jitter)");
    if (e.aux_convention == AuxConvention::hf && !hf)
        u.push_back("model.moe.aux_convention=hf: Megatron-Core's aux loss is the switch form (sum f = 1); the "
                    "coefficient below is multiplied by top_k to give the same loss");
    if (e.load_balancing == LoadBalancing::global_aux_loss)
        u.push_back("model.moe.global_aux_window=" + std::to_string(e.global_aux_window) +
                    ": the engine's global batch (data-parallel ranks x micro-batches) plays the window's part");
    if (hf) {
        if (e.load_balancing != LoadBalancing::aux_loss && e.load_balancing != LoadBalancing::none)
            u.push_back(std::string("model.moe.load_balancing=") + load_balancing_name(e.load_balancing) +
                        ": Hugging Face configs carry one aux-loss coefficient, not its form");
        if (e.routing == MoeRouting::top1_capacity)
            u.push_back("model.moe.routing=top1_capacity: the capacity factor and token drops have no Hugging Face "
                        "config field; Mixtral's renormalised top-1 weight is 1 where Switch's is p");
        if (e.z_loss_weight > 0) u.push_back("model.moe.z_loss_weight: no router z-loss field");
        if (e.expert_bias && e.score_function == ScoreFunction::softmax)
            u.push_back("model.moe.expert_bias with softmax scores: DeepSeek-V3's bias comes with sigmoid scores");
        if (e.score_function == ScoreFunction::softmax && e.n_shared_experts > 0)
            u.push_back("model.moe.n_shared_experts: Qwen2-MoE gates its shared expert with sigmoid(shared_expert_gate x); "
                        "RouteLab's shared experts have weight 1");
        if (e.score_function == ScoreFunction::sigmoid)
            u.push_back("DeepSeek-V3 attention is multi-head latent attention (MLA); the attention exported here is "
                        "plain grouped-query attention, so its q/kv LoRA fields are absent");
    } else {
        if (e.expert_bias && e.score_function == ScoreFunction::softmax)
            u.push_back("model.moe.expert_bias with softmax scores: Megatron-Core applies the expert bias only with "
                        "--moe-router-score-function sigmoid");
        u.push_back("routing losses: RouteLab averages each layer's aux and z losses over the layers; Megatron-Core "
                    "adds every layer's with the coefficient, so the coefficients below are divided by num_layers");
    }
    return u;
}

namespace {

// The cluster's flags (Megatron-Core's arguments.py): EP; with several nodes in the EP group, node-
// limited routing, one group a node, each token to at most ceil(K / 2) nodes (DeepSeek-V3: 8 nodes,
// K 8, 4) and never fewer than its K experts need; a capacity factor and padding where the user chose them.
void megatron_cluster(std::ostringstream& o, const ModelConfig& m, const ExportCluster& c, int K) {
    const auto& e = m.moe;
    if (c.ep > e.n_experts && c.ep % e.n_experts == 0) {  // each expert sliced over ep / E ranks: expert tensor parallelism
        o << "# EP " << c.ep << " exceeds the " << e.n_experts << " experts: each expert is sliced over " << c.ep / e.n_experts
          << " ranks (Megatron-Core's expert tensor parallelism; the cluster cost's split)\n";
        o << "--expert-model-parallel-size " << e.n_experts << "\n--expert-tensor-parallel-size " << c.ep / e.n_experts << "\n";
    } else {
        o << "--expert-model-parallel-size " << c.ep << "\n";
    }
    const int nodes = (c.ep + c.gpus_per_node - 1) / c.gpus_per_node;
    // At least ceil(K / experts a group) groups hold a token's K experts; a reach not below K or the node
    // count limits nothing and is left out.
    const int per_group = nodes > 0 && e.n_experts % nodes == 0 ? e.n_experts / nodes : 0;
    const int reach = per_group ? std::max((K + 1) / 2, (K + per_group - 1) / per_group) : 0;
    if (nodes > 1 && e.group_topk == 0 && per_group && reach < std::min(nodes, K)) {
        o << "# node-limited routing: the EP group spans " << nodes << " nodes, so the experts form " << nodes
          << " groups (one a node) and each token reaches at most " << reach << " of them; RouteLab trained this routing"
          << " without it (model.moe.n_groups=" << nodes << " and group_topk=" << reach << " train it here)\n";
        o << "--moe-router-num-groups " << nodes << "\n--moe-router-group-topk " << reach << "\n";
    }
    if (c.capacity_factor > 0 && e.routing != MoeRouting::top1_capacity) {  // top1_capacity has its own above
        o << "--moe-expert-capacity-factor " << num(c.capacity_factor) << "\n";
        o << "--moe-token-drop-policy probs\n";
    }
    if (c.pad_to_capacity && (c.capacity_factor > 0 || e.routing == MoeRouting::top1_capacity)) o << "--moe-pad-expert-input-to-capacity\n";
}

}  // namespace

std::string export_megatron(const Config& cfg, const ExportCluster& cluster) {
    const ModelConfig& m = cfg.model;
    const auto& a = m.attention;
    const auto& e = m.moe;
    std::ostringstream o;
    o << "# Megatron-Core arguments for RouteLab config '" << cfg.name << "' (routelab-cli export --format megatron)\n";
    const auto unmapped = export_unmapped(m, "megatron");
    for (const auto& s : unmapped) o << "# unmapped: " << s << "\n";
    auto arg = [&](const std::string& k, const std::string& v) { o << "--" << k << " " << v << "\n"; };
    auto flag = [&](const std::string& k) { o << "--" << k << "\n"; };
    arg("num-layers", std::to_string(m.n_layers));
    arg("hidden-size", std::to_string(m.d_model));
    arg("num-attention-heads", std::to_string(m.n_heads));
    arg("kv-channels", std::to_string(m.head_dim));
    if (m.n_kv_heads < m.n_heads) {
        flag("group-query-attention");
        arg("num-query-groups", std::to_string(m.n_kv_heads));
    }
    arg("ffn-hidden-size", std::to_string(m.ffn.d_ff));
    arg("seq-length", std::to_string(m.seq_len));
    arg("max-position-embeddings", std::to_string(m.seq_len));
    arg("vocab-size", std::to_string(m.vocab_size));
    arg("normalization", m.norm == NormKind::rmsnorm ? "RMSNorm" : "LayerNorm");
    arg("norm-epsilon", num(m.norm_eps));
    arg("position-embedding-type", a.positional == PosKind::rope ? "rope"
                                   : a.positional == PosKind::learned ? "learned_absolute" : "none");
    if (a.positional == PosKind::rope) arg("rotary-base", num(a.rope_theta));
    if (sparse(m) || m.ffn.kind == FfnKind::swiglu) flag("swiglu");
    flag("disable-bias-linear");
    if (!m.tie_embeddings) flag("untie-embeddings-and-output-weights");
    if (!sparse(m)) return o.str();
    const int K = routed_k(m);
    const double L = m.n_layers;
    arg("num-experts", std::to_string(e.n_experts));
    arg("moe-router-topk", std::to_string(K));
    arg("moe-router-score-function", score_function_name(e.score_function));
    // Megatron's default softmax takes the top-k of the logits and softmaxes them (RouteLab's renormalised
    // weights); pre-softmax keeps p, RouteLab's weights with shared experts and for Switch.
    if (e.score_function == ScoreFunction::softmax && !renormalised(m)) flag("moe-router-pre-softmax");
    if (e.expert_bias) {
        flag("moe-router-enable-expert-bias");
        arg("moe-router-bias-update-rate", num(e.bias_update_rate));
    }
    arg("moe-router-load-balancing-type", load_balancing_name(e.load_balancing));
    const double aux = e.load_balancing == LoadBalancing::none ? 0.0 : e.aux_weight / L *
                       (e.aux_convention == AuxConvention::hf ? K : 1);
    arg("moe-aux-loss-coeff", num(aux));
    if (e.z_loss_weight > 0) arg("moe-z-loss-coeff", num(e.z_loss_weight / L));
    if (e.routing == MoeRouting::top1_capacity) {
        arg("moe-expert-capacity-factor", num(e.capacity_factor));
        arg("moe-token-drop-policy", token_drop_policy_name(e.token_drop_policy));
    }
    arg("moe-ffn-hidden-size", std::to_string(e.d_ff_expert));
    if (e.n_shared_experts > 0)  // Megatron's shared expert is one FFN of the summed width: the same function
        arg("moe-shared-expert-intermediate-size", std::to_string(e.n_shared_experts * e.d_ff_expert));
    if (e.group_topk > 0) {
        arg("moe-router-num-groups", std::to_string(e.n_groups));
        arg("moe-router-group-topk", std::to_string(e.group_topk));
    }
    if (e.topk_scaling_factor != 1.f) arg("moe-router-topk-scaling-factor", num(e.topk_scaling_factor));
    if (e.jitter > 0 && e.routing != MoeRouting::noisy_topk) arg("moe-input-jitter-eps", num(e.jitter));
    if (cluster.ep > 0) megatron_cluster(o, m, cluster, K);
    return o.str();
}

std::string export_hf_architecture(const ModelConfig& m) {
    if (!sparse(m)) return "LlamaForCausalLM";
    if (m.moe.score_function == ScoreFunction::sigmoid || m.moe.expert_bias) return "DeepseekV3ForCausalLM";
    if (m.moe.n_shared_experts > 0) return "Qwen2MoeForCausalLM";
    return "MixtralForCausalLM";
}

nlohmann::json export_hf_config(const Config& cfg) {
    const ModelConfig& m = cfg.model;
    const auto& e = m.moe;
    const std::string arch = export_hf_architecture(m);
    nlohmann::json j;
    j["architectures"] = {arch};
    j["vocab_size"] = m.vocab_size;
    j["hidden_size"] = m.d_model;
    j["num_hidden_layers"] = m.n_layers;
    j["num_attention_heads"] = m.n_heads;
    j["num_key_value_heads"] = m.n_kv_heads;
    j["head_dim"] = m.head_dim;
    // Mixtral's intermediate_size is its experts' width; Llama's, Qwen2-MoE's and DeepSeek-V3's the dense FFN's.
    j["intermediate_size"] = arch == "MixtralForCausalLM" ? e.d_ff_expert : m.ffn.d_ff;
    j["hidden_act"] = "silu";
    j["max_position_embeddings"] = m.seq_len;
    j["rms_norm_eps"] = dec(m.norm_eps);
    j["rope_theta"] = dec(m.attention.rope_theta);
    j["tie_word_embeddings"] = m.tie_embeddings;
    j["attention_dropout"] = 0.0;
    j["torch_dtype"] = "float32";
    const int K = sparse(m) ? routed_k(m) : 0;
    if (arch == "LlamaForCausalLM") {
        j["model_type"] = "llama";
        j["attention_bias"] = false;
        j["mlp_bias"] = false;
    } else if (arch == "MixtralForCausalLM") {
        j["model_type"] = "mixtral";
        j["num_local_experts"] = e.n_experts;
        j["num_experts_per_tok"] = K;
        j["router_aux_loss_coef"] = dec(e.aux_weight);
        j["router_jitter_noise"] = e.routing == MoeRouting::noisy_topk ? 0.0 : dec(e.jitter);
        j["output_router_logits"] = e.aux_weight > 0;
        j["sliding_window"] = nullptr;
    } else if (arch == "Qwen2MoeForCausalLM") {
        j["model_type"] = "qwen2_moe";
        j["num_experts"] = e.n_experts;
        j["num_experts_per_tok"] = K;
        j["moe_intermediate_size"] = e.d_ff_expert;
        j["shared_expert_intermediate_size"] = e.n_shared_experts * e.d_ff_expert;
        j["norm_topk_prob"] = renormalised(m);
        j["router_aux_loss_coef"] = dec(e.aux_weight);
        j["decoder_sparse_step"] = 1;
        j["mlp_only_layers"] = nlohmann::json::array();
        j["output_router_logits"] = e.aux_weight > 0;
        j["use_sliding_window"] = false;
    } else {
        j["model_type"] = "deepseek_v3";
        j["n_routed_experts"] = e.n_experts;
        j["num_experts_per_tok"] = K;
        j["moe_intermediate_size"] = e.d_ff_expert;
        j["n_shared_experts"] = e.n_shared_experts;
        j["routed_scaling_factor"] = dec(e.topk_scaling_factor);
        j["n_group"] = e.n_groups;
        j["topk_group"] = e.group_topk > 0 ? e.group_topk : e.n_groups;
        j["norm_topk_prob"] = K > 1;
        j["scoring_func"] = score_function_name(e.score_function);
        j["topk_method"] = e.expert_bias ? "noaux_tc" : "greedy";
        j["first_k_dense_replace"] = 0;
        j["moe_layer_freq"] = 1;
        j["aux_loss_alpha"] = e.load_balancing == LoadBalancing::none ? 0.0 : dec(e.aux_weight);
        j["seq_aux"] = e.load_balancing == LoadBalancing::seq_aux_loss;
    }
    j["_routelab_source"] = "routelab-cli export --format hf of config '" + cfg.name + "'";
    j["_routelab_unmapped"] = export_unmapped(m, "hf");
    return j;
}

std::string export_hf_weights_blocker(const ModelConfig& m) {
    const auto& a = m.attention;
    const auto& e = m.moe;
    auto no = [](const std::string& why) { return "the weights map exactly only to Llama (dense SwiGLU) or Mixtral "
                                                  "(softmax top-k, renormalised): " + why; };
    if (a.positional != PosKind::rope)
        return no(std::string("model.attention.positional is ") + pos_kind_name(a.positional) +
                  "; Llama/Mixtral apply RoPE in every layer (retrain with model.attention.positional=rope)");
    if (a.heads.kind != HeadSelection::all_heads) return no("head selection (MoH, pruning) has no equivalent");
    if (a.window.kind != WindowKind::full) return no("the attention window is not full");
    if (m.norm != NormKind::rmsnorm || m.norm_position != NormPosition::pre) return no("Llama/Mixtral are RMSNorm pre-norm");
    if (!m.final_norm)
        return no("Llama/Mixtral normalise before the LM head and this model does not (RMSNorm with weight 1 is not "
                  "the identity); retrain with model.final_norm=true");
    if (m.lm_head_bias) return no("the LM head has a bias");
    if (a.out_bias || (sparse(m) && e.out_bias)) return no("the attention or MoE output has a bias (JetMoE)");
    if (!sparse(m)) return m.ffn.kind == FfnKind::swiglu ? "" : no("the dense FFN is not SwiGLU");
    if (e.kind != FfnRouting::moe || e.routing != MoeRouting::topk)
        return no(std::string("model.moe routing is ") + (e.kind == FfnRouting::mh_moe ? "mh_moe" : moe_routing_name(e.routing)));
    if (!renormalised(m) || e.n_shared_experts > 0) return no("shared experts or unnormalised weights (Mixtral renormalises the top-k)");
    if (e.score_function != ScoreFunction::softmax || e.expert_bias || e.group_topk > 0 || e.topk_scaling_factor != 1.f)
        return no("sigmoid scores, an expert bias, group-limited routing or a top-k scaling factor");
    return "";
}

Status export_hf_weights(const std::string& dir, const Model& model) {
    const ModelConfig& m = model.cfg;
    if (std::string why = export_hf_weights_blocker(m); !why.empty()) return Status::error("export: " + why);
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return Status::error("export: cannot create '" + dir + "': " + ec.message());
    const int C = m.d_model, HD = m.n_heads * m.head_dim;
    std::vector<float> identity;  // (C, H*D) W_O where the model has none (H*D == C then)
    if (!m.attention.use_wo) {
        identity.assign((size_t)C * HD, 0.f);
        for (int i = 0; i < C; i++) identity[(size_t)i * HD + i] = 1.f;
    }
    std::vector<TensorView> t;
    auto put = [&](const std::string& name, std::vector<int64_t> shape, const float* p) { t.push_back({name, shape, p}); };
    const int64_t V = m.vocab_size, G = m.n_kv_heads * m.head_dim;
    put("model.embed_tokens.weight", {V, C}, model.w.tok_emb);
    for (int l = 0; l < m.n_layers; l++) {
        const LayerWeights& w = model.w.layers[l];
        const std::string p = "model.layers." + std::to_string(l) + ".";
        put(p + "input_layernorm.weight", {C}, w.attn_norm);
        put(p + "self_attn.q_proj.weight", {HD, C}, w.wq);
        put(p + "self_attn.k_proj.weight", {G, C}, w.wk);
        put(p + "self_attn.v_proj.weight", {G, C}, w.wv);
        put(p + "self_attn.o_proj.weight", {C, HD}, w.wo ? w.wo : identity.data());
        put(p + "post_attention_layernorm.weight", {C}, w.ffn_norm);
        if (!sparse(m)) {
            const int64_t F = m.ffn.d_ff;
            put(p + "mlp.gate_proj.weight", {F, C}, w.w_gate);
            put(p + "mlp.up_proj.weight", {F, C}, w.w_up);
            put(p + "mlp.down_proj.weight", {C, F}, w.w_down);
            continue;
        }
        const int64_t F = m.moe.d_ff_expert;
        put(p + "block_sparse_moe.gate.weight", {m.moe.n_experts, C}, w.moe.router);
        for (int e = 0; e < m.moe.n_experts; e++) {  // Mixtral: w1 gate, w3 up, w2 down
            const std::string q = p + "block_sparse_moe.experts." + std::to_string(e) + ".";
            put(q + "w1.weight", {F, C}, w.moe.experts[e].w_gate);
            put(q + "w3.weight", {F, C}, w.moe.experts[e].w_up);
            put(q + "w2.weight", {C, F}, w.moe.experts[e].w_down);
        }
    }
    put("model.norm.weight", {C}, model.w.final_norm);
    if (!m.tie_embeddings) put("lm_head.weight", {V, C}, model.w.lm_head);
    const std::string added = m.attention.use_wo ? "" : "self_attn.o_proj is the identity (the model has no W_O)";
    return safetensors_write((std::filesystem::path(dir) / "model.safetensors").string(), t,
                             {{"format", "pt"}, {"routelab_added", added}});
}

}  // namespace rl
