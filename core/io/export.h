// Export of a tuned routing to the engines that train at scale (docs/export.md): the Megatron-Core
// arguments of a config, a Hugging Face config.json of the nearest architecture (Llama, Mixtral,
// Qwen2-MoE, DeepSeek-V3), and, where the architecture maps exactly, the weights under Hugging Face
// tensor names. Every setting without an equivalent there is named in the output, never dropped.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "model/model.h"
#include "util/status.h"

namespace rl {

// The settings of cfg that the target cannot express (one sentence each: what and why).
// engine: "megatron" or "hf".
std::vector<std::string> export_unmapped(const ModelConfig& m, const std::string& engine);

// The cluster the routing is meant for (the cluster view's or `cluster`'s settings, docs/cluster-cost.md).
struct ExportCluster {
    int ep = 0;                 // expert-parallel size (0 = no cluster given)
    int gpus_per_node = 8;
    double capacity_factor = 0; // 0 = dropless
    bool pad_to_capacity = false;
};

// Megatron-Core arguments, one "--flag value" per line (a bare "--flag" for booleans that are on),
// after "# " comment lines that name the source and every unmapped setting. vocab_size must be resolved.
// With a cluster: --expert-model-parallel-size, node-limited routing (one group a node, Megatron's
// --moe-router-num-groups) where the EP group spans several nodes, and the capacity flags.
std::string export_megatron(const Config& cfg, const ExportCluster& cluster = {});

// The Hugging Face architecture a config maps to: "LlamaForCausalLM", "MixtralForCausalLM",
// "Qwen2MoeForCausalLM" or "DeepseekV3ForCausalLM".
std::string export_hf_architecture(const ModelConfig& m);
// config.json of that architecture, with "_routelab_unmapped".
nlohmann::json export_hf_config(const Config& cfg);

// Why m's weights cannot be written as Llama/Mixtral tensors with the same function, or empty.
std::string export_hf_weights_blocker(const ModelConfig& m);
// Writes dir/model.safetensors with Hugging Face names (model.layers.{l}.self_attn.q_proj.weight, ...);
// W_O is written as the identity where the model has none. Refused with the blocker's reason.
Status export_hf_weights(const std::string& dir, const Model& model);

}  // namespace rl
