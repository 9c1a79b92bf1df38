#!/usr/bin/env python3
"""Reference logits and expert choices of a downloaded Hugging Face checkpoint, from transformers.

For checking RouteLab against transformers on a real model (not run in CI: it needs the weights
and the transformers package). It loads the folder with AutoModelForCausalLM in float32 (eager
attention), runs one forward of the ids with output_router_logits=True and writes the JSON that
`routelab-cli probe --model DIR --ids ... --json F` writes:

  {"ids": [T], "logits": [T][V], "moe_layers": [{"layer": l, "experts": [T][k], "weights": [T][k]}]}

Each MoE layer's experts and combine weights are computed from its router logits by that
architecture's rule (as in its modeling file):
  mixtral                      softmax, top-k, renormalised to sum 1 (MixtralSparseMoeBlock)
  olmoe, qwen2_moe, qwen3_moe  softmax, top-k, renormalised only if norm_topk_prob (*SparseMoeBlock)
  granitemoe                   top-k of the logits, softmax over those k (GraniteMoeTopKGating)
Experts are listed in torch.topk's order (descending score). Only sparse layers are listed
(Qwen's mlp_only_layers / decoder_sparse_step layers are dense and have no router).

Usage:
  python3 scripts/hf_reference_logits.py --model DIR --ids 1,17,255 --json ref.json
  python3 scripts/hf_reference_logits.py --model DIR --text-file probe.txt --json ref.json
      (--text-file: ids from the folder's tokenizer, special tokens added as transformers does)
  routelab-cli probe --model DIR --ids 1,17,255 --json ours.json
  python3 scripts/hf_reference_logits.py --compare ref.json ours.json [--tol 1e-4]
      prints max |delta logit| and, per MoE layer, how many tokens chose a different expert set;
      exit 1 if any expert set differs (or the files do not match in shape), or, with --tol, if
      max |delta logit| > tol.
--compare reads any two files of this format, e.g. the expected.json of scripts/hf_tiny_models.py.
"""
import argparse
import json
import sys


# --------------------------------------------------------------------------- reference (transformers)

def sparse_layer_indices(cfg):
    """The layers that have a router, as each modeling file's DecoderLayer.__init__ decides."""
    n = cfg.num_hidden_layers
    mt = cfg.model_type
    if mt in ("qwen2_moe", "qwen3_moe"):
        only = set(getattr(cfg, "mlp_only_layers", None) or [])
        step = getattr(cfg, "decoder_sparse_step", 1) or 1
        return [l for l in range(n) if l not in only and cfg.num_experts > 0 and (l + 1) % step == 0]
    if mt in ("mixtral", "olmoe", "granitemoe"):
        return list(range(n))
    return []


def route(torch, mt, cfg, router_logits, k):
    """(experts [T, k], weights [T, k]) from one layer's router logits [T, E]."""
    logits = router_logits.float()
    # Some transformers versions hand back probabilities instead of logits; both rules below give
    # the same experts and weights from probabilities (softmax is monotonic, and softmax over the
    # top-k logits equals the top-k probabilities renormalised).
    looks_like_probs = bool((logits >= 0).all()) and bool(
        torch.allclose(logits.sum(-1), torch.ones(logits.shape[0]), atol=1e-4))
    if mt == "granitemoe":
        top, experts = logits.topk(k, dim=-1)
        weights = top / top.sum(-1, keepdim=True) if looks_like_probs else torch.softmax(top, dim=-1)
        return experts, weights
    probs = logits if looks_like_probs else torch.softmax(logits, dim=-1, dtype=torch.float32)
    weights, experts = torch.topk(probs, k, dim=-1)
    renorm = True if mt == "mixtral" else bool(getattr(cfg, "norm_topk_prob", False))
    if renorm:
        weights = weights / weights.sum(-1, keepdim=True)
    return experts, weights


def reference(args):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if args.ids:
        ids = [int(t) for t in args.ids.split(",") if t.strip()]
    else:
        with open(args.text_file, encoding="utf-8") as f:
            text = f.read()
        ids = AutoTokenizer.from_pretrained(args.model)(text)["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    cfg = model.config
    mt = cfg.model_type
    layers = sparse_layer_indices(cfg)
    extra = {"output_router_logits": True} if layers else {}  # a dense Llama takes no such argument
    with torch.no_grad():
        out = model(torch.tensor([ids]), use_cache=False, **extra)
    logits = out.logits[0].float()

    router = [r for r in (getattr(out, "router_logits", None) or ())]
    if len(router) == cfg.num_hidden_layers and len(layers) != len(router):
        router = [router[l] for l in layers]  # a version that keeps a slot (None) per dense layer
    router = [r for r in router if r is not None]
    if len(router) != len(layers):
        sys.exit(f"{len(router)} router outputs for {len(layers)} sparse layers of {mt}: "
                 "this transformers version reports router logits differently")
    k = cfg.num_experts_per_tok
    moe = []
    for l, r in zip(layers, router):
        r = r.reshape(-1, r.shape[-1])[-len(ids):]  # [T, E] (batch 1)
        experts, weights = route(torch, mt, cfg, r, k)
        moe.append({"layer": l, "experts": experts.tolist(), "weights": weights.tolist()})

    result = {"ids": ids, "logits": logits.tolist(), "moe_layers": moe,
              "model_type": mt, "source": "transformers"}
    with open(args.json, "w") as f:
        json.dump(result, f)
        f.write("\n")
    print(f"{args.json}: {len(ids)} tokens, vocab {logits.shape[-1]}, {len(moe)} MoE layers ({mt})")
    return 0


# --------------------------------------------------------------------------- compare

def compare(path_a, path_b, tol):
    with open(path_a) as f:
        a = json.load(f)
    with open(path_b) as f:
        b = json.load(f)
    ok = True
    if "ids" in a and "ids" in b and a["ids"] != b["ids"]:
        print("ids differ")
        ok = False
    la, lb = a["logits"], b["logits"]
    if len(la) != len(lb) or any(len(x) != len(y) for x, y in zip(la, lb)):
        print(f"logits shapes differ: {len(la)}x{len(la[0]) if la else 0} vs {len(lb)}x{len(lb[0]) if lb else 0}")
        return 1
    dmax, where = 0.0, (0, 0)
    for t, (x, y) in enumerate(zip(la, lb)):
        for v, (p, q) in enumerate(zip(x, y)):
            if abs(p - q) > dmax:
                dmax, where = abs(p - q), (t, v)
    print(f"max |delta logit| = {dmax:.3g} (token {where[0]}, vocab id {where[1]})")
    if tol is not None and dmax > tol:
        print(f"  over the tolerance {tol:g}")
        ok = False

    ma = {m["layer"]: m for m in a.get("moe_layers", [])}
    mb = {m["layer"]: m for m in b.get("moe_layers", [])}
    if set(ma) != set(mb):
        print(f"MoE layers differ: {sorted(ma)} vs {sorted(mb)}")
        ok = False
    for l in sorted(set(ma) & set(mb)):
        ea, eb = ma[l]["experts"], mb[l]["experts"]
        if len(ea) != len(eb):
            print(f"layer {l}: {len(ea)} vs {len(eb)} tokens")
            ok = False
            continue
        differ = [t for t in range(len(ea)) if set(ea[t]) != set(eb[t])]
        wmax = 0.0
        for t in range(len(ea)):
            if t in differ:
                continue
            wa = dict(zip(ea[t], ma[l]["weights"][t]))
            wb = dict(zip(eb[t], mb[l]["weights"][t]))
            wmax = max([wmax] + [abs(wa[e] - wb[e]) for e in wa])
        line = f"layer {l}: expert sets identical for all {len(ea)} tokens" if not differ else \
            f"layer {l}: expert sets differ at {len(differ)} of {len(ea)} tokens (first: token {differ[0]}: " \
            f"{ea[differ[0]]} vs {eb[differ[0]]})"
        print(f"{line}; max |delta weight| {wmax:.3g}")
        ok = ok and not differ
    print("identical expert sets" if ok else "MISMATCH")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--model", help="checkpoint folder (config.json, *.safetensors, tokenizer)")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--ids", help="comma-separated token ids")
    src.add_argument("--text-file", help="text to tokenize with the folder's tokenizer")
    ap.add_argument("--json", help="output file")
    ap.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"))
    ap.add_argument("--tol", type=float, help="with --compare: fail when max |delta logit| exceeds this")
    args = ap.parse_args()
    if args.compare:
        return compare(args.compare[0], args.compare[1], args.tol)
    if not (args.model and args.json and (args.ids or args.text_file)):
        ap.error("--model, --json and one of --ids / --text-file are needed (or --compare A B)")
    return reference(args)


if __name__ == "__main__":
    sys.exit(main())
