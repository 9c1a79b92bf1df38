#!/usr/bin/python3
"""Tiny random Hugging Face checkpoints in the real hub layout, with their expected outputs.

For each case this writes a folder that looks like a model downloaded from the Hugging Face hub
(config.json with the keys the released configs carry, weights as model.safetensors or as shards
model-0000i-of-0000n.safetensors plus model.safetensors.index.json, tensor names and shapes as the
released checkpoints store them) and expected.json: the logits of every position and, for every
sparse (MoE) layer, each token's experts and combine weights, computed by the float32 eager
forward below. That forward is our own code written from the transformers modeling files
(src/transformers/models/<arch>/modeling_<arch>.py); the comment above each piece names the file
and the class or function it follows. Weights stored as BF16 or F16 are widened to float32 before
the forward, as RouteLab does.

Every quirk of each architecture is active (multipliers != 1, gate and up halves different,
a non-zero shared-expert gate, q/k/v biases, QK-norm over the whole width and per head, heads
whose projections have different norms, norm_topk_prob both ways, a dense layer among sparse
ones, head_dim != hidden/heads where the config allows it, GQA everywhere). Routers are made
decisive: if any token's gap between the k-th and (k+1)-th routing score (what the top-k reads)
or between two adjacent scores of its top k is below 1e-3, the weights are drawn again with the
next seed; expected.json records the smallest k-th/(k+1)-th gap as min_margin.

Usage: scripts/hf_tiny_models.py OUT_DIR [--only CASE ...] [--list]
Writes OUT_DIR/<case>/{config.json, *.safetensors[, model.safetensors.index.json], expected.json}.
Needs PyTorch and NumPy only (no transformers, no safetensors: the files are written by hand).
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

IDS = [1, 17, 42, 5, 88, 23, 64, 9, 71, 30, 55, 2, 89, 36]  # < every case's vocab_size
MIN_GAP = 1e-3
# Under an intervention (more experts, some masked) more gaps matter; float32 forwards agree to ~1e-6,
# so 1e-4 still leaves a hundredfold margin and keeps redraws few.
MIN_GAP_INTERVENTION = 1e-4

# ----------------------------------------------------------------------------------------------
# config.json of each architecture: the keys its released checkpoints carry, at tiny sizes.
# ----------------------------------------------------------------------------------------------

# Like meta-llama/Llama-3.2-1B: explicit head_dim (here 12 != 48 / 6), GQA, untied lm_head, llama3
# rope_scaling.
LLAMA = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "vocab_size": 97, "hidden_size": 48, "intermediate_size": 80, "num_hidden_layers": 3,
    "num_attention_heads": 6, "num_key_value_heads": 2, "head_dim": 12,
    "hidden_act": "silu", "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
    # Llama 3.2's rescaled frequencies, with an original context small enough (64) that all three
    # bands hold some of head_dim 12's six frequencies
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 64},
    "max_position_embeddings": 256, "attention_bias": False, "attention_dropout": 0.0,
    "mlp_bias": False, "pretraining_tp": 1, "initializer_range": 0.02,
    "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": False, "use_cache": True,
    "transformers_version": "4.45.0.dev0",
}

# Like mistralai/Mixtral-8x7B-v0.1 (no head_dim key: head_dim = hidden / heads = 10).
MIXTRAL = {
    "architectures": ["MixtralForCausalLM"], "model_type": "mixtral",
    "vocab_size": 101, "hidden_size": 40, "intermediate_size": 56, "num_hidden_layers": 3,
    "num_attention_heads": 4, "num_key_value_heads": 2,
    "hidden_act": "silu", "rms_norm_eps": 1e-05, "rope_theta": 1000000.0,
    "max_position_embeddings": 256, "sliding_window": None, "attention_dropout": 0.0,
    "num_local_experts": 8, "num_experts_per_tok": 2, "output_router_logits": False,
    "router_aux_loss_coef": 0.02, "initializer_range": 0.02,
    "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": False, "use_cache": True,
    "transformers_version": "4.36.0.dev0",
}

# Like ibm-granite/granite-3.0-1b-a400m-base: the four multipliers, tied embeddings,
# intermediate_size is each expert's width. attention_multiplier (0.125) replaces 1/sqrt(8).
GRANITEMOE = {
    "architectures": ["GraniteMoeForCausalLM"], "model_type": "granitemoe",
    "vocab_size": 113, "hidden_size": 48, "intermediate_size": 40, "num_hidden_layers": 3,
    "num_attention_heads": 6, "num_key_value_heads": 2,
    "hidden_act": "silu", "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "rope_scaling": None,
    "max_position_embeddings": 256, "attention_bias": False, "attention_dropout": 0.0,
    "embedding_multiplier": 12.0, "attention_multiplier": 0.125, "residual_multiplier": 0.22,
    "logits_scaling": 6.0,
    "num_local_experts": 6, "num_experts_per_tok": 2, "output_router_logits": False,
    "router_aux_loss_coef": 0.01, "initializer_range": 0.02,
    "bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0, "tie_word_embeddings": True,
    "use_cache": True, "transformers_version": "4.46.0.dev0",
}

# Like allenai/OLMoE-1B-7B-0924: QK-norm over the whole projection, norm_topk_prob false,
# clip_qkv null; intermediate_size is each expert's width. GQA here (the release has none).
OLMOE = {
    "architectures": ["OlmoeForCausalLM"], "model_type": "olmoe",
    "vocab_size": 109, "hidden_size": 48, "intermediate_size": 24, "num_hidden_layers": 3,
    "num_attention_heads": 6, "num_key_value_heads": 3,
    "hidden_act": "silu", "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "rope_scaling": None,
    "max_position_embeddings": 256, "attention_bias": False, "attention_dropout": 0.0,
    "clip_qkv": None, "num_experts": 8, "num_experts_per_tok": 2, "norm_topk_prob": False,
    "output_router_logits": False, "router_aux_loss_coef": 0.01, "initializer_range": 0.02,
    "eos_token_id": 2, "pad_token_id": 1, "tie_word_embeddings": False, "use_cache": True,
    "transformers_version": "4.43.0.dev0",
}

# Like Qwen/Qwen1.5-MoE-A2.7B: q/k/v bias, sigmoid-gated shared expert, norm_topk_prob false;
# plus layer 1 dense through mlp_only_layers (intermediate_size is the dense MLP's width).
QWEN2MOE = {
    "architectures": ["Qwen2MoeForCausalLM"], "model_type": "qwen2_moe",
    "vocab_size": 127, "hidden_size": 48, "intermediate_size": 72, "num_hidden_layers": 3,
    "num_attention_heads": 6, "num_key_value_heads": 2,
    "hidden_act": "silu", "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
    "max_position_embeddings": 256, "attention_dropout": 0.0,
    "use_sliding_window": False, "sliding_window": 256, "max_window_layers": 3,
    "decoder_sparse_step": 1, "mlp_only_layers": [1],
    "moe_intermediate_size": 20, "shared_expert_intermediate_size": 44,
    "num_experts": 7, "num_experts_per_tok": 2, "norm_topk_prob": False,
    "output_router_logits": False, "router_aux_loss_coef": 0.001, "initializer_range": 0.02,
    "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": False, "use_cache": True,
    "transformers_version": "4.39.0.dev0",
}

# Like Qwen/Qwen3-30B-A3B: per-head QK-norm, explicit head_dim (14 != 40 / 4), norm_topk_prob true.
QWEN3MOE = {
    "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
    "vocab_size": 91, "hidden_size": 40, "intermediate_size": 64, "num_hidden_layers": 3,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 14,
    "hidden_act": "silu", "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "rope_scaling": None,
    "max_position_embeddings": 256, "attention_bias": False, "attention_dropout": 0.0,
    "use_sliding_window": False, "sliding_window": None, "max_window_layers": 3,
    "decoder_sparse_step": 1, "mlp_only_layers": [], "moe_intermediate_size": 24,
    "num_experts": 8, "num_experts_per_tok": 2, "norm_topk_prob": True,
    "output_router_logits": False, "router_aux_loss_coef": 0.001, "initializer_range": 0.02,
    "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": False, "use_cache": True,
    "transformers_version": "4.51.0",
}


# Like Chat-UniVi/MoH-LLaMA3-8B (SkyworkAI/MoH): a plain Llama config.json whose auto_map points at the
# folder's own modeling_llama.py (MOH_LLAMA3_MODELING below stands in for that file), no rope_scaling;
# 8 heads so that half are shared (4) and a quarter routed (2 of the other 4).
MOH_LLAMA3 = dict(LLAMA, num_attention_heads=8, num_key_value_heads=2, head_dim=12,
                  auto_map={"AutoModelForCausalLM": "modeling_llama.LlamaForCausalLM"})
del MOH_LLAMA3["rope_scaling"]

# Written into the tiny MoH-LLaMA3 folder in place of SkyworkAI's modeling_llama.py (which we do not
# copy): RouteLab recognises the MoH rule by the two head counts that file defines.
MOH_LLAMA3_MODELING = """# Stand-in for SkyworkAI/MoH's MoH-LLaMA3 modeling_llama.py, written by RouteLab's tests.
# That file's LlamaAttention sets self.shared_head (half the heads) and self.routed_head (a quarter).
"""


# Like jetmoe/jetmoe-8b as transformers' JetMoeConfig writes it: num_local_experts (E) serves both the
# attention experts (MoA) and the FFN experts (MoE), each attention expert has num_key_value_heads query
# heads of kv_channels (10 here, != hidden / heads); num_attention_heads = kv heads x top-k (derived);
# tied embeddings. rms_norm_eps is only the final norm's (the layers' norms keep JetMoeRMSNorm's 1e-6).
JETMOE = {
    "architectures": ["JetMoeForCausalLM"], "model_type": "jetmoe",
    "vocab_size": 103, "hidden_size": 48, "num_hidden_layers": 3, "num_key_value_heads": 2,
    "kv_channels": 10, "intermediate_size": 24, "num_attention_heads": 4,
    "max_position_embeddings": 256, "activation_function": "silu", "num_local_experts": 6,
    "num_experts_per_tok": 2, "output_router_logits": False, "aux_loss_coef": 0.01,
    "use_cache": True, "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": True,
    "rope_theta": 10000.0, "rms_norm_eps": 1e-05, "initializer_range": 0.01, "attention_dropout": 0.0,
    "transformers_version": "4.40.0.dev0",
}

# The same model as the published jetmoe-8b derivatives' config.json files write it: the original
# myshell-ai/JetMoE key names (moe_num_experts, moe_top_k, ffn_hidden_size, "JetMoEForCausalLM"),
# GPT-style duplicates, and no tie_word_embeddings key (JetMoE ties by default).
JETMOE_ORIGINAL = {
    "architectures": ["JetMoEForCausalLM"], "model_type": "jetmoe",
    "vocab_size": 103, "hidden_size": 48, "num_hidden_layers": 3, "num_layers": 3, "num_key_value_heads": 2,
    "kv_channels": 10, "ffn_hidden_size": 24, "num_attention_heads": 4, "n_positions": 256,
    "max_position_embeddings": 256, "activation_function": "silu", "glu": True, "bias": True,
    "moe_num_experts": 6, "moe_top_k": 2, "rotary_percent": 1.0, "rope_theta": 10000.0,
    "rms_norm_eps": 1e-05, "layer_norm_epsilon": 1e-05, "initializer_range": 0.01,
    "bos_token_id": 1, "eos_token_id": 2, "use_cache": True, "transformers_version": "4.40.0.dev0",
}


def n_experts(cfg):
    """E: each family's key, JetMoE's with the original name as fallback (docs/hf-models.md)."""
    for key in ("num_local_experts", "num_experts", "moe_num_experts"):
        if key in cfg:
            return cfg[key]
    return 0


def top_k(cfg):
    return cfg.get("num_experts_per_tok") or cfg.get("moe_top_k") or 0


def tied(cfg):
    # JetMoeConfig: tie_word_embeddings=True by default; the other files here always carry the key
    return cfg.get("tie_word_embeddings", cfg["model_type"] == "jetmoe")


def head_dim(cfg):
    if cfg["model_type"] == "jetmoe":  # JetMoeConfig attribute_map: head_dim -> kv_channels
        return cfg["kv_channels"]
    # modeling_llama.py / modeling_qwen3_moe.py *Attention.__init__:
    # getattr(config, "head_dim", hidden_size // num_attention_heads)
    return cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]


def sparse_layers(cfg):
    """Indices of the MoE layers."""
    L = cfg["num_hidden_layers"]
    if cfg["model_type"] in ("qwen2_moe", "qwen3_moe"):
        # modeling_qwen2_moe.py / modeling_qwen3_moe.py *DecoderLayer.__init__: sparse unless in
        # mlp_only_layers, and only every decoder_sparse_step-th layer
        return [l for l in range(L) if l not in cfg["mlp_only_layers"] and cfg["num_experts"] > 0
                and (l + 1) % cfg["decoder_sparse_step"] == 0]
    if cfg["model_type"] == "llama":
        return []
    return list(range(L))


# ----------------------------------------------------------------------------------------------
# Random weights, named and shaped as in the released checkpoints (module registration order).
# ----------------------------------------------------------------------------------------------

class Draw:
    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def normal(self, *shape, std=0.2):
        return torch.randn(*shape, generator=self.g) * std

    def norm_weight(self, n):
        # "heads with different norms": RMSNorm weights around 1, not 1
        return 1.0 + 0.3 * torch.randn(n, generator=self.g)

    def proj_by_head(self, heads, d, hidden, std=0.2):
        """A q/k projection [heads * d, hidden] whose heads have different scales (0.5 .. 2)."""
        w = self.normal(heads, d, hidden, std=std)
        scale = 0.5 + 1.5 * torch.rand(heads, 1, 1, generator=self.g)
        return (w * scale).reshape(heads * d, hidden)


def attention_weights(cfg, dr, p, W, qkv_bias=False, qk_norm=None):
    H, nh, nkv, D = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], head_dim(cfg)
    a = p + "self_attn."
    W[a + "q_proj.weight"] = dr.proj_by_head(nh, D, H)
    if qkv_bias:
        W[a + "q_proj.bias"] = dr.normal(nh * D)
    W[a + "k_proj.weight"] = dr.proj_by_head(nkv, D, H)
    if qkv_bias:
        W[a + "k_proj.bias"] = dr.normal(nkv * D)
    W[a + "v_proj.weight"] = dr.normal(nkv * D, H)
    if qkv_bias:
        W[a + "v_proj.bias"] = dr.normal(nkv * D)
    W[a + "o_proj.weight"] = dr.normal(H, nh * D)
    if qk_norm == "full":  # OLMoE: over the whole projection width
        W[a + "q_norm.weight"] = dr.norm_weight(nh * D)
        W[a + "k_norm.weight"] = dr.norm_weight(nkv * D)
    elif qk_norm == "head":  # Qwen3-MoE: one [head_dim] weight shared by all heads
        W[a + "q_norm.weight"] = dr.norm_weight(D)
        W[a + "k_norm.weight"] = dr.norm_weight(D)


def swiglu_weights(dr, prefix, hidden, inter, W, names=("gate_proj", "up_proj", "down_proj")):
    W[prefix + names[0] + ".weight"] = dr.normal(inter, hidden)
    W[prefix + names[1] + ".weight"] = dr.normal(inter, hidden)
    W[prefix + names[2] + ".weight"] = dr.normal(hidden, inter)


def ffn_weights_llama(cfg, dr, p, l, W):
    swiglu_weights(dr, p + "mlp.", cfg["hidden_size"], cfg["intermediate_size"], W)


def ffn_weights_mixtral(cfg, dr, p, l, W):
    H, E = cfg["hidden_size"], cfg["num_local_experts"]
    W[p + "block_sparse_moe.gate.weight"] = dr.normal(E, H, std=0.3)
    for e in range(E):  # w1 = gate, w3 = up, w2 = down (MixtralBlockSparseTop2MLP)
        swiglu_weights(dr, f"{p}block_sparse_moe.experts.{e}.", H, cfg["intermediate_size"], W,
                       names=("w1", "w3", "w2"))


def ffn_weights_granitemoe(cfg, dr, p, l, W):
    H, E, I = cfg["hidden_size"], cfg["num_local_experts"], cfg["intermediate_size"]
    m = p + "block_sparse_moe."
    # GraniteMoeParallelExperts stores [num_experts, output_size, input_size]
    W[m + "input_linear.weight"] = dr.normal(E, 2 * I, H)   # rows [0, I) gate, [I, 2I) up
    W[m + "output_linear.weight"] = dr.normal(E, H, I)
    W[m + "router.layer.weight"] = dr.normal(E, H, std=0.3)


def ffn_weights_olmoe(cfg, dr, p, l, W):
    H, E = cfg["hidden_size"], cfg["num_experts"]
    W[p + "mlp.gate.weight"] = dr.normal(E, H, std=0.3)
    for e in range(E):
        swiglu_weights(dr, f"{p}mlp.experts.{e}.", H, cfg["intermediate_size"], W)


def ffn_weights_qwen2moe(cfg, dr, p, l, W):
    H = cfg["hidden_size"]
    if l not in sparse_layers(cfg):
        swiglu_weights(dr, p + "mlp.", H, cfg["intermediate_size"], W)
        return
    E = cfg["num_experts"]
    W[p + "mlp.gate.weight"] = dr.normal(E, H, std=0.3)
    for e in range(E):
        swiglu_weights(dr, f"{p}mlp.experts.{e}.", H, cfg["moe_intermediate_size"], W)
    swiglu_weights(dr, p + "mlp.shared_expert.", H, cfg["shared_expert_intermediate_size"], W)
    W[p + "mlp.shared_expert_gate.weight"] = dr.normal(1, H, std=0.3)


def ffn_weights_qwen3moe(cfg, dr, p, l, W):
    H = cfg["hidden_size"]
    if l not in sparse_layers(cfg):
        swiglu_weights(dr, p + "mlp.", H, cfg["intermediate_size"], W)
        return
    E = cfg["num_experts"]
    W[p + "mlp.gate.weight"] = dr.normal(E, H, std=0.3)
    for e in range(E):
        swiglu_weights(dr, f"{p}mlp.experts.{e}.", H, cfg["moe_intermediate_size"], W)


def attention_weights_jetmoe(cfg, dr, p, W, qkv_bias=False, qk_norm=None):
    # modeling_jetmoe.py JetMoeAttention: experts = JetMoeMoA (input_linear [E, KV*D, H] and
    # output_linear [E, H, KV*D] as JetMoeParallelExperts, router.layer [E, H], bias [H]); kv_proj [2 KV*D, H]
    H, E, KV, D = cfg["hidden_size"], n_experts(cfg), cfg["num_key_value_heads"], head_dim(cfg)
    a = p + "self_attention."
    W[a + "experts.input_linear.weight"] = torch.stack([dr.proj_by_head(KV, D, H) for _ in range(E)])
    W[a + "experts.output_linear.weight"] = dr.normal(E, H, KV * D)
    W[a + "experts.router.layer.weight"] = dr.normal(E, H, std=0.3)
    W[a + "experts.bias"] = dr.normal(H)
    W[a + "kv_proj.weight"] = torch.cat([dr.proj_by_head(KV, D, H), dr.normal(KV * D, H)])


def ffn_weights_jetmoe(cfg, dr, p, l, W):
    H, E, I = cfg["hidden_size"], n_experts(cfg), cfg.get("intermediate_size") or cfg["ffn_hidden_size"]
    # modeling_jetmoe.py JetMoeMoE: input_linear [E, 2I, H] (gate half first), output_linear [E, H, I],
    # router.layer [E, H], bias [H]
    W[p + "mlp.input_linear.weight"] = dr.normal(E, 2 * I, H)
    W[p + "mlp.output_linear.weight"] = dr.normal(E, H, I)
    W[p + "mlp.router.layer.weight"] = dr.normal(E, H, std=0.3)
    W[p + "mlp.bias"] = dr.normal(H)


def make_weights(arch, seed):
    cfg = arch["config"]
    dr = Draw(seed)
    H, V = cfg["hidden_size"], cfg["vocab_size"]
    W = {"model.embed_tokens.weight": dr.normal(V, H, std=0.3)}
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        arch.get("attention_weights", attention_weights)(cfg, dr, p, W, qkv_bias=arch["qkv_bias"],
                                                         qk_norm=arch["qk_norm"])
        arch["ffn_weights"](cfg, dr, p, l, W)
        W[p + "input_layernorm.weight"] = dr.norm_weight(H)
        W[p + "post_attention_layernorm.weight"] = dr.norm_weight(H)
    W["model.norm.weight"] = dr.norm_weight(H)
    if not tied(cfg):  # tied: the file has no lm_head.weight
        W["lm_head.weight"] = dr.normal(V, H)
    return W


# ----------------------------------------------------------------------------------------------
# The forward, float32 eager.
# ----------------------------------------------------------------------------------------------

def rms_norm(x, w, eps):
    # modeling_llama.py LlamaRMSNorm.forward (same in every file here): in float32,
    # x * rsqrt(mean(x^2) + eps), then weight * x
    x = x.float()
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def linear(x, w, b=None):
    return F.linear(x, w, b)


def llama3_inv_freq(inv_freq, rs):
    # modeling_rope_utils.py _compute_llama3_parameters: wavelengths above orig / low_freq_factor are
    # slowed by factor, those below orig / high_freq_factor kept, the band between blended by
    # smooth = (orig / wavelen - low) / (high - low)
    factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    orig = rs["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > orig / low, inv_freq / factor, inv_freq)
    smooth = (orig / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < orig / high) * ~(wavelen > orig / low)
    return torch.where(medium, smoothed, scaled)


def rope_tables(T, D, theta, rope_scaling=None):
    # modeling_rope_utils.py _compute_default_rope_parameters: inv_freq = 1 / theta^(arange(0, D, 2) / D);
    # modeling_llama.py LlamaRotaryEmbedding.forward: freqs = pos x inv_freq in float32,
    # emb = cat(freqs, freqs), cos and sin of emb
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
    if rope_scaling is not None and rope_scaling["rope_type"] == "llama3":
        inv_freq = llama3_inv_freq(inv_freq, rope_scaling)
    freqs = torch.arange(T, dtype=torch.float32)[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    # modeling_llama.py rotate_half: (x1, x2) -> (-x2, x1) over the two halves of head_dim
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x, cos, sin):
    # modeling_llama.py apply_rotary_pos_emb: x * cos + rotate_half(x) * sin; x is [T, heads, D]
    return x * cos[:, None, :] + rotate_half(x) * sin[:, None, :]


def qkv_plain(cfg, W, a, h):
    """Llama, Mixtral, GraniteMoe, Qwen2-MoE: projections (with bias where the file has one),
    then the head split."""
    # modeling_llama.py LlamaAttention.forward; modeling_qwen2_moe.py Qwen2MoeAttention: q/k/v
    # with bias=True, o_proj without
    T, D = h.shape[0], head_dim(cfg)
    q = linear(h, W[a + "q_proj.weight"], W.get(a + "q_proj.bias"))
    k = linear(h, W[a + "k_proj.weight"], W.get(a + "k_proj.bias"))
    v = linear(h, W[a + "v_proj.weight"], W.get(a + "v_proj.bias"))
    return q.view(T, -1, D), k.view(T, -1, D), v.view(T, -1, D)


def qkv_olmoe(cfg, W, a, h):
    # modeling_olmoe.py OlmoeAttention.forward: q_norm / k_norm (RMSNorm of width heads * head_dim
    # and kv_heads * head_dim) over the whole projection, before the head split; clip_qkv is null
    T, D, eps = h.shape[0], head_dim(cfg), cfg["rms_norm_eps"]
    q = rms_norm(linear(h, W[a + "q_proj.weight"]), W[a + "q_norm.weight"], eps)
    k = rms_norm(linear(h, W[a + "k_proj.weight"]), W[a + "k_norm.weight"], eps)
    v = linear(h, W[a + "v_proj.weight"])
    return q.view(T, -1, D), k.view(T, -1, D), v.view(T, -1, D)


def qkv_qwen3moe(cfg, W, a, h):
    # modeling_qwen3_moe.py Qwen3MoeAttention.forward: view(..., -1, head_dim) first, then q_norm /
    # k_norm (RMSNorm of width head_dim, one weight shared by the heads) per head
    T, D, eps = h.shape[0], head_dim(cfg), cfg["rms_norm_eps"]
    q = linear(h, W[a + "q_proj.weight"]).view(T, -1, D)
    k = linear(h, W[a + "k_proj.weight"]).view(T, -1, D)
    v = linear(h, W[a + "v_proj.weight"]).view(T, -1, D)
    return rms_norm(q, W[a + "q_norm.weight"], eps), rms_norm(k, W[a + "k_norm.weight"], eps), v


def heads_moh_llama3(cfg, q):
    """(T, H) 0/1 head mask from the queries before RoPE, as SkyworkAI/MoH MoH-LLaMA3/Inference_code/
    modeling_llama.py LlamaAttention.forward computes it: the first half of the heads shared (always
    on); of the rest, the quarter of all heads whose queries have the largest L2 norm (the code takes
    top-k of softmax(norm / std), which keeps the order of the norms)."""
    T, H = q.shape[0], q.shape[1]
    S, K = int(H * 0.5), int(H * 0.25)
    norms = q[:, S:, :].norm(dim=-1)
    gates = torch.softmax(norms / norms.std(dim=1, keepdim=True), dim=1)
    chosen = torch.topk(gates, K, dim=1).indices
    mask = torch.cat([torch.ones(T, S), F.one_hot(chosen, H - S).sum(1).float()], dim=1)
    return mask, norms


def attention(arch, cfg, W, p, h, cos, sin):
    """The block's output and, for a head rule, its (T, H) mask and the routed heads' scores."""
    a = p + "self_attn."
    q, k, v = arch["qkv"](cfg, W, a, h)
    rule = arch.get("heads")
    mask, head_scores = rule(cfg, q) if rule else (None, None)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    # modeling_llama.py repeat_kv: each kv head serves num_heads / num_kv_heads consecutive q heads
    groups = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(groups, dim=1)
    v = v.repeat_interleave(groups, dim=1)
    # modeling_llama.py eager_attention_forward: (q k^T) * scaling, causal mask, softmax in float32,
    # times v; scaling = head_dim^-0.5 (modeling_granitemoe.py GraniteMoeAttention: attention_multiplier)
    scale = cfg.get("attention_multiplier", head_dim(cfg) ** -0.5)
    scores = torch.einsum("thd,shd->hts", q, k) * scale
    T = h.shape[0]
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)
    probs = torch.softmax(scores.masked_fill(causal, float("-inf")), dim=-1, dtype=torch.float32)
    out = torch.einsum("hts,shd->thd", probs, v)
    if mask is not None:  # MoH-LLaMA3: attn_output[b, t, h] *= mask[b, t, h] before o_proj
        out = out * mask[:, :, None]
    return linear(out.reshape(T, -1), W[a + "o_proj.weight"], W.get(a + "o_proj.bias")), mask, head_scores


def attention_jetmoe(arch, cfg, W, p, h, cos, sin):
    """JetMoE's mixture of attention heads: the block's output, each token's attention experts [T, k]
    and the router's logits [T, E]."""
    a = p + "self_attention."
    T, E, k, KV, D = h.shape[0], n_experts(cfg), top_k(cfg), cfg["num_key_value_heads"], head_dim(cfg)
    # modeling_jetmoe.py JetMoeTopKGating.forward: logits in float32, top-k, softmax over those k
    logits = linear(h, W[a + "experts.router.layer.weight"]).float()
    top_logits, experts = logits.topk(k, dim=-1)
    gates = torch.softmax(top_logits, dim=-1)
    # JetMoeMoA.map: slot j's queries input_linear[e_j] h, [T, k, KV*D] viewed as [T, k*KV, D]:
    # query head j*KV + i is slot j's i-th head
    w_in = W[a + "experts.input_linear.weight"]
    q = torch.einsum("tjac,tc->tja", w_in[experts], h).reshape(T, k * KV, D)
    # JetMoeAttention.forward: kv_proj(x).chunk(2, dim=-1) -> K, V [T, KV, D]; RoPE on q and K
    key, val = linear(h, W[a + "kv_proj.weight"]).chunk(2, dim=-1)
    key, val = key.view(T, KV, D), val.view(T, KV, D)
    q, key = apply_rope(q, cos, sin), apply_rope(key, cos, sin)
    # key_states.repeat(1, top_k, 1, 1): the kv heads TILED, so query head j*KV + i reads kv head i
    key, val = key.repeat(1, k, 1), val.repeat(1, k, 1)
    scores = torch.einsum("thd,shd->hts", q, key) * D ** -0.5
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)
    probs = torch.softmax(scores.masked_fill(causal, float("-inf")), dim=-1, dtype=torch.float32)
    out = torch.einsum("hts,shd->thd", probs, val).reshape(T, k, KV * D)
    # JetMoeMoA.reduce: sum over j of gate_j * output_linear[e_j] out_j, then + bias once per token
    w_out = W[a + "experts.output_linear.weight"]
    y = torch.einsum("tj,tjca,tja->tc", gates, w_out[experts], out) + W[a + "experts.bias"]
    return y, experts, logits


def swiglu(x, W, prefix, names=("gate_proj", "up_proj", "down_proj")):
    # modeling_llama.py LlamaMLP.forward: down(silu(gate(x)) * up(x))
    g = linear(x, W[prefix + names[0] + ".weight"])
    u = linear(x, W[prefix + names[1] + ".weight"])
    return linear(F.silu(g) * u, W[prefix + names[2] + ".weight"])


def softmax_topk(logits, k, renormalise):
    # modeling_mixtral.py MixtralSparseMoeBlock.forward (and Olmoe/Qwen2Moe/Qwen3Moe SparseMoeBlock):
    # softmax over all experts in float32, torch.topk, optionally divide by the top-k sum
    probs = torch.softmax(logits, dim=-1, dtype=torch.float32)
    weights, experts = torch.topk(probs, k, dim=-1)
    if renormalise:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return experts, weights, probs


# Routing interventions (RouteLab's probe/eval flags --top-k, --renorm/--no-renorm, --mask-experts,
# --capacity-factor; docs/hf-models.md), written here from their definitions, not from RouteLab's
# code: a masked expert is never chosen (its selection score is -inf; the router's probabilities are
# otherwise unchanged, so with plain weights its share is not handed to the others); top-k takes the
# k best of the rest; renormalised weights are softmax over the chosen logits (= the chosen
# probabilities over their sum), plain ones the probabilities of the softmax over all experts.
# Capacity (GShard's, for top-k): each expert keeps at most min(T, ceil(T k cf / E)) of the tokens
# that chose it, the earliest ones; the later ones lose that expert (the token keeps its others).
def route(logits, k, renormalise, iv, key_is_logits=False):
    """(experts [T, k], weights [T, k], key [T, E], kept [T, k]) of one layer under intervention iv."""
    logits = logits.float()
    probs = torch.softmax(logits, dim=-1)
    k = iv.get("top_k") or k
    if iv.get("renorm") is not None:
        renormalise = iv["renorm"]
    key = (logits if key_is_logits else probs).clone()
    for e in iv.get("mask", []):
        key[:, e] = -math.inf
    _, experts = torch.topk(key, k, dim=-1)
    chosen = probs.gather(1, experts)
    weights = torch.softmax(logits.gather(1, experts), dim=-1) if renormalise else chosen
    kept = torch.ones_like(experts, dtype=torch.bool)
    cf = iv.get("capacity_factor", 0)
    if cf > 0:
        T, E = logits.shape
        cap = min(T, max(1, math.ceil(T * k * cf / E)))
        taken = [0] * E
        for t in range(T):
            for j in range(k):
                e = int(experts[t, j])
                kept[t, j] = taken[e] < cap
                taken[e] += 1
    return experts, weights, key, kept


def combine(x, experts, weights, expert_fn, kept=None):
    """sum over j of weights[t, j] * expert_{experts[t, j]}(x[t]), over the kept (t, j) only."""
    out = torch.zeros_like(x)
    for e in experts.unique().tolist():
        hit = experts == e
        if kept is not None:
            hit = hit & kept
        rows, slot = hit.nonzero(as_tuple=True)
        if len(rows):
            out.index_add_(0, rows, expert_fn(e, x[rows]) * weights[rows, slot, None])
    return out


def routed(x, logits, k, renormalise, iv, expert_fn, key_is_logits=False):
    """The routed experts' sum and the route: unchanged as each modeling file computes it when iv is
    empty, else under iv's interventions."""
    if not iv:
        if key_is_logits:
            top_logits, experts = logits.float().topk(k, dim=-1)
            weights, key = torch.softmax(top_logits, dim=-1), logits.float()
        else:
            experts, weights, key = softmax_topk(logits, k, renormalise)
        return combine(x, experts, weights, expert_fn), (experts, weights, key, None)
    experts, weights, key, kept = route(logits, k, renormalise, iv, key_is_logits)
    return combine(x, experts, weights, expert_fn, kept), (experts, weights, key, kept)


def ffn_llama(cfg, W, p, l, x, iv):
    return swiglu(x, W, p + "mlp."), None


def ffn_mixtral(cfg, W, p, l, x, iv):
    m = p + "block_sparse_moe."
    logits = linear(x, W[m + "gate.weight"])
    # modeling_mixtral.py MixtralSparseMoeBlock.forward: the top-k weights are always renormalised;
    # MixtralBlockSparseTop2MLP.forward: w2(silu(w1 x) * w3 x)
    return routed(x, logits, cfg["num_experts_per_tok"], True, iv,
                  lambda e, xs: swiglu(xs, W, f"{m}experts.{e}.", names=("w1", "w3", "w2")))


def fused_experts(cfg, W, m, x, iv):
    """The routed sum and route of GraniteMoE's and JetMoE's MoE block (module prefix m), whose experts
    are fused: the same gating and expert in both files."""
    # modeling_granitemoe.py GraniteMoeTopKGating.forward (= modeling_jetmoe.py JetMoeTopKGating): top-k
    # of the raw logits, then softmax over those k only (the renormalised top-k probabilities)
    logits = linear(x, W[m + "router.layer.weight"]).float()
    w_in, w_out = W[m + "input_linear.weight"], W[m + "output_linear.weight"]

    def expert(e, xs):
        # modeling_granitemoe.py GraniteMoeMoE.forward (= JetMoeMoE.forward): input_linear gives [.., 2I],
        # chunk(2): the first half goes through the activation (gate), the second multiplies it (up); then
        # output_linear. GraniteMoeParallelExperts.forward: F.linear(x, weight[e])
        gate, up = linear(xs, w_in[e]).chunk(2, dim=-1)
        return linear(F.silu(gate) * up, w_out[e])

    return routed(x, logits, top_k(cfg), True, iv, expert, key_is_logits=True)


def ffn_granitemoe(cfg, W, p, l, x, iv):
    return fused_experts(cfg, W, p + "block_sparse_moe.", x, iv)


def ffn_jetmoe(cfg, W, p, l, x, iv):
    # modeling_jetmoe.py JetMoeMoE.forward: GraniteMoE's block under "mlp.", then + bias once per token
    out, route_ = fused_experts(cfg, W, p + "mlp.", x, iv)
    return out + W[p + "mlp.bias"], route_


def ffn_olmoe(cfg, W, p, l, x, iv):
    # modeling_olmoe.py OlmoeSparseMoeBlock.forward: softmax, top-k, renormalise iff norm_topk_prob
    logits = linear(x, W[p + "mlp.gate.weight"])
    return routed(x, logits, cfg["num_experts_per_tok"], cfg["norm_topk_prob"], iv,
                  lambda e, xs: swiglu(xs, W, f"{p}mlp.experts.{e}."))


def ffn_qwen2moe(cfg, W, p, l, x, iv):
    if l not in sparse_layers(cfg):
        # modeling_qwen2_moe.py Qwen2MoeDecoderLayer.__init__: dense Qwen2MoeMLP(intermediate_size)
        return swiglu(x, W, p + "mlp."), None
    # modeling_qwen2_moe.py Qwen2MoeSparseMoeBlock.forward: routed experts as OLMoE, plus
    # sigmoid(shared_expert_gate(x)) * shared_expert(x)
    logits = linear(x, W[p + "mlp.gate.weight"])
    out, route_ = routed(x, logits, cfg["num_experts_per_tok"], cfg["norm_topk_prob"], iv,
                         lambda e, xs: swiglu(xs, W, f"{p}mlp.experts.{e}."))
    shared = swiglu(x, W, p + "mlp.shared_expert.")
    out = out + torch.sigmoid(linear(x, W[p + "mlp.shared_expert_gate.weight"])) * shared
    return out, route_


def ffn_qwen3moe(cfg, W, p, l, x, iv):
    if l not in sparse_layers(cfg):
        # modeling_qwen3_moe.py Qwen3MoeDecoderLayer.__init__: dense Qwen3MoeMLP(intermediate_size)
        return swiglu(x, W, p + "mlp."), None
    # modeling_qwen3_moe.py Qwen3MoeSparseMoeBlock.forward: softmax, top-k, renormalise iff
    # norm_topk_prob; no shared expert
    logits = linear(x, W[p + "mlp.gate.weight"])
    return routed(x, logits, cfg["num_experts_per_tok"], cfg["norm_topk_prob"], iv,
                  lambda e, xs: swiglu(xs, W, f"{p}mlp.experts.{e}."))


def forward(arch, W, ids, iv=None, heads=None):
    """Logits [T, V] and [(layer, experts [T, k], weights [T, k], key [T, E], kept [T, k] or None)] of
    the sparse layers; iv: routing interventions (route), none when empty. heads (a list): gets
    (layer, mask [T, H], routed scores [T, R]) of each layer under a head rule."""
    cfg = arch["config"]
    eps = cfg["rms_norm_eps"]
    # modeling_jetmoe.py JetMoeDecoderLayer.__init__: input/post_attention_layernorm = JetMoeRMSNorm(hidden)
    # with its default eps 1e-6; only the final norm reads rms_norm_eps
    layer_eps = 1e-6 if cfg["model_type"] == "jetmoe" else eps
    # modeling_granitemoe.py GraniteMoeModel.forward: inputs_embeds * embedding_multiplier
    x = W["model.embed_tokens.weight"][torch.tensor(ids)] * cfg.get("embedding_multiplier", 1.0)
    cos, sin = rope_tables(len(ids), head_dim(cfg), cfg["rope_theta"], cfg.get("rope_scaling"))
    # modeling_granitemoe.py GraniteMoeDecoderLayer.forward: residual + branch * residual_multiplier
    rm = cfg.get("residual_multiplier", 1.0)
    routes = []
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        # modeling_llama.py LlamaDecoderLayer.forward: pre-norm attention, then pre-norm MLP / MoE
        # (JetMoE: mask is each token's attention experts [T, k], scores the router's logits)
        att, mask, scores = arch.get("attention", attention)(
            arch, cfg, W, p, rms_norm(x, W[p + "input_layernorm.weight"], layer_eps), cos, sin)
        x = x + att * rm
        if mask is not None and heads is not None:
            heads.append((l, mask, scores))
        out, route_ = arch["ffn"](cfg, W, p, l, rms_norm(x, W[p + "post_attention_layernorm.weight"], layer_eps),
                                  iv or {})
        x = x + out * rm
        if route_ is not None:
            routes.append((l,) + route_)
    x = rms_norm(x, W["model.norm.weight"], eps)
    # tie_word_embeddings: lm_head is embed_tokens; modeling_granitemoe.py
    # GraniteMoeForCausalLM.forward: logits / logits_scaling
    lm = W["model.embed_tokens.weight"] if tied(cfg) else W["lm_head.weight"]
    return linear(x, lm) / cfg.get("logits_scaling", 1.0), routes


ARCHS = {
    "llama": dict(config=LLAMA, qkv=qkv_plain, qkv_bias=False, qk_norm=None,
                  ffn=ffn_llama, ffn_weights=ffn_weights_llama),
    "mixtral": dict(config=MIXTRAL, qkv=qkv_plain, qkv_bias=False, qk_norm=None,
                    ffn=ffn_mixtral, ffn_weights=ffn_weights_mixtral),
    "granitemoe": dict(config=GRANITEMOE, qkv=qkv_plain, qkv_bias=False, qk_norm=None,
                       ffn=ffn_granitemoe, ffn_weights=ffn_weights_granitemoe),
    "olmoe": dict(config=OLMOE, qkv=qkv_olmoe, qkv_bias=False, qk_norm="full",
                  ffn=ffn_olmoe, ffn_weights=ffn_weights_olmoe),
    "qwen2moe": dict(config=QWEN2MOE, qkv=qkv_plain, qkv_bias=True, qk_norm=None,
                     ffn=ffn_qwen2moe, ffn_weights=ffn_weights_qwen2moe),
    "qwen3moe": dict(config=QWEN3MOE, qkv=qkv_qwen3moe, qkv_bias=False, qk_norm="head",
                     ffn=ffn_qwen3moe, ffn_weights=ffn_weights_qwen3moe),
    "moh_llama3": dict(config=MOH_LLAMA3, qkv=qkv_plain, qkv_bias=False, qk_norm=None,
                       ffn=ffn_llama, ffn_weights=ffn_weights_llama, heads=heads_moh_llama3,
                       files={"modeling_llama.py": MOH_LLAMA3_MODELING}),
    "jetmoe": dict(config=JETMOE, qkv=None, qkv_bias=False, qk_norm=None, attention=attention_jetmoe,
                   attention_weights=attention_weights_jetmoe, ffn=ffn_jetmoe, ffn_weights=ffn_weights_jetmoe),
    "jetmoe_original": dict(config=JETMOE_ORIGINAL, qkv=None, qkv_bias=False, qk_norm=None, attention=attention_jetmoe,
                            attention_weights=attention_weights_jetmoe, ffn=ffn_jetmoe, ffn_weights=ffn_weights_jetmoe),
}

# case: (architecture, stored dtype, shards)
CASES = {}
for _a in ARCHS:
    CASES[_a] = (_a, "float32", 1)
for _a in ARCHS:
    if _a != "jetmoe_original":
        CASES[_a + "_bf16"] = (_a, "bfloat16", 1)
CASES["mixtral_sharded"] = ("mixtral", "float32", 3)
CASES["qwen3moe_sharded"] = ("qwen3moe", "float32", 3)
CASES["olmoe_f16"] = ("olmoe", "float16", 1)
CASES["jetmoe_original"] = ("jetmoe_original", "bfloat16", 2)  # as published: BF16 shards

TORCH_DTYPE = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ST_DTYPE = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}


# ----------------------------------------------------------------------------------------------
# Decisive routers.
# ----------------------------------------------------------------------------------------------

def route_gaps(routes, k):
    """(smallest k-th minus (k+1)-th score, smallest gap between adjacent scores of the top k)."""
    margin, order = math.inf, math.inf
    for _, _, _, scores, _ in routes:
        s = scores.sort(dim=-1, descending=True).values
        if k < s.shape[1] and s[0, k] > -math.inf:  # k of the unmasked ones: nothing to separate
            margin = min(margin, (s[:, k - 1] - s[:, k]).min().item())
        if k > 1:
            order = min(order, (s[:, :k - 1] - s[:, 1:k]).min().item())
    return margin, order


# The interventions each MoE case is checked under (RouteLab: probe/eval --top-k K, --renorm or
# --no-renorm, --mask-experts a,b, --capacity-factor C). "E" stands for the case's expert count,
# "flip" for the opposite of the model's own renormalisation.
INTERVENTIONS = [
    ("top1", dict(top_k=1)),
    ("top3", dict(top_k=3)),
    ("all_experts", dict(top_k="E")),
    ("renorm_flipped", dict(renorm="flip")),
    ("mask_1_4", dict(mask=[1, 4])),
    ("capacity_1", dict(capacity_factor=1.0)),
    ("top3_mask0_cap075_flipped", dict(top_k=3, mask=[0], capacity_factor=0.75, renorm="flip")),
]


def model_renormalises(cfg):
    if cfg["model_type"] in ("mixtral", "granitemoe", "jetmoe"):
        return True
    return bool(cfg.get("norm_topk_prob"))


def resolve(cfg, iv):
    """iv with "E" and "flip" made concrete for this config."""
    out = dict(iv)
    if out.get("top_k") == "E":
        out["top_k"] = n_experts(cfg)
    if out.get("renorm") == "flip":
        out["renorm"] = not model_renormalises(cfg)
    return out


def cli_flags(iv):
    """The probe/eval flags that ask RouteLab for intervention iv."""
    f = []
    if iv.get("top_k"):
        f += ["--top-k", str(iv["top_k"])]
    if iv.get("renorm") is not None:
        f += ["--renorm" if iv["renorm"] else "--no-renorm"]
    if iv.get("mask"):
        f += ["--mask-experts", ",".join(map(str, iv["mask"]))]
    if iv.get("capacity_factor"):
        f += ["--capacity-factor", str(iv["capacity_factor"])]
    return " ".join(f)


def perplexity(logits, ids):
    """exp of the mean cross-entropy of each position's logits against the next id (float64)."""
    lp = torch.log_softmax(logits[:-1].double(), dim=-1)
    return math.exp(-lp.gather(1, torch.tensor(ids[1:])[:, None]).mean().item())


def kept_routes(routes):
    """[(layer, experts, weights)] with each token's experts heaviest first, dropped ones left out."""
    out = []
    for l, experts, weights, _, kept in routes:
        ex, wt = [], []
        for t in range(experts.shape[0]):
            order = sorted(range(experts.shape[1]), key=lambda j: -float(weights[t, j]))
            keep = [j for j in order if kept is None or bool(kept[t, j])]
            ex.append([int(experts[t, j]) for j in keep])
            wt.append([f32(weights[t, j]) for j in keep])
        out.append({"layer": l, "experts": ex, "weights": wt})
    return out


def intervention_runs(arch, widened):
    """Each intervention's forward: (name, flags, logits, routes, margin), or None for a dense model."""
    cfg = arch["config"]
    runs = []
    for name, iv in INTERVENTIONS:
        iv = resolve(cfg, iv)
        with torch.no_grad():
            logits, routes = forward(arch, widened, IDS, iv)
        runs.append((name, cli_flags(iv), logits, routes, route_gaps(routes, iv.get("top_k") or top_k(cfg))[0]))
    return runs


def head_gap(heads, cfg):
    """Smallest gap between the K-th and (K+1)-th routed-head score (JetMoE: attention-expert logit) of
    any token and layer."""
    gap = math.inf
    for _, mask, scores in heads:
        K = top_k(cfg) if cfg["model_type"] == "jetmoe" else int(cfg["num_attention_heads"] * 0.25)
        s = scores.sort(dim=-1, descending=True).values
        if K < s.shape[1]:
            gap = min(gap, (s[:, K - 1] - s[:, K]).min().item())
    return gap


def draw_case(arch, dtype, seed):
    """Weights (stored dtype), expected logits, routes and head routes, and the interventions' runs;
    redraws until every router is decisive, unchanged and under each intervention, and every head rule."""
    k = top_k(arch["config"])
    for attempt in range(200):
        stored = {n: t.to(TORCH_DTYPE[dtype]) for n, t in make_weights(arch, seed + attempt).items()}
        widened = {n: t.float() for n, t in stored.items()}
        heads = []
        with torch.no_grad():
            logits, routes = forward(arch, widened, IDS, heads=heads)
        if heads and head_gap(heads, arch["config"]) < MIN_GAP:
            continue
        if not routes:
            return seed + attempt, stored, logits, routes, None, [], heads
        margin, order = route_gaps(routes, k)
        if margin < MIN_GAP or order < MIN_GAP:
            continue
        runs = intervention_runs(arch, widened)
        if all(r[4] >= MIN_GAP_INTERVENTION for r in runs):
            return seed + attempt, stored, logits, routes, margin, runs, heads
    raise RuntimeError("no decisive draw in 200 seeds")


# ----------------------------------------------------------------------------------------------
# Files.
# ----------------------------------------------------------------------------------------------

def tensor_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def write_safetensors(path, tensors):
    """safetensors by hand: u64 LE header length, JSON header padded with spaces to a multiple of 8,
    then the raw little-endian data, tensors in name order (as safetensors' serializer writes them)."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        data = tensor_bytes(t)
        header[name] = {"dtype": ST_DTYPE[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def write_weights(folder, stored, shards):
    nbytes = {n: t.numel() * t.element_size() for n, t in stored.items()}
    total = sum(nbytes.values())
    if shards == 1:
        write_safetensors(os.path.join(folder, "model.safetensors"), stored)
        return
    # As transformers' save_pretrained: walk the state dict in module order and cut by size, so a
    # layer's tensors may straddle two shards; the index's weight_map is sorted by name.
    groups, done = [dict() for _ in range(shards)], 0
    for name, t in stored.items():
        groups[min(shards - 1, done * shards // total)][name] = t
        done += nbytes[name]
    assert all(groups), "a shard came out empty"
    weight_map = {}
    for i, g in enumerate(groups):
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        write_safetensors(os.path.join(folder, fname), g)
        weight_map.update({n: fname for n in g})
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")


def f32(x):
    """A float32 value as the shortest decimal that reads back as the same float32."""
    return float(str(np.float32(x)))


def make_case(name, out_dir):
    arch_name, dtype, shards = CASES[name]
    arch = ARCHS[arch_name]
    # one seed per architecture: its F32, BF16, F16 and sharded cases start from the same draw
    base_seed = 1000 * (list(ARCHS).index(arch_name) + 1)
    seed, stored, logits, routes, margin, runs, heads = draw_case(arch, dtype, base_seed)

    folder = os.path.join(out_dir, name)
    os.makedirs(folder, exist_ok=True)
    for old in os.listdir(folder):  # stale weights of an earlier run with other sharding
        if old.endswith(".safetensors") or old == "model.safetensors.index.json":
            os.remove(os.path.join(folder, old))
    cfg = dict(arch["config"], torch_dtype=dtype)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    write_weights(folder, stored, shards)
    for fname, text in arch.get("files", {}).items():
        with open(os.path.join(folder, fname), "w") as f:
            f.write(text)
    expected = {
        "case": name,
        "arch": cfg["architectures"][0],
        "model_type": cfg["model_type"],
        "dtype": dtype,
        "seed": seed,
        "ids": IDS,
        "logits": [[f32(v) for v in row] for row in logits.tolist()],
        "moe_layers": [{"layer": l,
                        "experts": experts.tolist(),
                        "weights": [[f32(v) for v in row] for row in weights.tolist()]}
                       for l, experts, weights, _, _ in routes],
        "min_margin": margin,
        # exp(mean cross-entropy) of logits[t] against ids[t + 1], t < T - 1 (routelab-cli eval)
        "perplexity": perplexity(logits, IDS),
        # the same forward under each intervention: experts each token reached (heaviest first;
        # those dropped by capacity left out), and the perplexity
        # a head rule's choices: per layer, each token's routed heads that are on (ascending)
        "head_layers": [{"layer": l, "heads": [[h for h in range(mask.shape[1]) if mask[t, h] > 0 and
                                                 h >= int(mask.shape[1] * 0.5)] for t in range(mask.shape[0])]}
                        for l, mask, _ in heads if cfg["model_type"] != "jetmoe"],
        # JetMoE: per layer, each token's attention experts (the MoA router's top k, ascending)
        "attention_expert_layers": [{"layer": l, "experts": [sorted(row) for row in chosen.tolist()]}
                                    for l, chosen, _ in heads if cfg["model_type"] == "jetmoe"],
        "head_min_margin": head_gap(heads, arch["config"]) if heads else None,
        "interventions": [{"name": name, "flags": flags, "perplexity": perplexity(lg, IDS),
                           "min_margin": m if math.isfinite(m) else None,  # None: every unmasked expert chosen
                           "moe_layers": kept_routes(rt)}
                          for name, flags, lg, rt, m in runs],
    }
    with open(os.path.join(folder, "expected.json"), "w") as f:
        json.dump(expected, f)
        f.write("\n")
    return seed - base_seed, margin, sum(t.numel() for t in stored.values())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", nargs="?")
    ap.add_argument("--only", nargs="+", metavar="CASE", choices=list(CASES))
    ap.add_argument("--list", action="store_true", help="print the case names and exit")
    args = ap.parse_args()
    if args.list:
        print("\n".join(CASES))
        return 0
    if not args.out_dir:
        ap.error("OUT_DIR is required")
    assert sys.byteorder == "little", "safetensors data is little-endian; this writer assumes a little-endian host"
    torch.set_num_threads(1)
    t0 = time.time()
    for name in args.only or CASES:
        redraws, margin, params = make_case(name, args.out_dir)
        m = "-" if margin is None else f"{margin:.4g}"
        print(f"{name:18s} {CASES[name][1]:8s} shards {CASES[name][2]}  params {params:7d}  "
              f"redraws {redraws}  min_margin {m}")
    print(f"wrote {len(args.only or CASES)} cases to {args.out_dir} in {time.time() - t0:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
