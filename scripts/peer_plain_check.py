#!/usr/bin/python3
"""The bench's PyTorch peer (app/peer/torch_peer.py) against plain PyTorch of the same model.

`routelab-cli bench --peer torch` prints RouteLab's speed over the peer's; those ratios are only
honest if the peer is as fast as PyTorch allows. This script writes the same model again as the
most direct nn.Module code a PyTorch user would write (RMSNorm, CoPE after the paper's reference
code with a table per head, GQA by repeating K and V per query head, a causal-mask buffer,
SwiGLU, a KV cache grown by torch.cat), loads the checkpoint's weights into both, checks that they
compute the same logits (float64 and float32) and the same greedy decode, then times, in one
process and interleaved call by call, what the bench times for both:

  forward  the forward at B = 16, T = seq_len, under no_grad (ms per call);
  decode   greedy generation through the KV cache, a one-token prompt then seq_len - 1 cached
           steps (ms per token, seq_len tokens a call, generation's window as the bench's).

Each round times one call of each, in an order that rotates from round to round, so every model
sees the same load on a shared machine. It prints each figure's median over the rounds and, per
peer, the median of the per-round ratios peer / plain (above 1: the peer is slower). --peer adds another version of the peer script (for
instance the one before a change, `git show REV:PATH > old.py`) to the same rounds.

The plain model implements the dense seed-baseline family only: CoPE (per-head table) or no
positions, all heads, full causal window, a dense SwiGLU FFN, pre-norm RMSNorm, with or without
W_O, a final norm and tied embeddings. Other configs exit 2.

Usage: scripts/peer_plain_check.py CHECKPOINT [--threads N] [--rounds R] [--peer PATH]...
CHECKPOINT: a RouteLab checkpoint, e.g. from
  build/app/routelab-cli train --preset seed-baseline --steps 20 --out /tmp/sb
  (then /tmp/sb/checkpoint.safetensors). Exit codes: 0 ok, 1 the models disagree, 2 unsupported.
"""
import argparse
import importlib.util
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "..", "app", "peer", "torch_peer.py")


# ---- plain PyTorch ----

class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class CoPE(nn.Module):
    """Contextual position encoding (Golovneva et al. 2024, arXiv:2405.18719), the paper's code
    with one position table per head."""

    def __init__(self, npos_max, n_heads, head_dim):
        super().__init__()
        self.npos_max = npos_max
        self.pos_emb = nn.Parameter(torch.zeros(n_heads, npos_max, head_dim))

    def forward(self, query, attn_logits):
        gates = torch.sigmoid(attn_logits)
        pos = gates.flip(-1).cumsum(dim=-1).flip(-1)
        pos = pos.clamp(max=self.npos_max - 1)
        pos_ceil = pos.ceil().long()
        pos_floor = pos.floor().long()
        logits_int = torch.matmul(query, self.pos_emb.transpose(-1, -2))
        logits_ceil = logits_int.gather(-1, pos_ceil)
        logits_floor = logits_int.gather(-1, pos_floor)
        w = pos - pos_floor
        return logits_ceil * w + logits_floor * (1 - w)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        a = c["attention"]
        C, self.H, self.G, self.D = c["d_model"], c["n_heads"], c["n_kv_heads"], c["head_dim"]
        self.wq = nn.Linear(C, self.H * self.D, bias=False)
        self.wk = nn.Linear(C, self.G * self.D, bias=False)
        self.wv = nn.Linear(C, self.G * self.D, bias=False)
        self.wo = nn.Linear(self.H * self.D, C, bias=False) if a["use_wo"] else None
        self.cope = CoPE(a["cope_npos"], self.H, self.D) if a["positional"] == "cope" else None
        T = c["seq_len"]
        self.register_buffer("mask", torch.tril(torch.ones(T, T, dtype=torch.bool)), persistent=False)

    def forward(self, x, cache=None):
        B, T, _ = x.shape
        q = self.wq(x).view(B, T, self.H, self.D).transpose(1, 2)
        k = self.wk(x).view(B, T, self.G, self.D).transpose(1, 2)
        v = self.wv(x).view(B, T, self.G, self.D).transpose(1, 2)
        if cache is not None:
            if cache:
                k = torch.cat([cache[0], k], dim=2)
                v = torch.cat([cache[1], v], dim=2)
            cache[:] = [k, v]
        L = k.shape[2]
        k = k.repeat_interleave(self.H // self.G, dim=1)
        v = v.repeat_interleave(self.H // self.G, dim=1)
        scale = 1.0 / math.sqrt(self.D)
        att = (q @ k.transpose(-2, -1)) * scale
        att = att.masked_fill(~self.mask[L - T:L, :L], float("-inf"))
        if self.cope is not None:
            att = att + self.cope(q * scale, att)
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, self.H * self.D)
        return self.wo(y) if self.wo is not None else y


class SwiGLU(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.w_gate = nn.Linear(dim, hidden, bias=False)
        self.w_up = nn.Linear(dim, hidden, bias=False)
        self.w_down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        return self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attn_norm = RMSNorm(c["d_model"], c["norm_eps"])
        self.attn = Attention(c)
        self.ffn_norm = RMSNorm(c["d_model"], c["norm_eps"])
        self.ffn = SwiGLU(c["d_model"], c["ffn"]["d_ff"])

    def forward(self, x, cache=None):
        x = x + self.attn(self.attn_norm(x), cache)
        return x + self.ffn(self.ffn_norm(x))


class PlainTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.tok_emb = nn.Embedding(c["vocab_size"], c["d_model"])
        self.layers = nn.ModuleList(Block(c) for _ in range(c["n_layers"]))
        self.final_norm = RMSNorm(c["d_model"], c["norm_eps"]) if c["final_norm"] else None
        self.lm_head = None if c["tie_embeddings"] else nn.Linear(c["d_model"], c["vocab_size"], bias=False)

    def forward(self, idx, caches=None):
        x = self.tok_emb(idx)
        for i, layer in enumerate(self.layers):
            x = layer(x, caches[i] if caches is not None else None)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return self.lm_head(x) if self.lm_head is not None else x @ self.tok_emb.weight.t()

    @torch.no_grad()
    def generate(self, prompt_token, n_new):
        caches = [[] for _ in self.layers]
        logits = self(torch.tensor([[prompt_token]]), caches)
        out = []
        for _ in range(n_new):
            next_token = torch.argmax(logits[:, -1, :], dim=-1, keepdim=True)
            out.append(next_token)
            logits = self(next_token, caches)
        return [int(t) for t in out]


def unsupported(c):
    """Why the plain model cannot run config c, or None."""
    a = c["attention"]
    want = {"norm": "rmsnorm", "norm_position": "pre", "ffn.kind": "swiglu", "moe.kind": "dense",
            "heads.kind": "all_heads", "window.kind": "full", "lm_head_bias": False}
    got = {"norm": c["norm"], "norm_position": c["norm_position"], "ffn.kind": c["ffn"]["kind"],
           "moe.kind": c["moe"]["kind"], "heads.kind": a["heads"]["kind"], "window.kind": a["window"]["kind"],
           "lm_head_bias": c["lm_head_bias"]}
    for k, v in want.items():
        if got[k] != v:
            return f"{k} = {got[k]!r} (the plain model implements {v!r})"
    if a["positional"] not in ("cope", "none") or (a["positional"] == "cope" and a["cope_shared"]):
        return f"attention.positional = {a['positional']!r} (shared {a['cope_shared']}): per-head CoPE or none"
    return None


def plain_from_peer(peer_model):
    """The plain model with the peer's weights, parameter by parameter."""
    plain = PlainTransformer(peer_model.c)
    src = dict(peer_model.named_parameters())
    with torch.no_grad():
        for name, p in plain.named_parameters():
            key = name.replace("attn.cope.pos_emb", "attn.cope_pos")
            p.copy_(src.pop(key))
    if src:
        raise ValueError(f"peer parameters the plain model has no place for: {', '.join(sorted(src))}")
    return plain.to(peer_model.tok_emb.weight.dtype)


# ---- the peers ----

def load_peer(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def peer_model(mod, checkpoint):
    return mod.load_case(torch, mod.define_model(torch), checkpoint)[1]


# ---- timing ----

def seconds(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="a RouteLab checkpoint (safetensors)")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--rounds", type=int, default=40, help="rounds of one call each (medians over them)")
    ap.add_argument("--peer", action="append", default=[], metavar="PATH",
                    help="another version of torch_peer.py to time beside app/peer/torch_peer.py")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    paths = [os.path.normpath(PEER)] + args.peer
    mods = {p: load_peer(p, f"peer{i}") for i, p in enumerate(paths)}
    models = {}
    for p, mod in mods.items():
        try:
            models[p] = peer_model(mod, args.checkpoint)
        except mod.Unsupported as e:
            print(f"{p}: {e}", file=sys.stderr)
            return 2
    c = models[paths[0]].c
    why = unsupported(c)
    if why:
        print(f"the plain model does not implement {why}", file=sys.stderr)
        return 2
    plain = plain_from_peer(models[paths[0]])
    T, V = c["seq_len"], c["vocab_size"]
    window = mods[paths[0]].model_window(c, T, 4.0)  # generation's window, as the bench passes it
    label = {p: ("peer" if i == 0 else f"peer {p}") for i, p in enumerate(paths)}

    # Same logits (float64: the maths; float32: what is timed) and the same greedy decode.
    tok = torch.randint(0, V, (4, T), generator=torch.Generator().manual_seed(2))
    ok = True
    with torch.no_grad():
        for dtype, tol in ((torch.float64, 1e-9), (torch.float32, 1e-4)):
            ref = plain.to(dtype)(tok)
            for p, m in models.items():
                diff = float((m.to(dtype)(tok)[0] - ref).abs().max())
                print(f"logits {str(dtype)[6:]}: max|{label[p]} - plain| {diff:.2e} (tolerance {tol:g})")
                ok &= diff <= tol
    for m in [plain] + list(models.values()):
        m.float()
    gen = plain.generate(1, T - 1)
    for p, m in models.items():
        same = m.generate_greedy(1, T - 1, window) == gen
        print(f"greedy decode of {T} tokens: {label[p]} {'==' if same else '!='} plain")
        ok &= same
    if not ok:
        print("the peer and the plain model disagree: no timing", file=sys.stderr)
        return 1

    x16 = torch.randint(0, V, (16, T), generator=torch.Generator().manual_seed(1))
    runs = {"plain": (lambda: plain(x16), lambda: plain.generate(1, T - 1))}
    for p, m in models.items():
        runs[label[p]] = ((lambda m=m: m(x16)), (lambda m=m: m.generate_greedy(1, T - 1, window)))
    names = list(runs)
    fwd = {n: [] for n in names}
    dec = {n: [] for n in names}
    print(f"timing {', '.join(names)}: {args.rounds} rounds, one call each a round, "
          f"{torch.get_num_threads()} threads, PyTorch {torch.__version__}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}", flush=True)
    with torch.no_grad():
        for f, d in runs.values():  # warm-up
            f(), d()
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for n in order:
                fwd[n].append(seconds(runs[n][0]) * 1e3)
            for n in order:
                dec[n].append(seconds(runs[n][1]) * 1e3 / T)
    print(f"{'':28s} {'forward B=16 ms':>16s} {'tok/s':>9s} {'/ plain':>8s}   {'decode ms/token':>16s} {'/ plain':>8s}")
    for n in names:
        rf = median([a / b for a, b in zip(fwd[n], fwd["plain"])])
        rd = median([a / b for a, b in zip(dec[n], dec["plain"])])
        print(f"{n[:28]:28s} {median(fwd[n]):16.2f} {16 * T / median(fwd[n]) * 1e3:9.0f} {rf:8.3f}   "
              f"{median(dec[n]):16.3f} {rd:8.3f}")
    print("(/ plain: the median of the per-round ratios of times; above 1 slower than plain PyTorch)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
