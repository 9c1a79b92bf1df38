// Model, training and data configuration: the JSON a user edits, validated once, up front.
// Every key is documented in README.md ("Config keys"); unknown keys are rejected by name.
#pragma once
#include <string>
#include <vector>

#include "util/status.h"

namespace rl {

enum class NormKind { rmsnorm, layernorm };
enum class NormPosition { pre, post };
enum class PosKind { none, learned, rope, cope };
enum class WindowKind { full, sliding, adaptive };
enum class WindowStrategy { fixed, seq_len, entropy };
enum class FfnKind { swiglu, relu, gelu };

struct WindowConfig {
    WindowKind kind = WindowKind::full;
    int size = 0;                 // sliding, and adaptive "fixed": keys visible incl. self
    WindowStrategy strategy = WindowStrategy::seq_len;  // adaptive only
    int min = 16;                 // adaptive bounds
    int max = 64;
};

struct AttentionConfig {
    bool use_wo = false;          // output projection W_O (C x H*D)
    PosKind positional = PosKind::cope;
    int cope_npos = 64;           // CoPE integer positions
    bool cope_shared = false;     // one table per layer shared by its heads (spec §4) vs one per head
    float rope_theta = 10000.f;
    WindowConfig window;
};

struct FfnConfig {
    FfnKind kind = FfnKind::swiglu;
    int d_ff = 256;
};

struct ModelConfig {
    int d_model = 128;            // C
    int n_layers = 3;             // L
    int n_heads = 8;              // H
    int n_kv_heads = 4;           // G
    int head_dim = 16;            // D
    int seq_len = 80;             // T (context length; learned positions have this many rows)
    int vocab_size = 0;           // V; 0 = taken from the tokenizer
    NormKind norm = NormKind::rmsnorm;
    NormPosition norm_position = NormPosition::pre;
    float norm_eps = 1e-5f;
    bool final_norm = false;
    bool tie_embeddings = false;
    bool lm_head_bias = false;
    AttentionConfig attention;
    FfnConfig ffn;
};

struct TrainConfig {
    int steps = 1000;
    int batch_size = 16;
    float lr = 3e-3f;
    float min_lr = 3e-4f;
    int warmup_steps = 50;
    float weight_decay = 0.01f;
    float beta1 = 0.9f;
    float beta2 = 0.95f;
    float eps = 1e-8f;
    float grad_clip = 1.0f;       // global norm; 0 = off
    int eval_every = 100;
    int eval_batches = 8;
    unsigned seed = 1234;
    float init_std = 0.02f;
};

struct DataConfig {
    std::string tokenizer = "word";   // word | bpe | unigram
    int vocab_size = 1000;            // subword tokenizers only
    std::string corpus = "embedded";  // "embedded" or a path (.txt, or RustGPT .json array)
    int synthetic_docs = 1500;        // procedural documents per synthetic domain (arithmetic, code)
    float val_fraction = 0.1f;
    unsigned corpus_seed = 7;
};

struct Config {
    std::string name;
    std::string description;
    ModelConfig model;
    TrainConfig train;
    DataConfig data;
};

// Parsing rejects unknown keys and wrong types, naming the full key path ("model.attention.window.size").
Result<Config> config_from_json(const std::string& text);
Result<Config> config_load(const std::string& path);
std::string config_to_json(const Config& cfg);  // pretty JSON, every key written
// Checks value ranges and cross-key constraints (C % H, H % G, ...); the message names the key,
// its value and what is allowed. Called once, up front, by everything that builds a model.
Status config_validate(const Config& cfg);
// Applies "a.b.c=value" overrides (CLI --set); value is parsed as JSON, falling back to a string.
Status config_apply_override(Config& cfg, const std::string& assignment);

const char* pos_kind_name(PosKind k);
const char* ffn_kind_name(FfnKind k);

}  // namespace rl
