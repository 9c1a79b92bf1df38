#!/usr/bin/python3
"""Random weights at the real shapes of two released MoE checkpoints, and PyTorch's eager forward on them.

Issue 23, "Must show" 3: RouteLab's open time, peak RSS and 256-token forward on
granite-3.0-1b-a400m and OLMoE-1B-7B, against PyTorch 1.13 eager on the same weights. The real
weights cannot be downloaded here, so this writes folders with the released configs, tensor
names, shapes, dtype (BF16) and sharding, filled with seeded random numbers; the cost of a forward
does not depend on the values (the routed FLOPs are top-k per token whatever the router picks).

  hf_real_shapes.py make MODEL OUT_DIR [--seed S]
      MODEL is granite-3.0-1b-a400m or olmoe-1b-7b. Writes OUT_DIR/config.json and the BF16
      weights as the hub has them: one model.safetensors for Granite (2.7 GB), shards of at most
      5 GB plus model.safetensors.index.json for OLMoE (13.8 GB). Tensor names, shapes and module
      order come from scripts/hf_tiny_models.py (make_weights), so the layout is the one RouteLab's
      tests already check. Each tensor is drawn from its own generator (seed and name) and
      written a slice at a time: peak memory is one slice, not the file.

  hf_real_shapes.py torch DIR [--tokens 256] [--threads 2] [--dtype float32|bfloat16]
                              [--layers N] [--runs 3] [--json F]
      Reads DIR's safetensors by hand into tensors of the requested dtype (BF16 widened for
      float32), then runs the forward of transformers' eager implementation for the folder's
      architecture over --tokens random ids (fixed seed): one warm-up, then the median of --runs
      timed forwards, under torch.no_grad() and torch.set_num_threads(threads). Prints and writes
      JSON (fields below). The memory the run needs is estimated before anything is read and the
      run refused if it exceeds MemAvailable (OLMoE in float32 is 27.7 GB of weights); --layers N
      loads and runs only the first N decoder layers and reports forward_s_scaled, the time with
      the per-layer time scaled to the full depth (reported for every run, so runs compare).

The forward follows the modeling files of transformers 4.45/4.46 (the versions of these configs):
models/granitemoe/modeling_granitemoe.py and models/olmoe/modeling_olmoe.py, with RMSNorm,
rotary embedding, repeat_kv and eager_attention as in models/llama/modeling_llama.py. The comment
above each piece names the class it follows. Dtypes follow the eager code: RMSNorm in float32 and
cast back, cos/sin cast to the activations' dtype, softmax in float32 and cast back, the router
softmax in float32.

JSON: model, arch, dtype, threads, tokens, layers_run, num_hidden_layers, load_s, forward_s
(median), forward_s_all, forward_s_min, forward_s_scaled (median of per-run scaled times), forward_cpu_s_all
(process CPU seconds per run: ~threads x wall when nothing else competes; OpenMP threads spin
while they wait for each other, so contention inflates it), forward_runqueue_wait_s_all (seconds
the threads waited for a CPU during each run, from /proc/self/task/*/schedstat), peak_rss_bytes
(ru_maxrss * 1024), weight_bytes_on_disk (all safetensors files of DIR), weight_bytes_in_memory,
memory_estimate_bytes, mem_available_bytes, torch_version, gflop (multiply-adds x 2 of what ran:
q/k/v/o projections, the full T x T score and AV matmuls as eager computes them, the router, the
routed experts top-k per token, the LM head), gflop_full_depth, gflops_per_s, cpu (capability,
torch build lines, oneDNN's ISA and bf16 matmul kernel, BLAS library, CPU flags), loadavg_before,
loadavg_after, routing (experts used per layer, busiest expert's token count), logits_finite.
Needs PyTorch and NumPy only.
"""
import argparse
import gc
import json
import math
import os
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no scripts/__pycache__ in the checkout
import hf_tiny_models as tiny  # noqa: E402  (layout, names and module order of the test checkpoints)

# ----------------------------------------------------------------------------------------------
# The released configs.
# ----------------------------------------------------------------------------------------------

# ibm-granite/granite-3.0-1b-a400m-base, config.json. The hub file could not be fetched from here;
# the values are transcribed from copies of it in public code:
#  - every size, the four multipliers, rms_norm_eps, rope_theta, rope_scaling null,
#    attention_bias false, attention_dropout 0.0, hidden_act silu, tie_word_embeddings true: a
#    standalone GraniteMoe port whose loader checks a granite-3.0-1b-a400m config.json key by key
#    and reads the original BF16 model.safetensors (one file, 24 * 9 + 2 tensors, no
#    lm_head.weight);
#  - hidden 1024, intermediate 512, 24 layers, 16 heads, 8 kv heads, 32 experts, top 8, vocab
#    49155, rms_norm_eps 1e-6, rope_theta 10000: two further tests quoting "exact config from
#    ibm-granite/granite-3.0-1b-a400m-instruct" (the base and instruct share the architecture);
#  - input_linear [32, 1024, 1024], output_linear [32, 1024, 512]: "shapes verified against the
#    real checkpoint" in another;
#  - max_position_embeddings 4096: the granite-3.1-1b-a400m-base model card ("extends the context
#    length of Granite-3.0-1B-A400M-Base from 4K to 128K");
#  - bos/eos/pad 0, initializer_range 0.02, router_aux_loss_coef, output_router_logits, use_cache,
#    transformers_version: as scripts/hf_tiny_models.py's GRANITEMOE (not checked against the
#    hub file; none of them changes the forward).
GRANITE_3_0_1B_A400M = {
    "architectures": ["GraniteMoeForCausalLM"], "model_type": "granitemoe",
    "vocab_size": 49155, "hidden_size": 1024, "intermediate_size": 512, "num_hidden_layers": 24,
    "num_attention_heads": 16, "num_key_value_heads": 8,
    "hidden_act": "silu", "rms_norm_eps": 1e-06, "rope_theta": 10000, "rope_scaling": None,
    "max_position_embeddings": 4096, "attention_bias": False, "attention_dropout": 0.0,
    "embedding_multiplier": 12.0, "attention_multiplier": 0.015625, "residual_multiplier": 0.22,
    "logits_scaling": 6.0,
    "num_local_experts": 32, "num_experts_per_tok": 8, "output_router_logits": False,
    "router_aux_loss_coef": 0.01, "initializer_range": 0.02,
    "bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0, "tie_word_embeddings": True,
    "use_cache": True, "torch_dtype": "bfloat16", "transformers_version": "4.46.0.dev0",
}

# allenai/OLMoE-1B-7B-0924, config.json. The hub file could not be fetched from here either;
# transcribed from a verbatim copy of an OLMoE-1B-7B HF config in public code (every key below;
# they equal the defaults of transformers' OlmoeConfig, as its docs list them, except
# intermediate_size, 1024 against the class default 2048), and a second test quoting the same
# sizes, eos 50279 and pad 1 for OLMoE. That copy came from a converted checkpoint
# ("_name_or_path": "step23842-hf", torch_dtype float32, transformers 4.48.1); torch_dtype here is
# bfloat16, what the 0924 release stores (6.9B parameters, 13.8 GB), and transformers_version is
# that of the OLMoE integration (4.43), as in scripts/hf_tiny_models.py's OLMOE.
OLMOE_1B_7B_0924 = {
    "architectures": ["OlmoeForCausalLM"], "model_type": "olmoe",
    "vocab_size": 50304, "hidden_size": 2048, "intermediate_size": 1024, "num_hidden_layers": 16,
    "num_attention_heads": 16, "num_key_value_heads": 16,
    "hidden_act": "silu", "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "rope_scaling": None,
    "max_position_embeddings": 4096, "attention_bias": False, "attention_dropout": 0.0,
    "clip_qkv": None, "num_experts": 64, "num_experts_per_tok": 8, "norm_topk_prob": False,
    "output_router_logits": False, "router_aux_loss_coef": 0.01, "initializer_range": 0.02,
    "eos_token_id": 50279, "pad_token_id": 1, "tie_word_embeddings": False, "use_cache": True,
    "torch_dtype": "bfloat16", "transformers_version": "4.43.0.dev0",
}

MODELS = {"granite-3.0-1b-a400m": GRANITE_3_0_1B_A400M, "olmoe-1b-7b": OLMOE_1B_7B_0924}

# transformers' save_pretrained default max_shard_size "5GB" (parse_size_to_int: GB = 10**9).
MAX_SHARD_BYTES = 5 * 10**9
STD = 0.02            # every matrix; RMSNorm weights are 1 (as the models initialise them)
CHUNK_ELEMS = 1 << 24  # rows drawn per slice: at most 64 MB of float32 at a time
ST_TO_TORCH = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}


def model_name(cfg):
    """The MODELS key whose sizes this config has, else its architecture."""
    keys = ("model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
            "num_attention_heads", "num_key_value_heads")
    for name, ref in MODELS.items():
        if all(cfg.get(k) == ref[k] for k in keys):
            return name
    return cfg["architectures"][0]


# ----------------------------------------------------------------------------------------------
# make: names and shapes from hf_tiny_models.make_weights, values drawn and written a slice at a time.
# ----------------------------------------------------------------------------------------------

class ShapeDraw:
    """Stands in for hf_tiny_models.Draw: the same calls, returning shape-only (meta) tensors."""

    def __init__(self, seed):
        pass

    def normal(self, *shape, std=0.2):
        return torch.empty(shape, device="meta")

    def norm_weight(self, n):
        return torch.empty(n, device="meta")

    def proj_by_head(self, heads, d, hidden, std=0.2):
        return torch.empty(heads * d, hidden, device="meta")


def tensor_specs(cfg):
    """[(name, shape)] in the model's module (state-dict) order."""
    arch = dict(tiny.ARCHS[cfg["model_type"]], config=cfg)
    saved, tiny.Draw = tiny.Draw, ShapeDraw
    try:
        W = tiny.make_weights(arch, 0)
    finally:
        tiny.Draw = saved
    return [(n, tuple(t.shape)) for n, t in W.items()]


def numel(shape):
    return math.prod(shape) if shape else 1


def plan_shards(specs, elem_bytes, max_bytes):
    """transformers' save_pretrained (huggingface_hub split_torch_state_dict_into_shards): walk the
    state dict in module order and start a new shard when the next tensor would pass max_bytes."""
    shards, cur, size = [], [], 0
    for name, shape in specs:
        nb = numel(shape) * elem_bytes
        if cur and size + nb > max_bytes:
            shards.append(cur)
            cur, size = [], 0
        cur.append((name, shape))
        size += nb
    if cur:
        shards.append(cur)
    return shards


def tensor_seed(seed, name):
    return (seed * 0x9E3779B97F4A7C15 + zlib.crc32(name.encode())) % (1 << 63)


def write_values(f, name, shape, seed):
    """BF16 bytes of one tensor: N(0, STD) drawn a slice of rows at a time, or ones for a norm."""
    if name.endswith("norm.weight"):
        f.write(torch.ones(shape, dtype=torch.bfloat16).view(torch.int16).numpy().view(np.uint8))
        return
    g = torch.Generator().manual_seed(tensor_seed(seed, name))
    rows, rest = shape[0], tuple(shape[1:])
    step = max(1, CHUNK_ELEMS // max(1, numel(rest)))
    for r0 in range(0, rows, step):
        t = torch.randn((min(step, rows - r0),) + rest, generator=g).mul_(STD).to(torch.bfloat16)
        f.write(t.view(torch.int16).numpy().reshape(-1).view(np.uint8))
        del t


def write_shard(path, entries, seed):
    """A safetensors file as tiny.write_safetensors writes it (u64 header length, JSON header with
    __metadata__ then the tensors by name, space-padded to 8 bytes, data in name order), streamed."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in sorted(entries):
        nb = numel(shape) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + nb]}
        offset += nb
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name, shape in sorted(entries):
            write_values(f, name, shape, seed)
    return 8 + len(text) + offset


def cmd_make(args):
    cfg = MODELS[args.model]
    t0 = time.time()
    torch.set_num_threads(1)
    specs = tensor_specs(cfg)
    shards = plan_shards(specs, 2, MAX_SHARD_BYTES)
    data_bytes = sum(numel(s) * 2 for _, s in specs)
    os.makedirs(args.out_dir, exist_ok=True)
    free = shutil.disk_usage(args.out_dir).free
    old = [n for n in os.listdir(args.out_dir)
           if n.endswith(".safetensors") or n == "model.safetensors.index.json"]
    old_bytes = sum(os.path.getsize(os.path.join(args.out_dir, n)) for n in old)
    if free + old_bytes < data_bytes + (1 << 30):
        sys.exit(f"{args.out_dir}: {args.model} needs {data_bytes / 1e9:.2f} GB, "
                 f"{(free + old_bytes) / 1e9:.2f} GB free there")
    for n in old:  # stale weights of an earlier run
        os.remove(os.path.join(args.out_dir, n))
    with open(os.path.join(args.out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    total, weight_map = 0, {}
    for i, entries in enumerate(shards):
        fname = ("model.safetensors" if len(shards) == 1
                 else f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors")
        ts = time.time()
        nbytes = write_shard(os.path.join(args.out_dir, fname), entries, args.seed)
        total += nbytes
        weight_map.update({n: fname for n, _ in entries})
        print(f"  {fname}: {len(entries)} tensors, {nbytes} bytes, {time.time() - ts:.1f} s", flush=True)
    if len(shards) > 1:
        index = {"metadata": {"total_size": data_bytes}, "weight_map": dict(sorted(weight_map.items()))}
        with open(os.path.join(args.out_dir, "model.safetensors.index.json"), "w") as f:
            json.dump(index, f, indent=2)
            f.write("\n")
    params = sum(numel(s) for _, s in specs)
    print(f"{args.model}: {params} parameters, {len(specs)} tensors, {len(shards)} file(s), "
          f"{total} bytes of safetensors ({total / 1e9:.3f} GB), seed {args.seed}, "
          f"{time.time() - t0:.1f} s, peak RSS {peak_rss() / 2**20:.0f} MiB -> {args.out_dir}")
    return 0


# ----------------------------------------------------------------------------------------------
# torch: read the folder by hand.
# ----------------------------------------------------------------------------------------------

def peak_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def folder_tensors(folder):
    """{name: (path, st_dtype, shape, start, end)}, start/end absolute offsets in the file."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    elif os.path.exists(os.path.join(folder, "model.safetensors")):
        files = ["model.safetensors"]
    else:
        sys.exit(f"{folder}: no model.safetensors or model.safetensors.index.json")
    out = {}
    for fname in files:
        path = os.path.join(folder, fname)
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        header.pop("__metadata__", None)
        for name, h in header.items():
            if h["dtype"] not in ST_TO_TORCH:
                sys.exit(f"{path}: {name} has dtype {h['dtype']}; this reads {sorted(ST_TO_TORCH)}")
            a, b = h["data_offsets"]
            out[name] = (path, h["dtype"], tuple(h["shape"]), 8 + n + a, 8 + n + b)
    return out


def read_tensor(f, path, st_dtype, shape, start, end, dtype, staging):
    """Read one tensor's bytes straight into tensor memory (no file mapping, no bytes copy): into
    the result itself when the stored dtype is the wanted one, else into the staging buffer, one
    allocation reused by every tensor, and widened/narrowed from there. Only the results are
    allocated, so the heap holds the weights and nothing freed between them."""
    src = ST_TO_TORCH[st_dtype]
    nbytes = numel(shape) * torch.finfo(src).bits // 8
    if nbytes != end - start:
        sys.exit(f"{path}: header size of a {st_dtype} {list(shape)} tensor is {end - start} bytes, "
                 f"its shape needs {nbytes}")
    if src == dtype:
        buf = torch.empty(shape, dtype=dtype)
        raw = buf.reshape(-1).view(torch.uint8)
    else:
        raw = staging[:nbytes]
    view = memoryview(raw.numpy())
    f.seek(start)
    done = 0
    while done < nbytes:
        got = f.readinto(view[done:])
        if not got:
            sys.exit(f"{path}: truncated ({start + done} of {end} bytes); write the folder again")
        done += got
    del view
    if src == dtype:
        return buf
    return raw.view(src).view(shape).to(dtype)


def load_weights(entries, names, dtype):
    W = {}
    by_file = {}
    for name in names:
        path, st, shape, a, b = entries[name]
        by_file.setdefault(path, []).append((a, name))
    convert = [entries[n][4] - entries[n][3] for n in names if ST_TO_TORCH[entries[n][1]] != dtype]
    staging = torch.empty(max(convert), dtype=torch.uint8) if convert else None
    for path, items in by_file.items():
        with open(path, "rb", buffering=0) as f:
            for a, name in sorted(items):  # in file order: sequential reads
                _, st, shape, a, b = entries[name]
                W[name] = read_tensor(f, path, st, shape, a, b, dtype, staging)
    del staging
    gc.collect()
    return W


def needed_names(entries, cfg, layers):
    names = []
    for name in entries:
        if name.startswith("model.layers."):
            if int(name.split(".")[2]) >= layers:
                continue
        names.append(name)
    return names


def mem_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def activation_bytes(cfg, T, elem):
    """A generous bound on what one forward holds besides the weights."""
    H, V = cfg["hidden_size"], cfg["vocab_size"]
    nh, k, I = cfg["num_attention_heads"], cfg["num_experts_per_tok"], cfg["intermediate_size"]
    scores = nh * T * T * (4 + 4 + elem) * 2            # scores, float32 softmax, cast, mask
    experts = T * k * (H + 3 * I) * elem * 2              # gathered inputs, gate/up, outputs
    logits = T * V * (elem + 4)
    return scores + experts + logits + 40 * T * H * elem + (512 << 20)  # + interpreter and torch


# ----------------------------------------------------------------------------------------------
# torch: the forward of transformers' eager implementation, batch 1.
# ----------------------------------------------------------------------------------------------

def rms_norm(x, w, eps):
    # modeling_llama.py LlamaRMSNorm.forward (GraniteMoeRMSNorm and OlmoeRMSNorm are copies):
    # variance in float32, x * rsqrt(variance + eps), back to the input dtype, times weight
    dt = x.dtype
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return w * h.to(dt)


def rotary(T, D, theta, dtype):
    # modeling_llama.py LlamaRotaryEmbedding.forward (GraniteMoe/Olmoe copies): cos and sin of
    # cat(freqs, freqs) computed in float32, returned in the activations' dtype; [1, 1, T, D] as
    # apply_rotary_pos_emb's unsqueeze_dim=1 makes them
    cos, sin = tiny.rope_tables(T, D, float(theta))
    return cos.to(dtype)[None, None], sin.to(dtype)[None, None]


def causal_mask(T, dtype):
    # modeling_llama.py LlamaModel._update_causal_mask: a [1, 1, T, T] additive mask, the dtype's
    # minimum above the diagonal
    return torch.triu(torch.full((T, T), torch.finfo(dtype).min, dtype=dtype), diagonal=1)[None, None]


def repeat_kv(x, n_rep):
    # modeling_llama.py repeat_kv: [B, kv, T, D] -> [B, kv * n_rep, T, D]
    if n_rep == 1:
        return x
    B, kv, T, D = x.shape
    return x[:, :, None, :, :].expand(B, kv, n_rep, T, D).reshape(B, kv * n_rep, T, D)


def attention(cfg, W, a, h, cos, sin, mask):
    """GraniteMoeAttention.forward / OlmoeAttention.forward, eager path."""
    B, T, _ = h.shape
    nh, nkv, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], tiny.head_dim(cfg)
    q = F.linear(h, W[a + "q_proj.weight"])
    k = F.linear(h, W[a + "k_proj.weight"])
    v = F.linear(h, W[a + "v_proj.weight"])
    if cfg["model_type"] == "olmoe":
        # modeling_olmoe.py OlmoeAttention.forward: q_norm(q_proj(x)), k_norm(k_proj(x)) over the
        # whole projection width, before the head split (clip_qkv is null)
        q = rms_norm(q, W[a + "q_norm.weight"], cfg["rms_norm_eps"])
        k = rms_norm(k, W[a + "k_norm.weight"], cfg["rms_norm_eps"])
    q = q.view(B, T, nh, D).transpose(1, 2)
    k = k.view(B, T, nkv, D).transpose(1, 2)
    v = v.view(B, T, nkv, D).transpose(1, 2)
    # modeling_llama.py apply_rotary_pos_emb
    q = q * cos + tiny.rotate_half(q) * sin
    k = k * cos + tiny.rotate_half(k) * sin
    k = repeat_kv(k, nh // nkv)
    v = repeat_kv(v, nh // nkv)
    if cfg["model_type"] == "granitemoe":
        # modeling_granitemoe.py GraniteMoeAttention: scores * self.scaling (attention_multiplier)
        w = torch.matmul(q, k.transpose(2, 3)) * cfg["attention_multiplier"]
    else:
        # modeling_olmoe.py OlmoeAttention.forward: scores / sqrt(head_dim)
        w = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(D)
    w = w + mask
    w = F.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)  # dropout is off in eval
    o = torch.matmul(w, v).transpose(1, 2).contiguous().reshape(B, T, nh * D)
    return F.linear(o, W[a + "o_proj.weight"])


def moe_olmoe(cfg, W, p, h):
    # modeling_olmoe.py OlmoeSparseMoeBlock.forward
    B, T, H = h.shape
    E, k = cfg["num_experts"], cfg["num_experts_per_tok"]
    x = h.view(-1, H)
    router_logits = F.linear(x, W[p + "mlp.gate.weight"])
    routing_weights = F.softmax(router_logits, dim=1, dtype=torch.float)
    routing_weights, selected = torch.topk(routing_weights, k, dim=-1)
    if cfg["norm_topk_prob"]:
        routing_weights /= routing_weights.sum(dim=-1, keepdim=True)
    routing_weights = routing_weights.to(x.dtype)
    out = torch.zeros((B * T, H), dtype=x.dtype)
    # one_hot -> [E, k, tokens]; for each expert the (slot, token) pairs that chose it
    expert_mask = F.one_hot(selected, num_classes=E).permute(2, 1, 0)
    e_ = p + "mlp.experts."
    for e in range(E):
        idx, top_x = torch.where(expert_mask[e])
        cur = x[None, top_x].reshape(-1, H)
        # OlmoeMLP.forward: down_proj(silu(gate_proj(x)) * up_proj(x))
        y = F.linear(F.silu(F.linear(cur, W[f"{e_}{e}.gate_proj.weight"])) *
                     F.linear(cur, W[f"{e_}{e}.up_proj.weight"]), W[f"{e_}{e}.down_proj.weight"])
        y = y * routing_weights[top_x, idx, None]
        out.index_add_(0, top_x, y.to(x.dtype))
    return out.reshape(B, T, H), selected


def moe_granite(cfg, W, p, h):
    # modeling_granitemoe.py GraniteMoeMoE.forward
    B, T, H = h.shape
    E, k = cfg["num_local_experts"], cfg["num_experts_per_tok"]
    m = p + "block_sparse_moe."
    x = h.reshape(-1, H)
    # GraniteMoeTopKGating.forward: logits in float32, top-k, softmax over the k, then the
    # assignments sorted by expert
    logits = F.linear(x, W[m + "router.layer.weight"]).float()
    top_k_logits, top_k_indices = logits.topk(k, dim=1)
    top_k_gates = torch.softmax(top_k_logits, dim=1).type_as(x)
    gates = torch.zeros([top_k_gates.size(0), E], dtype=top_k_gates.dtype).scatter(1, top_k_indices, 1)
    expert_size = gates.long().sum(0).tolist()
    _, index_sorted_experts = top_k_indices.flatten().sort(0)
    batch_index = index_sorted_experts.div(k, rounding_mode="trunc")
    batch_gates = top_k_gates.flatten()[index_sorted_experts]
    expert_inputs = x[batch_index]
    w_in, w_out = W[m + "input_linear.weight"], W[m + "output_linear.weight"]
    # GraniteMoeParallelExperts.forward: split by expert_size, F.linear with weight[i], cat
    hs = torch.cat([F.linear(xi, w_in[i]) for i, xi in enumerate(expert_inputs.split(expert_size, dim=0))], dim=0)
    gate, up = hs.chunk(2, dim=-1)
    hs = F.silu(gate) * up
    outs = torch.cat([F.linear(xi, w_out[i]) for i, xi in enumerate(hs.split(expert_size, dim=0))], dim=0)
    outs = outs * batch_gates[:, None]
    y = torch.zeros((B * T, H), dtype=outs.dtype).index_add(0, batch_index, outs)
    return y.view(B, T, H), top_k_indices


def forward(cfg, W, ids, layers):
    """Logits [1, T, V], the experts of each layer run, and the time of each part."""
    t0 = time.perf_counter()
    dtype = W["model.norm.weight"].dtype
    T = ids.shape[1]
    eps = cfg["rms_norm_eps"]
    granite = cfg["model_type"] == "granitemoe"
    x = F.embedding(ids, W["model.embed_tokens.weight"])
    if granite:
        # modeling_granitemoe.py GraniteMoeModel.forward: inputs_embeds * embedding_multiplier
        x = x * cfg["embedding_multiplier"]
    cos, sin = rotary(T, tiny.head_dim(cfg), cfg["rope_theta"], dtype)
    mask = causal_mask(T, dtype)
    rm = cfg["residual_multiplier"] if granite else 1.0
    moe = moe_granite if granite else moe_olmoe
    t1 = time.perf_counter()
    routes = []
    for l in range(layers):
        p = f"model.layers.{l}."
        # GraniteMoeDecoderLayer.forward / OlmoeDecoderLayer.forward: pre-norm attention and MoE,
        # each branch * residual_multiplier for Granite
        h = attention(cfg, W, p + "self_attn.", rms_norm(x, W[p + "input_layernorm.weight"], eps), cos, sin, mask)
        x = x + h * rm if granite else x + h
        h, chosen = moe(cfg, W, p, rms_norm(x, W[p + "post_attention_layernorm.weight"], eps))
        x = x + h * rm if granite else x + h
        routes.append(chosen)
    t2 = time.perf_counter()
    x = rms_norm(x, W["model.norm.weight"], eps)
    lm = W["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else W["lm_head.weight"]
    logits = F.linear(x, lm)
    if granite:
        # modeling_granitemoe.py GraniteMoeForCausalLM.forward: logits / logits_scaling
        logits = logits / cfg["logits_scaling"]
    t3 = time.perf_counter()
    return logits, routes, {"outside_layers_s": (t1 - t0) + (t3 - t2), "layers_s": t2 - t1}


def flops(cfg, T):
    """(per decoder layer, outside the layers): multiply-adds x 2 of the matmuls eager runs."""
    H, V = cfg["hidden_size"], cfg["vocab_size"]
    nh, nkv, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], tiny.head_dim(cfg)
    E = cfg.get("num_local_experts") or cfg["num_experts"]
    k, I = cfg["num_experts_per_tok"], cfg["intermediate_size"]
    proj = T * (H * nh * D + 2 * H * nkv * D + nh * D * H)
    scores_av = 2 * nh * T * T * D          # the full T x T, as eager computes it before the mask
    router = T * H * E
    experts = T * k * 3 * H * I              # gate, up, down for each (token, chosen expert)
    head = T * H * V
    return 2 * (proj + scores_av + router + experts), 2 * head


# ----------------------------------------------------------------------------------------------
# torch: what the CPU and the torch build give.
# ----------------------------------------------------------------------------------------------

ONEDNN_PROBE = """
import torch, torch.nn.functional as F
torch.set_num_threads(1)
x = torch.randn(256, 1024).bfloat16(); w = torch.randn(512, 1024).bfloat16()
with torch.no_grad():
    F.linear(x, w)
"""


def cpu_report():
    out = {}
    get = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)
    cfg_text = torch.__config__.show()
    if get:
        out["capability"] = get()
        out["capability_from"] = "torch.backends.cpu.get_cpu_capability()"
    else:
        line = [l for l in cfg_text.splitlines() if "CPU capability usage" in l]
        out["capability"] = line[0].split(":", 1)[1].strip() if line else None
        out["capability_from"] = "torch.__config__.show() 'CPU capability usage' (ATen's vectorised kernels)"
    keys = ("MKL", "oneDNN", "MKL-DNN", "AVX", "BLAS", "LAPACK", "OpenMP", "CPU capability")
    lines = []
    for l in cfg_text.splitlines():
        l = l.strip(" -")
        if l.startswith("Build settings"):
            lines += [s.strip() for s in l.split(":", 1)[1].split(",")
                      if any(t in s for t in ("BLAS_INFO", "LAPACK_INFO", "PERF_WITH_AVX", "USE_MKLDNN", "USE_OPENMP"))]
        elif any(key in l for key in keys):
            lines.append(l)
    out["torch_config"] = lines
    out["mkldnn_enabled"] = torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
    out["mkl_available"] = torch.backends.mkl.is_available()
    # which BLAS libraries the process mapped (float32 matmul goes through BLAS_INFO's library)
    try:
        with open("/proc/self/maps") as f:
            libs = sorted({l.split()[-1] for l in f if "blas" in l.lower() or "dnnl" in l.lower()})
        out["mapped_libraries"] = [os.path.realpath(l) for l in libs]
    except OSError:
        pass
    # oneDNN says which ISA it dispatches to and which kernel a bf16 F.linear takes
    try:
        env = dict(os.environ, DNNL_VERBOSE="1", ONEDNN_VERBOSE="1")
        r = subprocess.run([sys.executable, "-c", ONEDNN_PROBE], env=env, capture_output=True,
                           text=True, timeout=120)
        vl = [l for l in r.stdout.splitlines() if l.startswith(("dnnl_verbose", "onednn_verbose"))]
        isa = [l.split("isa:", 1)[1] for l in vl if "isa:" in l]
        ex = [l.split(",") for l in vl if ",exec," in l]
        out["onednn_isa"] = isa[0] if isa else None
        # onednn_verbose,exec,cpu,<primitive>,<implementation>,<prop_kind>,<memory>,<attr>,<aux>,<shape>,<ms>
        out["bf16_linear_onednn"] = [f"{e[3]} {e[4]} {e[-2]}" for e in ex if len(e) > 5] or \
            "no oneDNN primitive ran: bf16 F.linear took ATen's own kernel"
    except (OSError, subprocess.SubprocessError) as e:
        out["onednn_isa"] = f"probe failed: {e}"
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        first = text.split("\n\n")[0]
        field = {l.split(":", 1)[0].strip(): l.split(":", 1)[1].strip() for l in first.splitlines() if ":" in l}
        flags = field.get("flags", "").split()
        out["cpu_model"] = f"{field.get('model name')} (family {field.get('cpu family')}, model {field.get('model')})"
        out["cpu_flags"] = [x for x in flags if x.startswith(("avx", "amx", "fma")) or x in ("f16c",)]
        out["online_cpus"] = os.cpu_count()
    except OSError:
        pass
    return out


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return [float(v) for v in f.read().split()[:3]]
    except OSError:
        return None


def runqueue_wait_s():
    """Seconds this process's threads have waited for a CPU (sum over /proc/self/task/*/schedstat,
    field 2): what other work on the machine took from this run."""
    total = 0
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return total / 1e9


def cmd_torch(args):
    folder = args.dir
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    if cfg.get("model_type") not in ("granitemoe", "olmoe"):
        sys.exit(f"{folder}: {cfg.get('architectures')} - this runs GraniteMoeForCausalLM and OlmoeForCausalLM")
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    elem = torch.finfo(dtype).bits // 8
    L = cfg["num_hidden_layers"]
    layers = L if args.layers is None else args.layers
    if not 1 <= layers <= L:
        sys.exit(f"--layers {args.layers}: the model has {L} layers")
    name = model_name(cfg)

    entries = folder_tensors(folder)
    on_disk = sum(os.path.getsize(p) for p in {e[0] for e in entries.values()})
    names = needed_names(entries, cfg, layers)
    weight_bytes = sum(numel(entries[n][2]) * elem for n in names)
    estimate = weight_bytes + activation_bytes(cfg, args.tokens, elem)
    avail = mem_available()
    if estimate > avail:
        per_layer = sum(numel(e[2]) * elem for n, e in entries.items() if n.startswith("model.layers.0."))
        fit = int((avail - (estimate - per_layer * layers)) // per_layer) if per_layer else 0
        hint = f"--layers N with N <= {fit}" if fit >= 1 else "a smaller --layers or --dtype bfloat16"
        sys.exit(f"{name} ({folder}) in {args.dtype}: needs about {estimate / 1e9:.1f} GB "
                 f"({weight_bytes / 1e9:.1f} GB of weights for {layers} of {L} layers + activations), "
                 f"{avail / 1e9:.1f} GB available; refusing before loading. Run {hint}.")

    torch.set_num_threads(args.threads)
    cpu = cpu_report()
    load_before = loadavg()
    t0 = time.perf_counter()
    W = load_weights(entries, names, dtype)
    gc.collect()
    load_s = time.perf_counter() - t0
    in_memory = sum(t.numel() * t.element_size() for t in W.values())
    print(f"{name}: loaded {len(W)} tensors ({in_memory / 1e9:.2f} GB as {args.dtype}) in {load_s:.2f} s; "
          f"RSS peak {peak_rss() / 1e9:.2f} GB", flush=True)

    g = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, cfg["vocab_size"], (1, args.tokens), generator=g)
    times, scaled, cpus, parts, waits = [], [], [], [], []
    with torch.no_grad():
        for run in range(args.runs + 1):
            r0, q0 = resource.getrusage(resource.RUSAGE_SELF), runqueue_wait_s()
            ts = time.perf_counter()
            logits, routes, part = forward(cfg, W, ids, layers)
            dt = time.perf_counter() - ts
            r1, q1 = resource.getrusage(resource.RUSAGE_SELF), runqueue_wait_s()
            cpu_s = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
            waited = None if q0 is None or q1 is None else q1 - q0
            label = "warm-up" if run == 0 else f"run {run}"
            print(f"  {label}: {dt:.3f} s (layers {part['layers_s']:.3f} s, CPU {cpu_s:.2f} s, "
                  f"waited for a CPU {waited if waited is None else round(waited, 2)} s)", flush=True)
            if run == 0:
                continue
            times.append(dt)
            cpus.append(cpu_s)
            waits.append(None if waited is None else round(waited, 3))
            parts.append(part)
            scaled.append(part["outside_layers_s"] + part["layers_s"] * L / layers)

    per_layer, outside = flops(cfg, args.tokens)
    gflop = (per_layer * layers + outside) / 1e9
    forward_s = statistics.median(times)
    E = cfg.get("num_local_experts") or cfg["num_experts"]
    counts = [torch.bincount(r.flatten(), minlength=E) for r in routes]
    result = {
        "model": name,
        "arch": cfg["architectures"][0],
        "dir": os.path.abspath(folder),
        "dtype": args.dtype,
        "threads": args.threads,
        "tokens": args.tokens,
        "layers_run": layers,
        "num_hidden_layers": L,
        "load_s": round(load_s, 4),
        "forward_s": round(forward_s, 4),
        "forward_s_all": [round(t, 4) for t in times],
        "forward_s_min": round(min(times), 4),
        "forward_s_scaled": round(statistics.median(scaled), 4),
        "forward_layers_s_all": [round(p["layers_s"], 4) for p in parts],
        "forward_cpu_s_all": [round(c, 3) for c in cpus],
        "forward_runqueue_wait_s_all": waits,
        "peak_rss_bytes": peak_rss(),
        "weight_bytes_on_disk": on_disk,
        "weight_bytes_in_memory": in_memory,
        "memory_estimate_bytes": estimate,
        "mem_available_bytes": avail,
        "torch_version": torch.__version__,
        "gflop": round(gflop, 3),
        "gflop_full_depth": round((per_layer * L + outside) / 1e9, 3),
        "gflops_per_s": round(gflop / forward_s, 2),
        "flop_counted": "2 x multiply-adds: q/k/v/o projections, full T x T QK^T and AV (as eager "
                        "computes them before the mask), router, top-k routed experts (gate, up, "
                        "down), LM head; norms, softmax, RoPE, activations not counted",
        "cpu": cpu,
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "routing": {
            "experts_used_per_layer": [int((c > 0).sum()) for c in counts],
            "busiest_expert_tokens_per_layer": [int(c.max()) for c in counts],
        },
        "logits_finite": bool(torch.isfinite(logits).all()),
        "ids_seed": args.seed,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make", help="write a model folder at the real shapes with random BF16 weights")
    m.add_argument("model", choices=list(MODELS))
    m.add_argument("out_dir")
    m.add_argument("--seed", type=int, default=23)
    t = sub.add_parser("torch", help="PyTorch eager forward of a folder, timed")
    t.add_argument("dir")
    t.add_argument("--tokens", type=int, default=256)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    t.add_argument("--layers", type=int, help="load and run only the first N decoder layers")
    t.add_argument("--runs", type=int, default=3, help="timed forwards after one warm-up (median reported)")
    t.add_argument("--seed", type=int, default=0, help="seed of the random token ids")
    t.add_argument("--json", help="also write the JSON here")
    args = ap.parse_args()
    assert sys.byteorder == "little", "safetensors data is little-endian"
    return cmd_make(args) if args.cmd == "make" else cmd_torch(args)


if __name__ == "__main__":
    sys.exit(main())
