"""The losses of docs/loss-contract.md in plain eager PyTorch, written the way a PyTorch
user would write them (broadcast pair matrices, log_softmax, masked means). Shared by
bench/torch_cpu.py (PyTorch 1.13 on the CPU) and bench/gpu/torch_gpu.py (PyTorch 2.x, eager and
torch.compile). Every function returns a scalar; a mean over an empty set is 0.
Works on PyTorch >= 1.10 (no torch 2-only calls)."""
import torch
import torch.nn.functional as F


def _masked_mean(x, m):
    if m is None:
        return x.mean()
    return (x * m).sum() / m.sum().clamp_min(1)


def pointwise_bce(s, y, mask=None):
    return _masked_mean(F.softplus(s) - y * s, mask)


def _pairs(s, y):
    diff = s.unsqueeze(-1) - s.unsqueeze(-2)                     # [..., G, G]: s_i - s_j
    pm = (y.unsqueeze(-1) > y.unsqueeze(-2)).to(s.dtype)         # pairs with y_i > y_j
    return diff, pm


def pairwise_ranknet(s, y, sigma=1.0):
    diff, pm = _pairs(s, y)
    return (F.softplus(-sigma * diff) * pm).sum() / pm.sum().clamp_min(1)


def pairwise_hinge(s, y, margin=1.0):
    diff, pm = _pairs(s, y)
    return (torch.clamp(margin - diff, min=0) * pm).sum() / pm.sum().clamp_min(1)


def listwise_softmax_ce(s, y):
    ysum = y.sum(-1, keepdim=True)
    has = (ysum > 0).to(s.dtype)
    p = y / ysum.clamp_min(1e-30)
    per_row = -(p * F.log_softmax(s, -1)).sum(-1, keepdim=True)
    return (per_row * has).sum() / has.sum().clamp_min(1)


def distill_kl(s, t, temperature=1.0):
    T = float(temperature)
    cols = s.shape[-1]
    ls = F.log_softmax(s.reshape(-1, cols) / T, -1)
    lt = F.log_softmax(t.reshape(-1, cols) / T, -1)
    return (T * T) * F.kl_div(ls, lt, reduction="batchmean", log_target=True)


def margin_mse(s, t):
    ds = s[..., :1] - s[..., 1:]
    dt = t[..., :1] - t[..., 1:]
    return ((ds - dt) ** 2).mean()


def score_mse(s, t):
    return F.mse_loss(s, t)


def hidden_mse(hs, ht, token_mask=None):
    if token_mask is None:
        return F.mse_loss(hs, ht)
    m = token_mask.unsqueeze(-1)
    return ((hs - ht) ** 2 * m).sum() / (m.sum() * hs.shape[-1]).clamp_min(1)


def attention_mse(a_s, a_t, token_mask=None):
    if token_mask is None:
        return F.mse_loss(a_s, a_t)
    m = (token_mask.unsqueeze(-1) * token_mask.unsqueeze(-2)).unsqueeze(1)   # [B, 1, L, L]
    return ((a_s - a_t) ** 2 * m).sum() / (m.sum() * a_s.shape[1]).clamp_min(1)


TERMS = {
    "pointwiseBCE": lambda s, t, y, o: pointwise_bce(s, y),
    "pairwiseRankNet": lambda s, t, y, o: pairwise_ranknet(s, y, o.get("sigma", 1.0)),
    "pairwiseHinge": lambda s, t, y, o: pairwise_hinge(s, y, o.get("margin", 1.0)),
    "listwiseSoftmaxCE": lambda s, t, y, o: listwise_softmax_ce(s, y),
    "distillKL": lambda s, t, y, o: distill_kl(s, t, o.get("temperature", 1.0)),
    "marginMSE": lambda s, t, y, o: margin_mse(s, t),
    "scoreMSE": lambda s, t, y, o: score_mse(s, t),
}


def ranking_objective(s, t, y, options):
    total = None
    for name, w in options.get("weights", {}).items():
        if w == 0:
            continue
        term = w * TERMS[name](s, t, y, options)
        total = term if total is None else total + term
    return total if total is not None else s.sum() * 0


def loss_fn(op, options):
    """A function of the case's inputs (by name, as in bench/cases.json) returning the scalar loss."""
    o = options or {}
    table = {
        "pointwiseBCE": lambda x: pointwise_bce(x["s"], x["y"], x.get("mask")),
        "pairwiseRankNet": lambda x: pairwise_ranknet(x["s"], x["y"], o.get("sigma", 1.0)),
        "pairwiseHinge": lambda x: pairwise_hinge(x["s"], x["y"], o.get("margin", 1.0)),
        "listwiseSoftmaxCE": lambda x: listwise_softmax_ce(x["s"], x["y"]),
        "distillKL": lambda x: distill_kl(x["s"], x["t"], o.get("temperature", 1.0)),
        "marginMSE": lambda x: margin_mse(x["s"], x["t"]),
        "scoreMSE": lambda x: score_mse(x["s"], x["t"]),
        "hiddenMSE": lambda x: hidden_mse(x["hs"], x["ht"], x.get("tokenMask")),
        "attentionMSE": lambda x: attention_mse(x["as"], x["at"], x.get("tokenMask")),
        "rankingObjective": lambda x: ranking_objective(x["s"], x.get("t"), x.get("y"), o),
    }
    return table[op]


def generate(gen, shape, generator=None, device="cpu"):
    """The inputs of bench/cases.json's 'gen' kinds (same distributions as bench/benchmark.js)."""
    if gen == "normal":
        return torch.randn(*shape, generator=generator, device=device)
    if gen == "uniform":
        return torch.rand(*shape, generator=generator, device=device)
    if gen == "grades4":
        return torch.randint(0, 4, tuple(shape), generator=generator, device=device).float()
    if gen == "tokenmask":
        B, L = shape
        lens = torch.randint(L // 2, L + 1, (B,), generator=generator, device=device)
        return (torch.arange(L, device=device).unsqueeze(0) < lens.unsqueeze(1)).float()
    raise ValueError("unknown gen " + gen)
