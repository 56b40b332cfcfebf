"""What the float64 references (bert_reference.py, electra_reference.py, xlmr_reference.py) share:
a safetensors reader written with the standard library and torch only, and BERT's post-LayerNorm
encoder as transformers' modeling_bert.py describes it (BertSelfAttention, BertSelfOutput,
BertIntermediate, BertOutput; eval mode, so no dropout), which ELECTRA and RoBERTa reuse. Written from
transformers' modeling files, not from fused-distill's code.
"""

import json
import math
import struct
import sys

import torch

FLOATS = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}
LAYER_PARTS = [
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "attention.output.LayerNorm",
    "intermediate.dense",
    "output.dense",
    "output.LayerNorm",
]


def read_safetensors(path, buffers=(), unused=()):
    """name -> float64 tensor, and the file's __metadata__. Integer tensors must be named in `buffers`
    (the embeddings' position_ids / token_type_ids) and are left out, as are the `unused` ones; bytes
    after the last tensor are an error."""
    with open(path, "rb") as f:
        raw = f.read()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len].decode("utf-8"))
    data = raw[8 + header_len :]
    metadata = header.pop("__metadata__", None)
    tensors = {}
    end_of_data = 0
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        end_of_data = max(end_of_data, end)
        if entry["dtype"] not in FLOATS:
            if name not in buffers:
                raise ValueError(f"{path}: {name} has dtype {entry['dtype']} and is not a buffer")
            continue
        if name in unused:
            continue
        dtype = FLOATS[entry["dtype"]]
        chunk = bytearray(data[begin:end])
        values = torch.frombuffer(chunk, dtype=dtype) if chunk else torch.empty(0, dtype=dtype)
        tensors[name] = values.reshape(entry["shape"]).to(torch.float64)
    if end_of_data != len(data):
        raise ValueError(f"{path}: {len(data) - end_of_data} bytes after the last tensor")
    return tensors, metadata


def load(directory, model_types, defaults=None, buffers=(), unused=()):
    """config.json (with `defaults` under it) and model.safetensors' tensors and metadata; exits when
    the model is not one of `model_types` with the erf GELU and absolute positions."""
    with open(f"{directory}/config.json") as f:
        config = {**(defaults or {}), **json.load(f)}
    if config.get("model_type") not in model_types or config.get("hidden_act", "gelu") != "gelu":
        sys.exit(f"{directory}: not a {' / '.join(model_types)} model with hidden_act gelu")
    if config.get("position_embedding_type", "absolute") != "absolute":
        sys.exit(f"{directory}: only absolute position embeddings")
    weights, metadata = read_safetensors(f"{directory}/model.safetensors", buffers, unused)
    return config, weights, metadata


def check_names(directory, weights, expected):
    """Exits unless the file holds exactly the state_dict's keys."""
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        sys.exit(f"{directory}/model.safetensors: missing {missing}, unexpected {unexpected}")


def embedding_names(prefix):
    tables = ["word_embeddings", "position_embeddings", "token_type_embeddings"]
    return [f"{prefix}.embeddings.{t}.weight" for t in tables] + [
        f"{prefix}.embeddings.LayerNorm.weight",
        f"{prefix}.embeddings.LayerNorm.bias",
    ]


def encoder_names(prefix, layers):
    return [f"{prefix}.encoder.layer.{i}.{part}.{p}" for i in range(layers) for part in LAYER_PARTS for p in ("weight", "bias")]


def linear(w, name, x):
    return x @ w[name + ".weight"].T + w[name + ".bias"]


def layer_norm(w, name, x, eps):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w[name + ".weight"] + w[name + ".bias"]


def gelu(x):
    # "gelu" in transformers' ACT2FN / get_activation is the exact (erf) form.
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def encoder(w, prefix, config, x, attention_mask):
    """The encoder layers over embeddings x [batch, length, hidden]; padding keys (attention_mask 0)
    get the most negative float64 added to their logits."""
    heads = config["num_attention_heads"]
    hidden = config["hidden_size"]
    eps = config["layer_norm_eps"]
    head_size = hidden // heads
    batch, length = attention_mask.shape
    key_bias = (1.0 - attention_mask.to(torch.float64))[:, None, None, :] * torch.finfo(torch.float64).min

    def split(t):
        return t.reshape(batch, length, heads, head_size).permute(0, 2, 1, 3)

    for i in range(config["num_hidden_layers"]):
        p = f"{prefix}.encoder.layer.{i}"
        q = split(linear(w, p + ".attention.self.query", x))
        k = split(linear(w, p + ".attention.self.key", x))
        v = split(linear(w, p + ".attention.self.value", x))
        logits = q @ k.transpose(-1, -2) / math.sqrt(head_size) + key_bias
        context = (torch.softmax(logits, dim=-1) @ v).permute(0, 2, 1, 3).reshape(batch, length, hidden)
        attended = layer_norm(w, p + ".attention.output.LayerNorm", linear(w, p + ".attention.output.dense", context) + x, eps)
        inner = gelu(linear(w, p + ".intermediate.dense", attended))
        x = layer_norm(w, p + ".output.LayerNorm", linear(w, p + ".output.dense", inner) + attended, eps)
    return x


def ranking_scores(directory, logits):
    """One score per row: the logit of a one-label head, logit 1 - logit 0 of a two-label one."""
    labels = logits.shape[1]
    if labels not in (1, 2):
        sys.exit(f"{directory}: {labels} labels; a ranking score has 1 or 2")
    return logits[:, 0] if labels == 1 else logits[:, 1] - logits[:, 0]


def inputs_from_stdin(names):
    inputs = json.load(sys.stdin)
    return [torch.tensor(inputs[n], dtype=torch.long) for n in names]
