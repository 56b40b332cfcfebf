#!/usr/bin/env python3
"""An independent float64 BertForSequenceClassification, to check exported Hugging Face directories.

Written from the computation transformers' modeling_bert.py describes (BertEmbeddings, BertSelfAttention,
BertSelfOutput, BertIntermediate, BertOutput, BertPooler, the classifier head; eval mode, so no dropout),
not from fused-distill's code. It reads DIR/config.json and DIR/model.safetensors with the standard
library and torch only (no transformers, no safetensors package), checks that the file holds exactly
the parameters BertForSequenceClassification's state_dict has (none missing, none unexpected), and
prints one score per row of the token ids given on stdin:

    echo '{"input_ids": [[101, 7592, 102, 0]], "token_type_ids": [[0, 0, 0, 0]],
           "attention_mask": [[1, 1, 1, 0]]}' | python3 bert_reference.py DIR
    {"scores": [0.123...]}
"""

import json
import math
import struct
import sys

import torch

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}


def read_safetensors(path):
    """name -> float64 tensor, and the file's __metadata__."""
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
        dtype = DTYPES[entry["dtype"]]
        chunk = bytearray(data[begin:end])
        values = torch.frombuffer(chunk, dtype=dtype) if chunk else torch.empty(0, dtype=dtype)
        tensors[name] = values.reshape(entry["shape"]).to(torch.float64)
    if end_of_data != len(data):
        raise ValueError(f"{path}: {len(data) - end_of_data} bytes after the last tensor")
    return tensors, metadata


def expected_names(config):
    """The keys of BertForSequenceClassification's state_dict (its buffers are not persistent)."""
    names = [
        "bert.embeddings.word_embeddings.weight",
        "bert.embeddings.position_embeddings.weight",
        "bert.embeddings.token_type_embeddings.weight",
        "bert.embeddings.LayerNorm.weight",
        "bert.embeddings.LayerNorm.bias",
    ]
    for i in range(config["num_hidden_layers"]):
        p = f"bert.encoder.layer.{i}"
        for sub in [
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
            "attention.output.LayerNorm",
            "intermediate.dense",
            "output.dense",
            "output.LayerNorm",
        ]:
            names += [f"{p}.{sub}.weight", f"{p}.{sub}.bias"]
    names += ["bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight", "classifier.bias"]
    return names


def linear(w, name, x):
    return x @ w[name + ".weight"].T + w[name + ".bias"]


def layer_norm(w, name, x, eps):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w[name + ".weight"] + w[name + ".bias"]


def gelu(x):
    # "gelu" in transformers' ACT2FN is the exact (erf) form.
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def scores(w, config, input_ids, token_type_ids, attention_mask):
    heads = config["num_attention_heads"]
    hidden = config["hidden_size"]
    eps = config["layer_norm_eps"]
    head_size = hidden // heads
    batch, length = input_ids.shape
    positions = torch.arange(length)
    x = (
        w["bert.embeddings.word_embeddings.weight"][input_ids]
        + w["bert.embeddings.token_type_embeddings.weight"][token_type_ids]
        + w["bert.embeddings.position_embeddings.weight"][positions]
    )
    x = layer_norm(w, "bert.embeddings.LayerNorm", x, eps)
    # Padding keys: the most negative value of the dtype added to their logits.
    key_bias = (1.0 - attention_mask.to(torch.float64))[:, None, None, :] * torch.finfo(torch.float64).min

    def split(t):
        return t.reshape(batch, length, heads, head_size).permute(0, 2, 1, 3)

    for i in range(config["num_hidden_layers"]):
        p = f"bert.encoder.layer.{i}"
        q = split(linear(w, p + ".attention.self.query", x))
        k = split(linear(w, p + ".attention.self.key", x))
        v = split(linear(w, p + ".attention.self.value", x))
        logits = q @ k.transpose(-1, -2) / math.sqrt(head_size) + key_bias
        context = (torch.softmax(logits, dim=-1) @ v).permute(0, 2, 1, 3).reshape(batch, length, hidden)
        attended = layer_norm(w, p + ".attention.output.LayerNorm", linear(w, p + ".attention.output.dense", context) + x, eps)
        inner = gelu(linear(w, p + ".intermediate.dense", attended))
        x = layer_norm(w, p + ".output.LayerNorm", linear(w, p + ".output.dense", inner) + attended, eps)
    pooled = torch.tanh(linear(w, "bert.pooler.dense", x[:, 0]))
    return linear(w, "classifier", pooled)[:, 0]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: bert_reference.py DIR < inputs.json")
    directory = sys.argv[1]
    with open(f"{directory}/config.json") as f:
        config = json.load(f)
    if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
        sys.exit(f"{directory}: not a BERT with hidden_act gelu")
    if config.get("position_embedding_type", "absolute") != "absolute":
        sys.exit(f"{directory}: only absolute position embeddings")
    weights, metadata = read_safetensors(f"{directory}/model.safetensors")
    if not metadata or metadata.get("format") != "pt":
        sys.exit(f"{directory}/model.safetensors: __metadata__ lacks format 'pt' (transformers refuses it)")
    expected = expected_names(config)
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        sys.exit(f"{directory}/model.safetensors: missing {missing}, unexpected {unexpected}")
    inputs = json.load(sys.stdin)
    out = scores(
        weights,
        config,
        torch.tensor(inputs["input_ids"], dtype=torch.long),
        torch.tensor(inputs["token_type_ids"], dtype=torch.long),
        torch.tensor(inputs["attention_mask"], dtype=torch.long),
    )
    print(json.dumps({"scores": out.tolist()}))


if __name__ == "__main__":
    with torch.no_grad():
        main()
