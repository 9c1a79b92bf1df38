#!/usr/bin/python3
"""The Hugging Face Llama / Mixtral forward pass written again from scratch in PyTorch (float64).

It loads a directory that `routelab-cli export --format hf --weights` wrote (config.json and
model.safetensors, read by hand: neither transformers nor safetensors is needed) and checks
RouteLab's logits on fixed tokens, so a user knows that a Llama / Mixtral engine computes the same
model from those weights and can continue training them there.

    hf_forward.py EXPORT_DIR CASE.json
    hf_forward.py --selftest

CASE.json: {"tokens": [[int, ...], ...] (B sequences of one length T),
            "logits": [float, ...] (B*T*V, row-major), "tol": 1e-4 (optional, the default)}.
It prints `hf_forward: ARCH B=.. T=.. V=.. max|diff| X` and exits 0 if max|diff| <= tol, 1 if
larger, 2 if the config, the tensors or the case are unsupported or malformed (the message names
the key or tensor), 3 if torch cannot be imported. --selftest builds tiny random Llama and Mixtral
exports, checks this forward against a second, per-token implementation, and checks that a
corrupted logit fails.
"""
import array
import json
import math
import os
import struct
import sys
import tempfile

EXIT_OK, EXIT_FAILED, EXIT_UNSUPPORTED, EXIT_NO_TORCH = 0, 1, 2, 3
try:
    import torch
except ImportError as e:
    print(f"hf_forward: {sys.executable} cannot import torch ({e}); run it with /usr/bin/python3", file=sys.stderr)
    sys.exit(EXIT_NO_TORCH)
F64 = torch.float64
DTYPES = {"F32": (torch.float32, 4), "F64": (torch.float64, 8), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2)}


class Unsupported(Exception):
    pass


def read_safetensors(path):
    """{name: float64 tensor} of a safetensors file (the layout is checked, __metadata__ dropped)."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise Unsupported(f"cannot read '{path}': {e.strerror}")
    if len(blob) < 8:
        raise Unsupported(f"'{path}' is truncated (no header length)")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise Unsupported(f"'{path}': header length {n} runs past the end of the file")
    try:
        header = json.loads(blob[8:8 + n])
    except ValueError as e:
        raise Unsupported(f"'{path}': the header is not JSON ({e})")
    header.pop("__metadata__", None)
    data, out = memoryview(blob)[8 + n:], {}
    for name, info in header.items():
        try:
            dtype, size = DTYPES[info["dtype"]]
            shape, (a, b) = [int(s) for s in info["shape"]], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise Unsupported(f"'{path}': tensor '{name}' has an unsupported dtype or a malformed entry: {info}")
        if not 0 <= a <= b <= len(data) or b - a != math.prod(shape) * size:
            raise Unsupported(f"'{path}': tensor '{name}' offsets [{a}, {b}] do not fit shape {shape} "
                              f"of {info['dtype']}")
        t = torch.frombuffer(bytearray(data[a:b]), dtype=dtype) if b > a else torch.zeros(0, dtype=dtype)
        out[name] = t.to(F64).view(shape)
    return out


def read_config(path):
    """The config.json keys this forward uses, checked; unknown keys are ignored."""
    try:
        with open(path) as f:
            c = json.load(f)
    except (OSError, ValueError) as e:
        raise Unsupported(f"cannot read '{path}': {e}")

    def need(key):
        if key not in c:
            raise Unsupported(f"config.json: missing key '{key}'")
        return c[key]
    arch = (need("architectures") or ["?"])[0]
    kind = {"LlamaForCausalLM": "llama", "MixtralForCausalLM": "mixtral"}.get(arch)
    if kind is None or need("model_type") != kind:
        raise Unsupported(f"config.json: architectures {c['architectures']} / model_type '{c['model_type']}' "
                          "is not LlamaForCausalLM/llama or MixtralForCausalLM/mixtral")
    cfg = {"arch": arch, "moe": kind == "mixtral", "tie": bool(c.get("tie_word_embeddings", False))}
    for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads"):
        cfg[k] = int(need(k))
    cfg["eps"], cfg["theta"] = float(need("rms_norm_eps")), float(need("rope_theta"))
    H, G, C = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["hidden_size"]
    if c.get("head_dim") is None and C % H:
        raise Unsupported(f"config.json: no head_dim and hidden_size {C} is not a multiple of num_attention_heads {H}")
    cfg["head_dim"] = int(c["head_dim"]) if c.get("head_dim") is not None else C // H
    if G <= 0 or H % G or cfg["head_dim"] % 2:
        raise Unsupported(f"config.json: num_attention_heads {H} / num_key_value_heads {G} / head_dim "
                          f"{cfg['head_dim']}: needs H a multiple of G and an even head_dim")
    # HF keys that would change the math, which this forward does not implement.
    for key, ok in (("hidden_act", "silu"), ("rope_scaling", None), ("attention_bias", False), ("mlp_bias", False)):
        if c.get(key, ok) != ok:
            raise Unsupported(f"config.json: {key} = {c[key]!r} is not implemented (only {ok!r})")
    cfg["sliding_window"] = c.get("sliding_window")
    if cfg["moe"]:
        cfg["E"], cfg["k"] = int(need("num_local_experts")), int(need("num_experts_per_tok"))
        if not 1 <= cfg["k"] <= cfg["E"]:
            raise Unsupported(f"config.json: num_experts_per_tok {cfg['k']} not in [1, num_local_experts {cfg['E']}]")
    return cfg


def weights(cfg, tensors):
    """get(name, shape): the checked tensor; afterwards, any tensor left unused is refused."""
    used = set()

    def get(name, *shape):
        if name not in tensors:
            raise Unsupported(f"model.safetensors: missing tensor '{name}'")
        if tuple(tensors[name].shape) != shape:
            raise Unsupported(f"model.safetensors: '{name}' has shape {list(tensors[name].shape)}, "
                              f"expected {list(shape)}")
        used.add(name)
        return tensors[name]
    V, C, F = cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"]
    H, G, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    w = {"embed": get("model.embed_tokens.weight", V, C), "norm": get("model.norm.weight", C), "layers": []}
    if cfg["tie"]:
        used.add("lm_head.weight")  # an HF engine ties it to the embedding whatever the file holds
    w["lm_head"] = w["embed"] if cfg["tie"] else get("lm_head.weight", V, C)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        L = {"ln1": get(p + "input_layernorm.weight", C), "ln2": get(p + "post_attention_layernorm.weight", C),
             "q": get(p + "self_attn.q_proj.weight", H * D, C), "k": get(p + "self_attn.k_proj.weight", G * D, C),
             "v": get(p + "self_attn.v_proj.weight", G * D, C), "o": get(p + "self_attn.o_proj.weight", C, H * D)}
        if cfg["moe"]:
            m = p + "block_sparse_moe."
            L["router"] = get(m + "gate.weight", cfg["E"], C)
            L["experts"] = [(get(f"{m}experts.{e}.w1.weight", F, C), get(f"{m}experts.{e}.w3.weight", F, C),
                             get(f"{m}experts.{e}.w2.weight", C, F)) for e in range(cfg["E"])]
        else:
            L["experts"] = [(get(p + "mlp.gate_proj.weight", F, C), get(p + "mlp.up_proj.weight", F, C),
                             get(p + "mlp.down_proj.weight", C, F))]
        w["layers"].append(L)
    extra = sorted(set(tensors) - used)
    if extra:
        raise Unsupported(f"model.safetensors: tensors a Llama/Mixtral engine would not use: {extra[:5]}")
    return w


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, theta):
    """HF rotate_half RoPE of x (B, heads, T, D), positions 0..T-1."""
    T, D = x.shape[-2], x.shape[-1]
    inv = theta ** (-torch.arange(0, D, 2, dtype=F64) / D)
    ang = torch.arange(T, dtype=F64)[:, None] * inv[None, :]
    cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()
    return x * cos + torch.cat([-x[..., D // 2:], x[..., :D // 2]], -1) * sin


def swiglu(x, w1, w3, w2):
    return (torch.nn.functional.silu(x @ w1.T) * (x @ w3.T)) @ w2.T


def forward(cfg, w, tokens):
    """Logits (B, T, V) of tokens (B, T): the HF LlamaForCausalLM / MixtralForCausalLM forward."""
    B, T = tokens.shape
    H, G, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)
    x = w["embed"][tokens]
    for L in w["layers"]:
        a = rmsnorm(x, L["ln1"], cfg["eps"])
        q = rope((a @ L["q"].T).view(B, T, H, D).transpose(1, 2), cfg["theta"])
        k = rope((a @ L["k"].T).view(B, T, G, D).transpose(1, 2), cfg["theta"]).repeat_interleave(H // G, 1)
        v = (a @ L["v"].T).view(B, T, G, D).transpose(1, 2).repeat_interleave(H // G, 1)
        s = (q @ k.transpose(-1, -2) / math.sqrt(D)).masked_fill(causal, float("-inf"))
        x = x + (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, H * D) @ L["o"].T
        m = rmsnorm(x, L["ln2"], cfg["eps"]).reshape(B * T, -1)
        if not cfg["moe"]:
            y = swiglu(m, *L["experts"][0])
        else:
            p = (m @ L["router"].T).softmax(-1)
            top_p, top_i = p.topk(cfg["k"], -1)
            top_p = top_p / top_p.sum(-1, keepdim=True)
            y = torch.zeros_like(m)
            for e, ex in enumerate(L["experts"]):
                rows, slot = (top_i == e).nonzero(as_tuple=True)
                if len(rows):
                    y.index_add_(0, rows, top_p[rows, slot, None] * swiglu(m[rows], *ex))
        x = x + y.view(B, T, -1)
    return rmsnorm(x, w["norm"], cfg["eps"]) @ w["lm_head"].T


def check(export_dir, case_path, out=print):
    """The CLI's work: returns the exit code."""
    try:
        cfg = read_config(os.path.join(export_dir, "config.json"))
        w = weights(cfg, read_safetensors(os.path.join(export_dir, "model.safetensors")))
        try:
            with open(case_path) as f:
                case = json.load(f)
            tokens = torch.tensor(case["tokens"], dtype=torch.long)
            ref = torch.tensor(case["logits"], dtype=F64)
            tol = float(case.get("tol", 1e-4))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise Unsupported(f"case '{case_path}': needs tokens [[int]] of equal lengths and logits [float] ({e!r})")
        V = cfg["vocab_size"]
        if tokens.dim() != 2 or tokens.numel() == 0:
            raise Unsupported("case: tokens must be B >= 1 sequences of one length T >= 1, "
                              f"got shape {list(tokens.shape)}")
        B, T = tokens.shape
        if ref.dim() != 1 or ref.numel() != B * T * V:
            raise Unsupported(f"case: {ref.numel()} logits, expected B*T*V = {B}*{T}*{V} = {B * T * V}")
        if tokens.min() < 0 or tokens.max() >= V:
            raise Unsupported(f"case: token ids must lie in [0, vocab_size {V})")
        if cfg["sliding_window"] is not None and T > int(cfg["sliding_window"]):
            raise Unsupported(f"config.json: sliding_window {cfg['sliding_window']} < T = {T} is not implemented")
    except Unsupported as e:
        out(f"hf_forward: unsupported: {e}")
        return EXIT_UNSUPPORTED
    with torch.no_grad():
        diff = (forward(cfg, w, tokens).reshape(-1) - ref).abs().max().item()
    out(f"hf_forward: {cfg['arch']} B={B} T={T} V={V} max|diff| {diff:.3g}")
    if not diff <= tol:  # NaN fails too
        out(f"hf_forward: FAILED: max|diff| {diff:.3g} > tol {tol:g}")
        return EXIT_FAILED
    return EXIT_OK


# ---- --selftest: a second, per-token implementation and tiny random exports ----

def reference_logits(cfg, w, seq):
    """Logits (T, V) of one sequence, a token at a time with a KV cache, rotations pair by pair."""
    H, G, D, eps = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"], cfg["eps"]
    half, cache, rows = D // 2, [([], []) for _ in w["layers"]], []

    def norm(v, g):
        return v / math.sqrt(sum(float(e) ** 2 for e in v) / len(v) + eps) * g

    def rotate(v, t):
        v = v.clone()
        for i in range(half):
            c, s = math.cos(t * cfg["theta"] ** (-2 * i / D)), math.sin(t * cfg["theta"] ** (-2 * i / D))
            a, b = float(v[i]), float(v[i + half])
            v[i], v[i + half] = a * c - b * s, b * c + a * s
        return v

    def ffn(v, ex):
        g, u = torch.mv(ex[0], v), torch.mv(ex[1], v)
        return torch.mv(ex[2], g / (1 + torch.exp(-g)) * u)
    for t, tok in enumerate(seq):
        x = w["embed"][tok].clone()
        for L, (ks, vs) in zip(w["layers"], cache):
            a = norm(x, L["ln1"])
            q, k, v = torch.mv(L["q"], a), torch.mv(L["k"], a), torch.mv(L["v"], a)
            ks.append([rotate(k[g * D:(g + 1) * D], t) for g in range(G)])
            vs.append([v[g * D:(g + 1) * D] for g in range(G)])
            heads = []
            for h in range(H):
                g, qh = h // (H // G), rotate(q[h * D:(h + 1) * D], t)
                sc = [float(qh @ ks[j][g]) / math.sqrt(D) for j in range(t + 1)]
                ex = [math.exp(s - max(sc)) for s in sc]
                heads.append(sum(ex[j] / sum(ex) * vs[j][g] for j in range(t + 1)))
            x = x + torch.mv(L["o"], torch.cat(heads))
            m = norm(x, L["ln2"])
            if not cfg["moe"]:
                x = x + ffn(m, L["experts"][0])
                continue
            z = [float(r @ m) for r in L["router"]]
            p = [math.exp(s - max(z)) / sum(math.exp(s2 - max(z)) for s2 in z) for s in z]
            best = sorted(range(len(p)), key=lambda e: -p[e])[:cfg["k"]]
            x = x + sum(p[e] / sum(p[b] for b in best) * ffn(m, L["experts"][e]) for e in best)
        rows.append(torch.mv(w["lm_head"], norm(x, w["norm"])))
    return torch.stack(rows)


def write_safetensors(path, tensors):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        b = array.array("f", t.reshape(-1).tolist()).tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def make_export(d, moe, gen):
    V, C, F, H, G, D, nl = 19, 12, 10, 4, 2, 4, 2  # head_dim 4 != C / H = 3: it must be read, not derived
    c = {"architectures": ["MixtralForCausalLM" if moe else "LlamaForCausalLM"],
         "model_type": "mixtral" if moe else "llama",
         "vocab_size": V, "hidden_size": C, "intermediate_size": F, "num_hidden_layers": nl, "num_attention_heads": H,
         "num_key_value_heads": G, "head_dim": D, "rms_norm_eps": 1e-5, "rope_theta": 500.0,
         "tie_word_embeddings": moe, "hidden_act": "silu", "_routelab_unmapped": ["selftest"]}
    r = lambda *s: torch.randn(*s, generator=gen) * 0.5
    t = {"model.embed_tokens.weight": r(V, C), "model.norm.weight": 1 + r(C) * 0.2}
    if not moe:
        t["lm_head.weight"] = r(V, C)
    else:
        c.update(num_local_experts=4, num_experts_per_tok=2)
    for l in range(nl):
        p = f"model.layers.{l}."
        t.update({p + "input_layernorm.weight": 1 + r(C) * 0.2, p + "post_attention_layernorm.weight": 1 + r(C) * 0.2,
                  p + "self_attn.q_proj.weight": r(H * D, C), p + "self_attn.k_proj.weight": r(G * D, C),
                  p + "self_attn.v_proj.weight": r(G * D, C), p + "self_attn.o_proj.weight": r(C, H * D)})
        if moe:
            t[p + "block_sparse_moe.gate.weight"] = r(4, C)
            for e in range(4):
                for n, s in (("w1", (F, C)), ("w3", (F, C)), ("w2", (C, F))):
                    t[f"{p}block_sparse_moe.experts.{e}.{n}.weight"] = r(*s)
        else:
            t.update({p + "mlp.gate_proj.weight": r(F, C), p + "mlp.up_proj.weight": r(F, C),
                      p + "mlp.down_proj.weight": r(C, F)})
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(c, f)
    write_safetensors(os.path.join(d, "model.safetensors"), t)
    return t


def selftest():
    gen, quiet = torch.Generator().manual_seed(1), (lambda s: None)
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        for moe in (False, True):
            d, case = os.path.join(tmp, "mixtral" if moe else "llama"), os.path.join(tmp, "case.json")
            tensors = make_export(d, moe, gen)
            cfg = read_config(os.path.join(d, "config.json"))
            w = weights(cfg, read_safetensors(os.path.join(d, "model.safetensors")))
            tokens = torch.randint(0, cfg["vocab_size"], (2, 7), generator=gen)
            ref = torch.stack([reference_logits(cfg, w, s.tolist()) for s in tokens])
            diff = (forward(cfg, w, tokens) - ref).abs().max().item()
            assert diff < 1e-10, f"{cfg['arch']}: batched vs per-token forward differ by {diff}"
            logits = ref.reshape(-1).tolist()
            with open(case, "w") as f:
                json.dump({"tokens": tokens.tolist(), "logits": logits, "tol": 1e-4}, f)
            assert check(d, case) == EXIT_OK
            logits[37] += 1e-2
            with open(case, "w") as f:
                json.dump({"tokens": tokens.tolist(), "logits": logits, "tol": 1e-4}, f)
            assert check(d, case, quiet) == EXIT_FAILED, "a logit moved by 1e-2 passed"
            with open(case, "w") as f:
                json.dump({"tokens": tokens.tolist(), "logits": logits[:-1]}, f)
            assert check(d, case, quiet) == EXIT_UNSUPPORTED, "a short logits list was accepted"
            gone = "model.layers.1.block_sparse_moe.experts.3.w2.weight" if moe else "lm_head.weight"
            del tensors[gone]
            write_safetensors(os.path.join(d, "model.safetensors"), tensors)
            msgs = []
            assert check(d, case, msgs.append) == EXIT_UNSUPPORTED and gone in msgs[0], msgs
    print("selftest ok")
    return EXIT_OK


def main(argv):
    if argv == ["--selftest"]:
        return selftest()
    if len(argv) != 2 or argv[0].startswith("-"):
        print("usage: hf_forward.py EXPORT_DIR CASE.json | hf_forward.py --selftest", file=sys.stderr)
        return EXIT_UNSUPPORTED
    return check(argv[0], argv[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
