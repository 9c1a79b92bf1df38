#!/usr/bin/python3
"""RouteLab's transformer written again in PyTorch: the peer of `routelab-cli bench --peer torch`.

It loads a checkpoint RouteLab wrote (safetensors, the config in __metadata__), checks that the
first training step's loss on the same tokens matches RouteLab's (CE + beta * MoH balance +
alpha * MoE aux + w_z * z-loss, as model_forward returns it), then times the same four things as
speed_measure() in core/infer/speed.cpp: a full training step at B = 1 and B = 16 (zero_grad,
forward, loss, backward, clip 1.0, AdamW), the forward at B = 16 under no_grad, and greedy decode
with a KV cache (a one-token prompt, then seq_len - 1 cached steps). docs/benchmarks.md explains
what it runs and how to read the figures.

`torch_peer.py --logits CHECKPOINT CASE.json` instead loads the checkpoint into the peer by tensor
name and shape alone, runs its forward in float64 on CASE's tokens and compares the logits with
RouteLab's: CASE.json is {"tokens": [[...], ...] (B sequences of T ids), "logits": [B*T*V floats,
RouteLab's model_forward without targets], "tol": 1e-4 (absolute; optional)}. It prints
`torch_peer logits: max|diff| X ...` (tests/core/test_checkpoint_torch.cpp runs it).

Exit codes: 0 ok, 1 the loss (or logits) check failed, 2 a config this peer does not implement,
a checkpoint tensor it cannot place by name and shape in --logits mode (the message names it), or
bad usage, 3 torch cannot be imported, 4 any other error (a file it cannot read; the message says).
"""
import argparse
import ctypes
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import time

EXIT_CHECK_FAILED, EXIT_UNSUPPORTED, EXIT_NO_TORCH, EXIT_ERROR = 1, 2, 3, 4
TOLERANCE = 1e-4       # |loss difference| of the first step
# --check-cases with gradients: per tensor, max |difference| / max |RouteLab's|. Not tighter: where a
# CoPE position lands exactly on an integer (RouteLab's float32 suffix sums do, about once a layer
# for 4 x 80 tokens) f = c and its derivative is 0, in RouteLab as in the reference code; torch's
# cumsum rounds that position just below the integer and takes the slope, which moves that one
# row's dq and the weights' gradients by about 1e-3 (docs/benchmarks.md).
GRAD_TOLERANCE = 1e-2
INSTALL_HINT = "install python3-torch with scripts/setup.sh --with-torch"


class Unsupported(Exception):
    pass


class WeightMismatch(ValueError):
    """A checkpoint tensor missing, of the wrong shape or dtype, or with no place in the model."""


# ---- the checkpoint ----

def read_safetensors(path):
    """(header dict without __metadata__, metadata dict, raw bytes of the data section)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"checkpoint '{path}' is truncated")
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    return header, meta, memoryview(blob)[8 + n:]


# Every key of RouteLab's model config this peer knows. A key it does not know may change the
# math, so the config is refused rather than timed as a different model.
KNOWN_KEYS = {
    "d_model", "n_layers", "n_heads", "n_kv_heads", "head_dim", "seq_len", "vocab_size", "norm",
    "norm_position", "norm_eps", "final_norm", "tie_embeddings", "lm_head_bias",
    "attention.use_wo", "attention.positional", "attention.cope_npos", "attention.cope_shared",
    "attention.rope_theta", "attention.window.kind", "attention.window.size", "attention.window.strategy",
    "attention.window.min", "attention.window.max", "attention.heads.kind", "attention.heads.n_active",
    "attention.heads.n_shared", "attention.heads.n_active_routed", "attention.heads.beta",
    "attention.heads.gate_scaling", "ffn.kind", "ffn.d_ff", "moe.kind", "moe.n_experts", "moe.top_k",
    "moe.routing", "moe.capacity_factor", "moe.n_shared_experts", "moe.d_ff_expert", "moe.aux_weight",
    "moe.aux_convention", "moe.z_loss_weight", "moe.jitter", "moe.n_heads",
    # engine routing: the peer implements only the values that leave today's router as it is
    "attention.heads.head_bias", "attention.heads.bias_update_rate", "moe.score_function", "moe.expert_bias",
    "moe.bias_update_rate", "moe.load_balancing", "moe.global_aux_window", "moe.topk_scaling_factor",
    "moe.n_groups", "moe.group_topk", "moe.token_drop_policy",
    # the settings of imported Hugging Face models (docs/hf-models.md): only their defaults
    "embedding_multiplier", "residual_multiplier", "logits_scaling", "attention.scale", "attention.qkv_bias",
    "attention.qk_norm", "moe.topk_weights", "moe.d_ff_shared", "moe.shared_expert_gate", "moe.dense_layers",
    "attention.rope_scaling.kind", "attention.rope_scaling.factor", "attention.rope_scaling.low_freq_factor",
    "attention.rope_scaling.high_freq_factor", "attention.rope_scaling.original_max_positions",
    # routing interventions on a frozen model: only their defaults
    "moe.masked_experts", "moe.inference_capacity_factor",
    # MoH-LLaMA3's query-norm head rule and JetMoE's attention experts, JetMoE's biases and final-norm
    # epsilon (forward-only imports): only the learned router and the defaults
    "attention.heads.router", "attention.heads.n_experts", "attention.out_bias", "moe.out_bias", "final_norm_eps",
}
KNOWN_VALUES = {
    "norm": {"rmsnorm", "layernorm"}, "norm_position": {"pre", "post"},
    "attention.positional": {"none", "learned", "rope", "cope"},
    "attention.window.kind": {"full", "sliding", "adaptive"},
    "attention.window.strategy": {"fixed", "seq_len", "entropy"},
    "attention.heads.kind": {"all_heads", "static_pruning", "moh"},
    "attention.heads.gate_scaling": {"official", "paper"},
    "ffn.kind": {"swiglu", "relu", "gelu"},
    "moe.kind": {"dense", "moe"},
    # The bench's steps run model_forward without training options: no capacity, noise or jitter,
    # so these three reduce to a top-k selection (docs/benchmarks.md).
    "moe.routing": {"topk", "top1_capacity", "noisy_topk"},
    "moe.aux_convention": {"switch", "hf"},
    "attention.heads.head_bias": {False}, "moe.expert_bias": {False}, "moe.score_function": {"softmax"},
    "moe.load_balancing": {"aux_loss"}, "moe.topk_scaling_factor": {1.0}, "moe.group_topk": {0},
    "embedding_multiplier": {1.0}, "residual_multiplier": {1.0}, "logits_scaling": {1.0}, "attention.scale": {0.0},
    "attention.qkv_bias": {False}, "attention.qk_norm": {"none"}, "moe.topk_weights": {"auto"},
    "moe.d_ff_shared": {0}, "moe.shared_expert_gate": {False}, "moe.dense_layers": {""},
    "attention.rope_scaling.kind": {"none"}, "moe.masked_experts": {""}, "moe.inference_capacity_factor": {0.0},
    "attention.heads.router": {"learned"}, "attention.heads.n_experts": {0}, "attention.out_bias": {False},
    "moe.out_bias": {False}, "final_norm_eps": {0.0},
}


def flatten(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from flatten(v, prefix + k + ".")
        else:
            yield prefix + k, v


def check_supported(model_cfg):
    """Raises Unsupported naming the first key or value this peer does not implement."""
    for key, value in flatten(model_cfg):
        if key not in KNOWN_KEYS:
            raise Unsupported(f"model.{key} is not known to the torch peer")
        allowed = KNOWN_VALUES.get(key)
        if allowed is not None and value not in allowed:
            raise Unsupported(f"model.{key} = {value!r} is not implemented by the torch peer "
                              f"(it implements {', '.join(sorted(str(v) for v in allowed))})")


def model_window(c, T, prev_entropy):
    """RouteLab's model_window(): keys visible to a query, itself included (routing-math §1.2)."""
    w = c["attention"]["window"]
    if w["kind"] == "full":
        return T
    if w["kind"] == "sliding" or w["strategy"] == "fixed":
        return w["size"]
    if w["strategy"] == "seq_len":
        return min(max(T // 2, w["min"]), w["max"])
    return w["min"] + int(math.floor((w["max"] - w["min"]) * min(prev_entropy / 4.0, 1.0) + 0.5))


# ---- the model (defined once torch is imported) ----

def define_model(torch):
    nn, F = torch.nn, torch.nn.functional

    class RMSNorm(nn.Module):
        def __init__(self, dim, eps):
            super().__init__()
            self.eps = eps
            self.weight = nn.Parameter(torch.ones(dim))

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight

    def make_norm(c):
        if c["norm"] == "rmsnorm":
            return RMSNorm(c["d_model"], c["norm_eps"])
        return nn.LayerNorm(c["d_model"], eps=c["norm_eps"])

    class SwiGLU(nn.Module):
        def __init__(self, dim, hidden):
            super().__init__()
            self.w_gate = nn.Linear(dim, hidden, bias=False)
            self.w_up = nn.Linear(dim, hidden, bias=False)
            self.w_down = nn.Linear(hidden, dim, bias=False)

        def forward(self, x):
            return self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))

    class MLP(nn.Module):  # ReLU / GELU (tanh form), with biases
        def __init__(self, dim, hidden, kind):
            super().__init__()
            self.w_up = nn.Linear(dim, hidden)
            self.w_down = nn.Linear(hidden, dim)
            self.act = nn.ReLU() if kind == "relu" else nn.GELU(approximate="tanh")

        def forward(self, x):
            return self.w_down(self.act(self.w_up(x)))

    class HeadRouter(nn.Module):
        """MoH gates (routing-math §3.1-3.4): shared heads always on, top-K of the routed ones."""

        def __init__(self, c):
            super().__init__()
            h = c["attention"]["heads"]
            C, H = c["d_model"], c["n_heads"]
            self.S, self.K, self.R = h["n_shared"], h["n_active_routed"], H - h["n_shared"]
            self.paper = h["gate_scaling"] == "paper"
            if self.S > 0:
                self.w_shared = nn.Linear(C, self.S, bias=False)
                self.w_type = nn.Linear(C, 2, bias=False)
            self.w_routed = nn.Linear(C, self.R, bias=False)

        def forward(self, x):  # (..., C) -> gates (..., H), balance loss
            r = self.w_routed(x).softmax(-1)
            mask = torch.zeros_like(r).scatter_(-1, r.topk(self.K, dim=-1).indices, 1.0)
            rm = r * mask
            if self.S > 0:
                s = self.w_shared(x).softmax(-1)
                alpha = self.w_type(x).softmax(-1)
                a1, a2 = alpha[..., :1], alpha[..., 1:]
            if self.paper:
                routed = rm * (a2 if self.S > 0 else 1.0)
                shared = a1 * s if self.S > 0 else None
            else:
                scale = 2.0 * a2 * self.K if self.S > 0 else float(self.K)
                routed = scale * rm / rm.sum(-1, keepdim=True).clamp_min(1e-9)
                shared = 2.0 * self.S * a1 * s if self.S > 0 else None
            gates = routed if shared is None else torch.cat([shared, routed], -1)
            f = mask.reshape(-1, self.R).mean(0)  # pick share (a count: no gradient)
            P = r.reshape(-1, self.R).mean(0)
            balance = (f * P).sum() * (1.0 if self.paper else self.R)
            return gates, balance

    rope_tables = {}  # (D, theta, dtype) -> cos, sin of positions 0..n-1, grown when a call needs more

    def rope(x, pos0, theta):  # x (B, heads, T, D): rotate-half RoPE at positions pos0..pos0+T-1
        D, T = x.shape[-1], x.shape[-2]
        key = (D, theta, x.dtype)
        cos, sin = rope_tables.get(key, (None, None))
        if cos is None or cos.shape[0] < pos0 + T:
            n = max(pos0 + T, 2 * cos.shape[0] if cos is not None else 0)
            inv = theta ** (-2.0 * torch.arange(D // 2, dtype=x.dtype) / D)
            ang = torch.arange(n, dtype=x.dtype)[:, None] * inv
            cos, sin = ang.cos(), ang.sin()
            rope_tables[key] = cos, sin
        cos, sin = cos[pos0:pos0 + T], sin[pos0:pos0 + T]
        x1, x2 = x[..., :D // 2], x[..., D // 2:]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)

    class KVCache:
        """Per layer: keys (after RoPE) and values of the tokens so far, (B, G, capacity, D), stored
        latest first as attention reads them: position t at row capacity - 1 - t."""

        def __init__(self, c, B, capacity, dtype):
            shape = (B, c["n_kv_heads"], capacity, c["head_dim"])
            self.k = [torch.zeros(shape, dtype=dtype) for _ in range(c["n_layers"])]
            self.v = [torch.zeros(shape, dtype=dtype) for _ in range(c["n_layers"])]
            self.capacity = capacity

        def update(self, layer, k, v, pos0):  # k, v (B, G, T, D) of positions pos0..; returns 0..end, latest first
            end, n = pos0 + k.shape[2], self.capacity
            if k.shape[2] > 1:
                k, v = k.flip(2), v.flip(2)
            self.k[layer][:, :, n - end:n - pos0] = k
            self.v[layer][:, :, n - end:n - pos0] = v
            return self.k[layer][:, :, n - end:], self.v[layer][:, :, n - end:]

    class Attention(nn.Module):
        """Causal GQA attention with CoPE / RoPE / none, windows, head gates and optional W_O.

        Keys and values are kept latest first, so CoPE's suffix sums over keys are a plain cumsum.
        GQA copies no key or value: the R = H / G query heads of a kv head are stacked as R * T rows
        of one matrix against that kv head's keys."""

        def __init__(self, c, layer):
            super().__init__()
            a = c["attention"]
            C, H, G, D = c["d_model"], c["n_heads"], c["n_kv_heads"], c["head_dim"]
            self.layer, self.H, self.G, self.D = layer, H, G, D
            self.scale = 1.0 / math.sqrt(D)
            self.positional, self.theta = a["positional"], a["rope_theta"]
            self.heads = a["heads"]
            self.wq = nn.Linear(C, H * D, bias=False)
            self.wk = nn.Linear(C, G * D, bias=False)
            self.wv = nn.Linear(C, G * D, bias=False)
            self.wo = nn.Linear(H * D, C, bias=False) if a["use_wo"] else None
            if self.positional == "cope":
                P = a["cope_npos"]
                self.cope_pos = nn.Parameter(torch.zeros((P, D) if a["cope_shared"] else (H, P, D)))
            self.router = HeadRouter(c) if self.heads["kind"] == "moh" else None
            self.static_on = {}  # dtype -> static pruning's fixed gates (H,)

        def head_gates(self, x):
            if self.router is not None:
                return self.router(x)
            if self.heads["kind"] == "static_pruning":
                on = self.static_on.get(x.dtype)
                if on is None:
                    on = self.static_on[x.dtype] = (torch.arange(self.H) < self.heads["n_active"]).to(x.dtype)
                return on.expand(*x.shape[:-1], self.H), None
            return None, None

        def cope_logits(self, q, s):
            """Position logits (routing-math §1.5) of the scaled queries q (B, H, T, D) for the scaled
            scores s (B, H, T, L; keys latest first, -inf outside the window): gates sigma(s), suffix
            sums p_ij = sum_{t=j..i} g_it (a cumsum, keys being latest first), clamped to P - 1, and
            the linear interpolation between the floor and ceiling positions' logits."""
            e = self.cope_pos
            P = e.shape[-2]
            grad = torch.is_grad_enabled()  # without autograd, the temporaries are reused in place
            g = torch.sigmoid(s)
            p = g.cumsum(-1) if grad else g.cumsum_(-1)
            p.clamp_(max=P - 1)
            z = torch.matmul(q, e.transpose(-1, -2))  # (B, H, T, P); a per-head table broadcasts over B
            pd = p.detach()  # >= 0: long() is the floor
            lo, hi = pd.long(), pd.ceil().long()
            w = p.frac() if grad else p.frac_()
            z_lo, z_hi = z.gather(-1, lo), z.gather(-1, hi)
            return torch.lerp(z_lo, z_hi, w) if grad else z_lo.lerp_(z_hi, w)

        def forward(self, x, pos0, hidden, cache=None):
            """hidden: (T, L) bool, True where a key (latest first) is outside the query's window,
            or None when every key is visible (the model caches it per (pos0, T, window))."""
            B, T, _ = x.shape
            H, G, D = self.H, self.G, self.D
            gates, balance = self.head_gates(x)
            q = self.wq(x).view(B, T, H, D).transpose(1, 2)
            k = self.wk(x).view(B, T, G, D).transpose(1, 2)
            v = self.wv(x).view(B, T, G, D).transpose(1, 2)
            if self.positional == "rope":
                q, k = rope(q, pos0, self.theta), rope(k, pos0, self.theta)
            if cache is not None:
                k, v = cache.update(self.layer, k, v, pos0)
            else:
                k, v = k.flip(2), v.flip(2)
            L = k.shape[2]
            # GQA: query head h = g R + r reads kv head g; rows (r, t) of group g are one matrix
            q = q.reshape(B, G, H // G * T, D) * self.scale
            s = torch.matmul(q, k.transpose(-1, -2)).view(B, H, T, L)  # scaled scores
            if hidden is not None:
                s.masked_fill_(hidden, float("-inf"))
            if self.positional == "cope":
                s.add_(self.cope_logits(q.view(B, H, T, D), s))
            att = s.softmax(-1)
            y = torch.matmul(att.view(B, G, H // G * T, L), v).view(B, H, T, D)
            if gates is not None:
                y = y * gates.transpose(1, 2).unsqueeze(-1)
            y = y.transpose(1, 2).reshape(B, T, H * D)
            return (self.wo(y) if self.wo is not None else y), balance

    class MoE(nn.Module):
        """Top-k MoE FFN (routing-math §2): router, gathered experts, shared experts, aux and z-loss."""

        def __init__(self, c):
            super().__init__()
            m = c["moe"]
            C = c["d_model"]
            self.E = m["n_experts"]
            self.K = 1 if m["routing"] == "top1_capacity" else m["top_k"]
            self.renormalised = (m["routing"] == "topk" and m["n_shared_experts"] == 0) or m["routing"] == "noisy_topk"
            self.aux_scale = self.E * self.K if m["aux_convention"] == "hf" else self.E
            self.router = nn.Linear(C, self.E, bias=False)
            if m["routing"] == "noisy_topk":  # only read while training with noise, which the bench does not
                self.noise = nn.Linear(C, self.E, bias=False)
            self.experts = nn.ModuleList(SwiGLU(C, m["d_ff_expert"]) for _ in range(self.E))
            self.shared = nn.ModuleList(SwiGLU(C, m["d_ff_expert"]) for _ in range(m["n_shared_experts"]))

        def forward(self, x):
            shape = x.shape
            x = x.reshape(-1, shape[-1])
            logits = self.router(x)
            probs = logits.softmax(-1)
            top_logits, top = logits.topk(self.K, dim=-1)
            weights = top_logits.softmax(-1) if self.renormalised else probs.gather(-1, top)
            out = torch.zeros_like(x)
            for e, expert in enumerate(self.experts):
                rows, slot = (top == e).nonzero(as_tuple=True)
                if rows.numel() == 0:
                    continue
                y = expert(x.index_select(0, rows)) * weights[rows, slot].unsqueeze(-1)
                out.index_add_(0, rows, y)
            for expert in self.shared:
                out = out + expert(x)
            f = torch.bincount(top.flatten(), minlength=self.E).to(x.dtype) / top.numel()
            aux = self.aux_scale * (f * probs.mean(0)).sum()
            zloss = torch.logsumexp(logits, -1).pow(2).mean()
            return out.view(shape), aux, zloss

    class Block(nn.Module):
        def __init__(self, c, layer):
            super().__init__()
            self.pre = c["norm_position"] == "pre"
            self.attn_norm = make_norm(c)
            self.attn = Attention(c, layer)
            self.ffn_norm = make_norm(c)
            if c["moe"]["kind"] == "moe":
                self.moe = MoE(c)
            elif c["ffn"]["kind"] == "swiglu":
                self.ffn = SwiGLU(c["d_model"], c["ffn"]["d_ff"])
            else:
                self.ffn = MLP(c["d_model"], c["ffn"]["d_ff"], c["ffn"]["kind"])

        def feed_forward(self, x, losses):
            if not hasattr(self, "moe"):
                return self.ffn(x)
            y, aux, zloss = self.moe(x)
            losses["aux"].append(aux)
            losses["z"].append(zloss)
            return y

        def forward(self, x, pos0, hidden, cache, losses):
            if self.pre:
                a, bal = self.attn(self.attn_norm(x), pos0, hidden, cache)
                x = x + a
                x = x + self.feed_forward(self.ffn_norm(x), losses)
            else:
                a, bal = self.attn(x, pos0, hidden, cache)
                h = self.attn_norm(x + a)
                x = self.ffn_norm(h + self.feed_forward(h, losses))
            if bal is not None:
                losses["balance"].append(bal)
            return x

    class RouteLabTransformer(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.c = c
            C, V = c["d_model"], c["vocab_size"]
            self.tok_emb = nn.Embedding(V, C)
            if c["attention"]["positional"] == "learned":
                self.pos_emb = nn.Embedding(c["seq_len"], C)
            self.layers = nn.ModuleList(Block(c, l) for l in range(c["n_layers"]))
            if c["final_norm"]:
                self.final_norm = make_norm(c)
            if not c["tie_embeddings"]:
                self.lm_head = nn.Linear(C, V, bias=False)
            if c["lm_head_bias"]:
                self.lm_head_bias = nn.Parameter(torch.zeros(V))
            self.hidden_masks = {}  # (pos0, T, window) -> hidden_keys()

        def hidden_keys(self, pos0, T, window):
            """(T, L = pos0 + T) bool: True where key j, keys latest first, is outside the window of
            query pos0 + i (later than it, or window or more positions earlier); None when none is."""
            key = (pos0, T, window)
            if key not in self.hidden_masks:
                i = torch.arange(pos0, pos0 + T)[:, None]
                j = torch.arange(pos0 + T - 1, -1, -1)[None, :]
                hidden = (j > i) | (j <= i - window)
                self.hidden_masks[key] = hidden if bool(hidden.any()) else None
            return self.hidden_masks[key]

        def forward(self, tokens, pos0=0, window=None, cache=None):
            """Logits (B, T, V) and the per-layer routing losses of this forward."""
            T = tokens.shape[1]
            if window is None:  # as model_forward: model_window for this T, previous entropy 0
                window = model_window(self.c, T, 0.0)
            x = self.tok_emb(tokens)
            if hasattr(self, "pos_emb"):
                x = x + self.pos_emb.weight[pos0:pos0 + T]
            hidden = self.hidden_keys(pos0, T, window)
            losses = {"balance": [], "aux": [], "z": []}
            for block in self.layers:
                x = block(x, pos0, hidden, cache, losses)
            if hasattr(self, "final_norm"):
                x = self.final_norm(x)
            w = self.tok_emb.weight if self.c["tie_embeddings"] else self.lm_head.weight
            return F.linear(x, w, getattr(self, "lm_head_bias", None)), losses

        def loss(self, tokens, targets):
            """RouteLab's training loss: CE + beta mean_l L_b + alpha mean_l L_aux + w_z mean_l L_z."""
            logits, losses = self(tokens)
            c = self.c
            targets = targets.reshape(-1)
            ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.masked_fill(targets < 0, -100),
                                 ignore_index=-100)  # RouteLab masks every target < 0
            parts = {"ce": ce}
            total = ce
            if c["attention"]["heads"]["kind"] == "moh":
                parts["moh_balance"] = torch.stack(losses["balance"]).mean()
                total = total + c["attention"]["heads"]["beta"] * parts["moh_balance"]
            if c["moe"]["kind"] == "moe":
                parts["moe_aux"] = torch.stack(losses["aux"]).mean()
                parts["zloss"] = torch.stack(losses["z"]).mean()
                total = total + c["moe"]["aux_weight"] * parts["moe_aux"] + c["moe"]["z_loss_weight"] * parts["zloss"]
            return total, parts

        @torch.no_grad()
        def generate_greedy(self, prompt_token, n_new, window):
            """As RouteLab's generate(): the prompt token, then n_new greedy tokens through the cache."""
            cache = KVCache(self.c, 1, self.c["seq_len"], self.tok_emb.weight.dtype)
            logits, _ = self(torch.tensor([[prompt_token]]), 0, window, cache)
            out = []
            for i in range(n_new):
                nxt = logits[:, -1].argmax(-1, keepdim=True)  # (1, 1): the next step's tokens
                out.append(nxt)
                logits, _ = self(nxt, i + 1, window, cache)
            return [int(t) for t in out]

    return RouteLabTransformer


def routelab_name(key):
    """The RouteLab tensor name (docs/architecture.md §4.1) of a parameter of the torch model."""
    if key.endswith(".weight"):
        return key[:-len(".weight")]
    if key.endswith(".bias"):
        base = key[:-len(".bias")]
        head, _, last = base.rpartition(".")
        if last.startswith("w_"):  # ffn.w_up.bias -> ffn.b_up
            return f"{head}.b_{last[2:]}"
        return base + "_bias"      # attn_norm.bias -> attn_norm_bias
    return key                     # cope_pos, lm_head_bias


def load_weights(torch, model, header, data):
    """Copies every checkpoint tensor into the model (converting to the model's dtype); every name
    and shape must match both ways, or WeightMismatch names the tensor."""
    used = set()
    with torch.no_grad():
        for key, p in model.named_parameters():
            name = routelab_name(key)
            info = header.get(name)
            if info is None:
                raise WeightMismatch(f"the checkpoint has no tensor '{name}' (torch parameter {key})")
            if info["dtype"] != "F32" or list(info["shape"]) != list(p.shape):
                raise WeightMismatch(f"tensor '{name}' is {info['dtype']} {info['shape']}, "
                                     f"the peer needs F32 {list(p.shape)}")
            a, b = info["data_offsets"]
            p.copy_(torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32).view(p.shape))
            used.add(name)
    extra = sorted(set(header) - used)
    if extra:
        raise WeightMismatch(f"checkpoint tensors the peer has no place for: {', '.join(extra)}")


# ---- BLAS: which library and which OpenBLAS kernel ----

def loaded_blas_libs():
    libs = []
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            name = os.path.basename(path)
            if ("blas" in name or "mkl" in name) and path not in libs:
                libs.append(path)
    return libs


def openblas_info(path):
    lib = ctypes.CDLL(path)
    lib.openblas_get_corename.restype = ctypes.c_char_p
    lib.openblas_get_config.restype = ctypes.c_char_p
    return {"library": path, "kernel": lib.openblas_get_corename().decode(),
            "config": lib.openblas_get_config().decode(), "threads": lib.openblas_get_num_threads()}


def openblas_lib(libs):
    """The loaded library that defines openblas_get_corename (the real OpenBLAS, not a shim)."""
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
            if hasattr(lib, "openblas_get_corename") and "openblas" in os.path.basename(path):
                return path
        except OSError:
            pass
    for path in libs:
        try:
            if hasattr(ctypes.CDLL(path), "openblas_get_corename"):
                return path
        except OSError:
            pass
    return None


def kernel_without_coretype(path):
    """The kernel OpenBLAS picks by itself: loaded in a fresh process with OPENBLAS_CORETYPE unset."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    code = ("import ctypes,sys; l=ctypes.CDLL(sys.argv[1]); l.openblas_get_corename.restype=ctypes.c_char_p; "
            "print(l.openblas_get_corename().decode())")
    out = subprocess.run([sys.executable, "-c", code, path], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def blas_report(torch):
    config = torch.__config__.show()
    info = [part.strip() for part in config.replace("\n", ",").split(",")
            if part.strip().startswith(("BLAS_INFO", "LAPACK_INFO", "USE_MKLDNN", "USE_MKL="))]
    libs = loaded_blas_libs()
    rep = {"torch_config": info, "loaded": libs, "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE")}
    path = openblas_lib(libs)
    if path:
        ob = openblas_info(path)
        rep.update(library=path, kernel=ob["kernel"], openblas_config=ob["config"], openblas_threads=ob["threads"])
        rep["name"] = ob["config"].split(" NO_")[0].split(" DYNAMIC")[0] + " (" + path + ")"
        rep["kernel_no_coretype"] = kernel_without_coretype(path)
    else:
        rep["name"] = ", ".join(info + libs) or "unknown"
    return rep


# ---- timing, as speed_measure() does it ----

def rate(fn, seconds, repeats):
    """Calls per second of fn: a warm-up call, then the median of `repeats` runs of >= seconds."""
    fn()
    rates = []
    for _ in range(repeats):
        calls, t0 = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            el = time.perf_counter() - t0
            if el >= seconds:
                break
        rates.append(calls / el)
    return sorted(rates)[len(rates) // 2]


def timings(torch, model, seconds, repeats):
    c = model.c
    T, V = c["seq_len"], c["vocab_size"]
    gen = torch.Generator().manual_seed(1)
    # lr 1e-9 keeps the weights put, as speed_measure's AdamW does; weight decay 0 there too.
    opt = torch.optim.AdamW(model.parameters(), lr=1e-9, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)

    def train_rate(B):
        tok = torch.randint(0, V, (B, T), generator=gen)
        tgt = torch.randint(0, V, (B, T), generator=gen)

        def step():
            opt.zero_grad(set_to_none=True)
            loss, _ = model.loss(tok, tgt)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        return B * T * rate(step, seconds, repeats)

    out = {"train_tok_s_b1": train_rate(1), "train_tok_s_b16": train_rate(16)}
    tok = torch.randint(0, V, (16, T), generator=gen)

    def forward():
        with torch.no_grad():
            model(tok)
    out["forward_tok_s_b16"] = 16 * T * rate(forward, seconds, repeats)
    window = model_window(c, T, 4.0)  # generation's window, as speed_measure passes it
    per_s = rate(lambda: model.generate_greedy(1, T - 1, window), seconds, repeats)
    out["decode_ms_per_token"] = 1000.0 / (per_s * T)
    return out


# ---- main ----

def load_case(torch, Model, checkpoint):
    header, meta, data = read_safetensors(checkpoint)
    if "routelab_config" not in meta:
        raise ValueError(f"checkpoint '{checkpoint}' has no routelab_config in its metadata")
    cfg = json.loads(meta["routelab_config"])["model"]
    check_supported(cfg)
    if torch is None:
        return cfg, None
    model = Model(cfg)
    load_weights(torch, model, header, data)
    return cfg, model


def loss_check(torch, model, tokens_path, batch, loss_routelab):
    T = model.c["seq_len"]
    with open(tokens_path, "rb") as f:
        ids = torch.frombuffer(bytearray(f.read()), dtype=torch.int32).long()
    if ids.numel() != 2 * batch * T:
        raise ValueError(f"'{tokens_path}' holds {ids.numel()} ids, expected tokens and targets of {batch}x{T}")
    tok, tgt = ids[:batch * T].view(batch, T), ids[batch * T:].view(batch, T)
    with torch.no_grad():
        loss, parts = model.loss(tok, tgt)
    loss = float(loss)
    res = {"torch": loss, "parts": {k: float(v) for k, v in parts.items()}, "tolerance": TOLERANCE}
    if loss_routelab is not None:
        diff = abs(loss - loss_routelab)
        res.update(routelab=loss_routelab, diff=diff, passed=bool(diff <= TOLERANCE))
    return res


def grad_check(torch, model, tokens_path, batch, grads_path):
    """Backward of the same loss against RouteLab's model_backward: per tensor, max |diff| / max |RouteLab|."""
    T = model.c["seq_len"]
    with open(tokens_path, "rb") as f:
        ids = torch.frombuffer(bytearray(f.read()), dtype=torch.int32).long()
    tok, tgt = ids[:batch * T].view(batch, T), ids[batch * T:].view(batch, T)
    model.zero_grad(set_to_none=True)
    model.loss(tok, tgt)[0].backward()
    header, _, data = read_safetensors(grads_path)
    worst, worst_name = 0.0, None
    for key, p in model.named_parameters():
        name = routelab_name(key)
        a, b = header[name]["data_offsets"]
        ref = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32).view(p.shape)
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        err = float((g - ref).abs().max()) / max(float(ref.abs().max()), 1e-6)
        if err > worst:
            worst, worst_name = err, name
    return {"grad_max_rel_err": worst, "grad_worst_tensor": worst_name, "grad_tolerance": GRAD_TOLERANCE,
            "grad_passed": worst <= GRAD_TOLERANCE}


def import_torch():
    try:
        import torch
        return torch
    except ImportError as e:
        print(f"torch_peer: cannot import torch ({e}); {INSTALL_HINT}", file=sys.stderr)
        sys.exit(EXIT_NO_TORCH)


def run_cases(args):
    """--check-cases: several (checkpoint, tokens, batch, loss[, grads]) checks in one process, no timing."""
    with open(args.check_cases) as f:
        cases = json.load(f)
    torch = import_torch()
    torch.set_num_threads(args.threads)
    Model = define_model(torch)
    results, code = [], 0
    for case in cases:
        try:
            _, model = load_case(torch, Model, case["checkpoint"])
            r = loss_check(torch, model, case["tokens"], case["batch"], case["loss_routelab"])
            line = f"loss routelab {r['routelab']:.6f} torch {r['torch']:.6f} |diff| {r['diff']:.2e}"
            if case.get("grads"):  # RouteLab's gradients of the same loss, in a safetensors file
                r.update(grad_check(torch, model, case["tokens"], case["batch"], case["grads"]))
                r["passed"] = r["passed"] and r["grad_passed"]
                line += f", gradients max rel. err {r['grad_max_rel_err']:.1e} ({r['grad_worst_tensor']})"
            print(f"{os.path.basename(case['checkpoint'])}: {line}{'' if r['passed'] else '  FAILED'}")
            code = code or (0 if r["passed"] else EXIT_CHECK_FAILED)
        except Unsupported as e:
            r = {"unsupported": str(e), "passed": False}
            code = code or EXIT_UNSUPPORTED
        results.append(r)
    write_json(args.json_out, {"cases": results})
    return code


def run_logits(args):
    """--logits CHECKPOINT CASE: the peer's float64 logits against RouteLab's, max |difference|."""
    checkpoint, case_path = args.logits
    with open(case_path) as f:
        case = json.load(f)
    try:
        load_case(None, None, checkpoint)  # refuse an unknown config before importing torch
    except Unsupported as e:
        print(f"torch_peer: {e}; refusing to compare logits of a different model", file=sys.stderr)
        return EXIT_UNSUPPORTED
    torch = import_torch()
    torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float64)  # the parameters and every intermediate in float64
    try:
        _, model = load_case(torch, define_model(torch), checkpoint)
    except WeightMismatch as e:
        print(f"torch_peer: {e}; refusing to compare logits", file=sys.stderr)
        return EXIT_UNSUPPORTED
    c = model.c
    tokens = case.get("tokens")
    if (not isinstance(tokens, list) or not tokens or not all(isinstance(r, list) for r in tokens)
            or len({len(r) for r in tokens}) != 1 or not tokens[0]):
        raise ValueError(f"'{case_path}': tokens must be a non-empty list of equally long token lists")
    B, T, V = len(tokens), len(tokens[0]), c["vocab_size"]
    if T > c["seq_len"] and c["attention"]["positional"] == "learned":
        raise ValueError(f"'{case_path}': sequences of {T} tokens, but learned positions stop at seq_len {c['seq_len']}")
    ids = torch.tensor(tokens, dtype=torch.long)
    if int(ids.min()) < 0 or int(ids.max()) >= V:
        raise ValueError(f"'{case_path}': token ids must be in 0..{V - 1}")
    ref = torch.tensor(case.get("logits", []), dtype=torch.float64)
    if ref.numel() != B * T * V:
        raise ValueError(f"'{case_path}' holds {ref.numel()} logits, expected B x T x V = {B}x{T}x{V} = {B * T * V}")
    tol = float(case.get("tol", TOLERANCE))
    model.eval()
    with torch.no_grad():
        logits, _ = model(ids)
    diff = (logits.reshape(-1) - ref).abs()
    worst = int(diff.nan_to_num(float("inf")).argmax())
    mx = float(diff[worst])
    passed = mx <= tol  # False for NaN
    b, t, v = worst // (T * V), worst // V % T, worst % V
    print(f"torch_peer logits: max|diff| {mx:.3e} (sequence {b}, position {t}, token {v}; {B}x{T}x{V} logits, "
          f"peer in float64, tolerance {tol:g}){'' if passed else '  FAILED'}", flush=True)
    if args.json_out:
        write_json(args.json_out, {"max_abs_diff": mx, "at": [b, t, v], "tolerance": tol, "passed": passed,
                                   "batch": B, "seq": T, "vocab": V, "max_abs_logit": float(ref.abs().max()),
                                   "torch_version": torch.__version__})
    return 0 if passed else EXIT_CHECK_FAILED


def write_json(path, obj):
    text = json.dumps(obj, indent=2)
    if path:
        with open(path, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", help="safetensors file written by RouteLab (checkpoint_save)")
    ap.add_argument("--tokens", help="int32 little-endian tokens then targets, batch x seq_len each")
    ap.add_argument("--batch", type=int, default=16, help="rows of --tokens")
    ap.add_argument("--loss-routelab", type=float, help="RouteLab's first-step loss on --tokens")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (the bench's threads)")
    ap.add_argument("--seconds", type=float, default=1.0, help="minimum time of one measurement")
    ap.add_argument("--repeats", type=int, default=3, help="measurements per figure (median)")
    ap.add_argument("--json-out", help="write the report here (default: stdout)")
    ap.add_argument("--check-only", action="store_true", help="the loss check alone, no timing")
    ap.add_argument("--check-cases", help="JSON list of {checkpoint, tokens, batch, loss_routelab[, grads]}: checks only")
    ap.add_argument("--logits", nargs=2, metavar=("CHECKPOINT", "CASE"),
                    help="compare the float64 logits on CASE's tokens with CASE's (RouteLab's); no timing")
    ap.add_argument("--no-coretype-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.logits:
        return run_logits(args)
    if args.check_cases:
        return run_cases(args)
    if not args.checkpoint:
        ap.error("--checkpoint is required")
    try:
        cfg, _ = load_case(None, None, args.checkpoint)  # refuse an unknown config before importing torch
    except Unsupported as e:
        print(f"torch_peer: {e}; refusing to time a different model", file=sys.stderr)
        return EXIT_UNSUPPORTED
    torch = import_torch()
    torch.set_num_threads(args.threads)
    _, model = load_case(torch, define_model(torch), args.checkpoint)
    rep = {"torch_version": torch.__version__, "threads": torch.get_num_threads(), "blas": blas_report(torch)}
    if args.tokens:
        chk = loss_check(torch, model, args.tokens, args.batch, args.loss_routelab)
        rep["loss_check"] = chk
        if "routelab" in chk:
            print(f"loss routelab {chk['routelab']:.6f} torch {chk['torch']:.6f} |diff| {chk['diff']:.2e}"
                  f" ({'ok' if chk['passed'] else 'FAILED'}, tolerance {TOLERANCE:g})", flush=True)
            if not chk["passed"]:
                write_json(args.json_out, rep)
                return EXIT_CHECK_FAILED
    if args.check_only:
        write_json(args.json_out, rep)
        return 0
    rep.update(timings(torch, model, args.seconds, args.repeats))
    blas = rep["blas"]
    if not args.no_coretype_child and blas.get("kernel_no_coretype") not in (None, blas.get("kernel")):
        # OpenBLAS reads OPENBLAS_CORETYPE when it loads: the other kernel needs another process.
        env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "child.json")
            cmd = [sys.executable, os.path.abspath(__file__)] + sys.argv[1:] + ["--no-coretype-child", "--json-out", out]
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
            with open(out) as f:
                child = json.load(f)
        rep["no_coretype"] = {k: child[k] for k in ("train_tok_s_b1", "train_tok_s_b16", "forward_tok_s_b16",
                                                    "decode_ms_per_token")}
        rep["no_coretype"]["blas_kernel"] = child["blas"].get("kernel")
        if "loss_check" in child:
            rep["no_coretype"]["loss_check"] = child["loss_check"]
    write_json(args.json_out, rep)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, ValueError, KeyError, subprocess.CalledProcessError) as e:
        print(f"torch_peer: {e}", file=sys.stderr)
        sys.exit(EXIT_ERROR)
