#!/usr/bin/env python3
"""Independent reference check of RouteLab's MoE router rules.

This file re-implements, in PyTorch (float64), the routing rules RouteLab's
router is specified to follow (modelled on Megatron-Core's router and
DeepSeek-V3's gate): scores (softmax / sigmoid), biased and group-limited
top-K selection, combine weights (Mixtral renormalisation, plain softmax,
sigmoid normalisation, scaling factor), expert capacity with "position" or
"probs" drop policies, the balance statistics f, P, aux (aux_loss,
seq_aux_loss, global_aux_loss, none), z-loss, entropy, dropped fraction and
the aux-loss-free bias update.  It shares no code with the C++ sources: it
is fed the router logits RouteLab computed and checks RouteLab's outputs.

Usage:
  router_ref.py CASES.json   one line per case:
                             "case NAME: max|diff| X (choice ok|MISMATCH)"
                             exit 0 all pass, 1 any fail, 2 malformed input
  router_ref.py --selftest   builds random cases, checks that they pass and
                             that perturbed outputs fail; prints "selftest ok"

A case fails if any expert choice / kept (token, expert) pair differs, or
any float differs by more than tol (case field "tol", default 1e-6):
|a - b| <= tol * max(1, |b|), b = this file's value.  X is the largest
|a - b| / max(1, |b|) over all compared floats.
"""
import copy
import json
import math
import sys

import torch

DT = torch.float64


class Malformed(Exception):
    pass


def _field(c, key, kind, optional=False):
    if key not in c:
        if optional:
            return None
        raise Malformed("missing field '%s'" % key)
    v = c[key]
    if kind == "int":
        ok = isinstance(v, int) and not isinstance(v, bool)
    elif kind == "float":
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    elif kind == "bool":
        ok = isinstance(v, bool)
    elif kind == "str":
        ok = isinstance(v, str)
    else:  # list of numbers, or null when optional
        if v is None and optional:
            return None
        ok = isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
    if not ok:
        raise Malformed("field '%s' should be %s" % (key, kind))
    return v


def parse_case(c):
    """Reads and validates one case; returns a dict of plain Python values."""
    if not isinstance(c, dict):
        raise Malformed("case is not an object")
    p = {"name": _field(c, "name", "str")}
    for k in ("N", "E", "K", "T", "n_groups", "group_topk", "capacity"):
        p[k] = _field(c, k, "int")
    p["score_function"] = _field(c, "score_function", "str")
    p["renormalise"] = _field(c, "renormalise", "bool")
    p["drop_policy"] = _field(c, "drop_policy", "str")
    p["balance"] = _field(c, "balance", "str")
    p["scaling_factor"] = _field(c, "scaling_factor", "float")
    p["aux_scale"] = _field(c, "aux_scale", "float")
    tol = _field(c, "tol", "float", optional=True)
    p["tol"] = 1e-6 if tol is None else tol
    p["bias"] = _field(c, "bias", "list", optional=True)
    p["logits"] = _field(c, "logits", "list")
    N, E, K, T = p["N"], p["E"], p["K"], p["T"]
    if min(N, E, K, T) < 1 or K > E or N % T:
        raise Malformed("need N,E,K,T >= 1, K <= E, N % T == 0")
    if p["score_function"] not in ("softmax", "sigmoid"):
        raise Malformed("bad score_function")
    if p["drop_policy"] not in ("position", "probs"):
        raise Malformed("bad drop_policy")
    if p["balance"] not in ("aux_loss", "seq_aux_loss", "global_aux_loss", "none"):
        raise Malformed("bad balance")
    if p["capacity"] < 0:
        raise Malformed("capacity < 0")
    if len(p["logits"]) != N * E:
        raise Malformed("logits has %d values, want N*E = %d" % (len(p["logits"]), N * E))
    G, gk = p["n_groups"], p["group_topk"]
    if G < 1 or E % G or gk < 0 or gk > G:
        raise Malformed("need n_groups >= 1 dividing E and 0 <= group_topk <= n_groups")
    if gk > 0 and (K // gk < 1 or gk * (E // G) < K):
        raise Malformed("group limit leaves fewer than K experts or K // group_topk == 0")
    if p["bias"] is not None:
        if len(p["bias"]) != E:
            raise Malformed("bias should have E values")
        p["bias_update_rate"] = _field(c, "bias_update_rate", "float")
    if p["balance"] == "global_aux_loss":
        p["global_counts"] = _field(c, "global_counts", "list")
        p["global_tokens"] = _field(c, "global_tokens", "int")
        if len(p["global_counts"]) != E or p["global_tokens"] < 0:
            raise Malformed("global_counts should have E values, global_tokens >= 0")
    out = c.get("out")
    if not isinstance(out, dict):
        raise Malformed("missing object 'out'")
    want = {"choice": N * K, "scores": N * E, "f": E, "P": E}
    for k, n in want.items():
        v = _field(out, k, "list")
        if len(v) != n:
            raise Malformed("out.%s has %d values, want %d" % (k, len(v), n))
    for k in ("aux", "zloss", "entropy", "dropped_frac"):
        _field(out, k, "float")
    if not isinstance(out.get("assign"), list) or not all(
            isinstance(a, list) and len(a) == 3 for a in out["assign"]):
        raise Malformed("out.assign should be a list of [token, expert, weight]")
    if p["bias"] is not None:
        v = _field(out, "bias_after", "list")
        if len(v) != E:
            raise Malformed("out.bias_after should have E values")
    p["out"] = out
    return p


def topk_stable(x, k):
    """Top-k along the last dim, ordered by (-value, index): ties to lower index."""
    idx = torch.sort(-x, dim=-1, stable=True)[1][..., :k]
    return x.gather(-1, idx), idx


def route(p):
    """Applies the router rules to p's logits; returns outputs shaped like 'out'."""
    N, E, K, T = p["N"], p["E"], p["K"], p["T"]
    softmax = p["score_function"] == "softmax"
    z = torch.tensor(p["logits"], dtype=DT).view(N, E)
    bias = None if p["bias"] is None else torch.tensor(p["bias"], dtype=DT)

    # 1. scores; p_hat is the per-token distribution used by P and entropy.
    if softmax:
        s = torch.softmax(z, dim=-1)
        p_hat = s
    else:
        s = torch.sigmoid(z)
        p_hat = s / s.sum(-1, keepdim=True)

    # 2. selection key (bias affects selection only).
    key = (z if softmax and p["renormalise"] else s).clone()
    if bias is not None:
        key = key + bias

    # 3. group-limited routing.
    G, gk = p["n_groups"], p["group_topk"]
    if gk > 0:
        per = E // G
        gscore = topk_stable(key.view(N, G, per), K // gk)[0].sum(-1)  # [N, G]
        keep = torch.zeros(N, G, dtype=torch.bool)
        keep.scatter_(1, topk_stable(gscore, gk)[1], True)
        emask = keep.unsqueeze(-1).expand(N, G, per).reshape(N, E)
        key = key.masked_fill(~emask, -math.inf)
    choice = topk_stable(key, K)[1]  # [N, K], best first

    # 4. combine weights from unbiased scores, times gamma.
    if softmax and p["renormalise"]:
        w = torch.softmax(z.gather(1, choice), dim=-1)
    elif softmax or K == 1:
        w = s.gather(1, choice)
    else:
        ss = s.gather(1, choice)
        w = ss / (ss.sum(-1, keepdim=True) + 1e-20)
    w = w * p["scaling_factor"]

    # 5./6. capacity and drops.
    ch, wl = choice.tolist(), w.tolist()
    by_expert = [[] for _ in range(E)]
    for t in range(N):
        for k in range(K):
            by_expert[ch[t][k]].append((t, wl[t][k]))
    cap, assign, kept = p["capacity"], [], [False] * N
    for e in range(E):
        lst = by_expert[e]  # token ascending
        if cap < N and len(lst) > cap:
            if p["drop_policy"] == "position":
                lst = lst[:cap]
            else:
                lst = sorted(sorted(lst, key=lambda a: (-a[1], a[0]))[:cap])
        for t, wt in lst:
            assign.append([t, e, wt])
            kept[t] = True

    # 7. statistics.
    counts = torch.bincount(choice.reshape(-1), minlength=E).to(DT)
    f = counts / (N * K)
    P = p_hat.mean(0)
    entropy = -torch.special.xlogy(p_hat, p_hat).sum(-1).mean()
    zloss = torch.logsumexp(z, dim=-1).pow(2).mean()

    # 8. aux.
    sa, bal = p["aux_scale"], p["balance"]
    if bal == "aux_loss":
        aux = sa * (f * P).sum()
    elif bal == "seq_aux_loss":
        B = N // T
        seq = (torch.arange(N) // T).unsqueeze(1).expand(N, K).reshape(-1)
        cb = torch.zeros(B * E, dtype=DT)
        cb.index_add_(0, seq * E + choice.reshape(-1), torch.ones(N * K, dtype=DT))
        fb = cb.view(B, E) / (T * K)
        Pb = p_hat.view(B, T, E).mean(1)
        aux = (sa * (fb * Pb).sum(-1)).mean()
    elif bal == "global_aux_loss":
        gc = torch.tensor(p["global_counts"], dtype=DT)
        fg = (gc + counts) / ((p["global_tokens"] + N) * K)
        aux = sa * (fg * P).sum()
    else:
        aux = torch.zeros((), dtype=DT)

    # 9. aux-loss-free bias update.
    bias_after = None
    if bias is not None:
        bias_after = (bias + p["bias_update_rate"] * torch.sign(counts.mean() - counts)).tolist()

    return {"choice": choice.reshape(-1).tolist(), "assign": assign,
            "scores": s.reshape(-1).tolist(), "f": f.tolist(), "P": P.tolist(),
            "aux": aux.item(), "zloss": zloss.item(), "entropy": entropy.item(),
            "dropped_frac": (N - sum(kept)) / N, "bias_after": bias_after}


def compare(ref, out):
    """Returns (worst scaled float error, choices agree) of out against ref."""
    worst = 0.0

    def err(a, b):
        nonlocal worst
        d = abs(float(a) - b) / max(1.0, abs(b))
        worst = max(worst, math.inf if math.isnan(d) else d)

    choice_ok = [int(x) for x in out["choice"]] == ref["choice"]
    got = [(int(a[0]), int(a[1])) for a in out["assign"]]
    want = [(a[0], a[1]) for a in ref["assign"]]
    choice_ok = choice_ok and got == want
    ref_w = {(a[0], a[1]): a[2] for a in ref["assign"]}
    for (t, e), a in zip(got, out["assign"]):
        if (t, e) in ref_w:
            err(a[2], ref_w[(t, e)])
    for k in ("scores", "f", "P") + (("bias_after",) if ref["bias_after"] is not None else ()):
        for a, b in zip(out[k], ref[k]):
            err(a, b)
    for k in ("aux", "zloss", "entropy", "dropped_frac"):
        err(out[k], ref[k])
    return worst, choice_ok


def check_case(c):
    """Returns (passed, report line) for one raw case; raises Malformed."""
    p = parse_case(c)
    worst, choice_ok = compare(route(p), p["out"])
    ok = choice_ok and worst <= p["tol"]
    line = "case %s: max|diff| %.3e (choice %s)" % (p["name"], worst, "ok" if choice_ok else "MISMATCH")
    return ok, line


def main_file(path):
    try:
        with open(path) as fh:
            doc = json.load(fh)
        cases = doc["cases"] if isinstance(doc, dict) else None
        if not isinstance(cases, list) or not cases:
            raise Malformed("top level should be {\"cases\": [case, ...]} with at least one case")
        all_ok = True
        for i, c in enumerate(cases):
            try:
                ok, line = check_case(c)
            except Malformed as ex:
                name = c.get("name", "#%d" % i) if isinstance(c, dict) else "#%d" % i
                raise Malformed("case %s: %s" % (name, ex))
            print(line)
            all_ok = all_ok and ok
    except (OSError, ValueError, KeyError, Malformed) as ex:
        print("router_ref: malformed %s: %s" % (path, ex), file=sys.stderr)
        return 2
    return 0 if all_ok else 1


def _random_case(gen, name, N, E, K, T, **kw):
    c = {"name": name, "N": N, "E": E, "K": K, "T": T, "score_function": "softmax",
         "renormalise": True, "bias": None, "n_groups": 1, "group_topk": 0,
         "scaling_factor": 1.0, "capacity": N, "drop_policy": "position",
         "balance": "aux_loss", "aux_scale": float(E), "global_counts": [0] * E,
         "global_tokens": 0, "bias_update_rate": 0.0,
         "logits": (2 * torch.randn(N * E, generator=gen, dtype=DT)).tolist()}
    c.update(kw)
    if c["bias"] == "random":
        c["bias"] = (0.1 * torch.randn(E, generator=gen, dtype=DT)).tolist()
    c["out"] = route(_parse_no_out(c))
    return json.loads(json.dumps(c))  # round-trip through JSON like a real file


def _parse_no_out(c):
    """parse_case on a case whose 'out' is still to be filled (dummy outputs)."""
    E, N, K = c["E"], c["N"], c["K"]
    dummy = {"choice": [0] * (N * K), "scores": [0.0] * (N * E), "f": [0.0] * E, "P": [0.0] * E,
             "aux": 0.0, "zloss": 0.0, "entropy": 0.0, "dropped_frac": 0.0, "assign": [],
             "bias_after": None if c["bias"] is None else [0.0] * E}
    return parse_case(dict(c, out=dummy))


def selftest():
    gen = torch.Generator().manual_seed(1234)
    cases = [
        _random_case(gen, "softmax_renorm_aux", 16, 8, 2, 16),
        _random_case(gen, "softmax_plain_seq_cap_position", 16, 8, 2, 4, renormalise=False,
                     balance="seq_aux_loss", capacity=3),
        _random_case(gen, "sigmoid_groups_bias_global_cap_probs", 24, 16, 4, 8,
                     score_function="sigmoid", bias="random", n_groups=4, group_topk=2,
                     scaling_factor=2.5, balance="global_aux_loss", aux_scale=64.0,
                     global_counts=list(range(16)), global_tokens=30,
                     bias_update_rate=1e-3, capacity=5, drop_policy="probs"),
        _random_case(gen, "sigmoid_k1_none_cap_position", 12, 4, 1, 6, score_function="sigmoid",
                     balance="none", capacity=2),
        _random_case(gen, "softmax_bias_groups_probs", 20, 8, 2, 5, bias="random", n_groups=2,
                     group_topk=1, capacity=4, drop_policy="probs", balance="seq_aux_loss",
                     bias_update_rate=0.01),
    ]
    for c in cases:
        ok, line = check_case(c)
        assert ok, "self-consistent case failed: " + line
        o, g = c["out"], c["scaling_factor"]
        assert abs(sum(o["f"]) - 1) < 1e-12 and abs(sum(o["P"]) - 1) < 1e-12
        if (c["renormalise"] or c["score_function"] == "sigmoid") and c["K"] > 1 and c["capacity"] >= c["N"]:
            for t in range(c["N"]):
                assert abs(sum(a[2] for a in o["assign"] if a[0] == t) - g) < 1e-12
        if c["group_topk"] > 0:  # every token's experts lie in at most group_topk groups
            per = c["E"] // c["n_groups"]
            for t in range(c["N"]):
                assert len({e // per for e in o["choice"][t * c["K"]:(t + 1) * c["K"]]}) <= c["group_topk"]
        if c["capacity"] < c["N"]:
            cnt = [0] * c["E"]
            for a in o["assign"]:
                cnt[a[1]] += 1
            assert max(cnt) <= c["capacity"] and len(o["assign"]) < c["N"] * c["K"]  # drops happened
        # a perturbation inside tol passes; 1e-3 on one weight or a changed choice fails
        for delta, should_pass in ((1e-7, True), (1e-3, False)):
            bad = copy.deepcopy(c)
            bad["out"]["assign"][0][2] += delta
            assert check_case(bad)[0] == should_pass, "perturbation %g misjudged: %s" % (delta, c["name"])
        bad = copy.deepcopy(c)
        bad["out"]["choice"][0] = (bad["out"]["choice"][0] + 1) % c["E"]
        assert "MISMATCH" in check_case(bad)[1]
        print(line)
    # hand-worked example: z = log(1..4); top-2 are experts 3, 2
    z = [math.log(v) for v in (1, 2, 3, 4)]
    h = _random_case(gen, "hand", 1, 4, 2, 1, logits=z)
    assert h["out"]["choice"] == [3, 2]
    assert abs(h["out"]["assign"][0][2] - 3 / 7) < 1e-15 and abs(h["out"]["assign"][1][2] - 4 / 7) < 1e-15
    h = _random_case(gen, "hand_plain", 1, 4, 2, 1, logits=z, renormalise=False)
    assert abs(h["out"]["assign"][0][2] - 0.3) < 1e-15 and abs(h["out"]["assign"][1][2] - 0.4) < 1e-15
    print("selftest ok")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] == "--selftest":
        sys.exit(selftest())
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        print("usage: router_ref.py CASES.json | --selftest", file=sys.stderr)
        sys.exit(2)
    sys.exit(main_file(sys.argv[1]))
