// A Hugging Face model folder opened as a RouteLab model (docs/hf-models.md): config.json read into the
// one ModelConfig (each architecture's differences are settings the one forward honours), the weights
// memory-mapped from model.safetensors or its shards and widened to float32 (a BF16 checkpoint's experts
// stay BF16 in the mapping), the tokenizer found beside them. Supported: LlamaForCausalLM, MixtralForCausalLM, GraniteMoeForCausalLM, OlmoeForCausalLM,
// Qwen2MoeForCausalLM, Qwen3MoeForCausalLM; anything else is refused with its name and that list.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "model/model.h"
#include "train/tokenizer.h"
#include "util/status.h"

namespace rl {

struct HfModelInfo {
    std::string dir;
    std::string architecture;         // "OlmoeForCausalLM"
    std::string tokenizer_path;       // tokenizer.json, else tokenizer.model; empty when the folder has neither
    std::vector<std::string> shards;  // the weight files, in index order
    std::string dtype;                // the weights' dtype on disk ("BF16"; "mixed" when they differ)
    uint64_t weight_bytes = 0;        // on disk
    int max_positions = 0;            // config.json max_position_embeddings
    int bos_id = -1, eos_id = -1;     // config.json bos_token_id / eos_token_id (-1: none)
};

const std::vector<std::string>& hf_supported_architectures();

// Whether `path` is a folder that holds a config.json (a model folder rather than a checkpoint file).
bool hf_is_model_dir(const std::string& path);

// dir/config.json as a validated Config (and what else the folder says in *info); the weights are not
// read. Errors name the file and what to do.
Result<Config> hf_config_read(const std::string& dir, HfModelInfo* info);

struct HfModel {
    Config cfg;
    HfModelInfo info;
    Model model;  // frozen: parameters only (model_create_frozen)
    std::optional<Tokenizer> tok;  // the folder's (TokenizerKind::hf), when it has one
    // A BF16 checkpoint's matrices (hf_held_name) are read from the mapped shards where they lie, or from
    // their packed copy (packed, below; the bf16_* views; model.held keeps the mappings and the pack),
    // mapped_elements of them, not copied into model.params.
    uint64_t mapped_elements = 0;
    // Opened while the AVX512-BF16 kernel was asked for (gemm_bf16_set_kernel(bf16), the CLI's
    // --bf16-activations): those matrices were packed at open (bf16_pack) and read from the pack, not
    // the mapping; the same bytes.
    bool packed = false;
};

// Opens the folder: config, the weights checked tensor by tensor against the config (names, shapes,
// nothing missing), the memory needed checked up front against what is available, and the tokenizer
// (tokenizer.json, else tokenizer.model) when the folder has one; one with more tokens than the
// model's vocabulary is refused.
// tokenizer false: the tokenizer is not read (a probe by token ids needs none).
Result<std::unique_ptr<HfModel>> hf_model_open(const std::string& dir, bool tokenizer = true);

// Whether a probe of `tokens` fits beside the open model (its activations hold every layer's attention
// map: 4096 tokens of OLMoE are 17 GB); refused in one line otherwise.
Status hf_probe_fits(const HfModel& m, int tokens);

// The bytes opening cfg takes: the weights as float32, but for mapped_elements held as BF16 in the
// mapped file (a BF16 checkpoint's hf_held_elements), plus activations for a probe of `tokens`.
// bf16_tied_head: a tied model's LM head also reads the embeddings' BF16 in place (2 V C bytes more).
double hf_model_bytes(const ModelConfig& cfg, int tokens, uint64_t mapped_elements = 0, bool bf16_tied_head = false);
// The parameters a BF16 checkpoint keeps as BF16 in place: the matrices the forward only multiplies
// x W^T by (attention projections, dense and expert FFNs, an untied LM head; not the embeddings, norms,
// routers or biases). hf_held_elements: their count in cfg.
bool hf_held_name(const std::string& ours);
uint64_t hf_held_elements(const ModelConfig& cfg);

}  // namespace rl
