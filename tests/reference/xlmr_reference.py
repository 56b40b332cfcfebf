#!/usr/bin/env python3
"""An independent float64 XLMRobertaForSequenceClassification / RobertaForSequenceClassification.

Written from the computation transformers' modeling_roberta.py and modeling_xlm_roberta.py describe
(RobertaEmbeddings with position ids from create_position_ids_from_input_ids: the cumulative count
of non-padding tokens plus padding_idx = pad_token_id, padding itself at padding_idx; BERT's encoder
layers; RobertaModel without its pooler; RobertaClassificationHead: out_proj(tanh(dense(<s>))); eval
mode, so no dropout), not from fused-distill's code. It reads DIR/config.json and
DIR/model.safetensors with the standard library and torch only (no transformers, no safetensors
package), skips the int64 position_ids / token_type_ids buffers and the pooler that
add_pooling_layer=False leaves unused, checks that the remaining float tensors are exactly the
class's parameters, and prints one score per row of the token ids given on stdin (one label: the
logit; two: logit 1 - logit 0):

    echo '{"input_ids": [[0, 11, 2, 1]], "attention_mask": [[1, 1, 1, 0]]}' | python3 xlmr_reference.py DIR
    {"scores": [0.123...]}
"""

import json
import math
import struct
import sys

import torch

FLOATS = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}
DEFAULTS = {"hidden_act": "gelu", "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 1}
BUFFERS = {"roberta.embeddings.position_ids", "roberta.embeddings.token_type_ids"}
UNUSED = {"roberta.pooler.dense.weight", "roberta.pooler.dense.bias"}


def read_float_tensors(path):
    """name -> float64 tensor for the float tensors; integer tensors must be the embeddings' buffers."""
    with open(path, "rb") as f:
        raw = f.read()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len].decode("utf-8"))
    header.pop("__metadata__", None)
    data = raw[8 + header_len :]
    tensors = {}
    for name, entry in header.items():
        if entry["dtype"] not in FLOATS:
            if name not in BUFFERS:
                raise ValueError(f"{path}: {name} has dtype {entry['dtype']} and is not a buffer")
            continue
        if name in UNUSED:
            continue
        begin, end = entry["data_offsets"]
        dtype = FLOATS[entry["dtype"]]
        chunk = bytearray(data[begin:end])
        values = torch.frombuffer(chunk, dtype=dtype) if chunk else torch.empty(0, dtype=dtype)
        tensors[name] = values.reshape(entry["shape"]).to(torch.float64)
    return tensors


def expected_names(config):
    """The keys of the class's state_dict (its buffers are not persistent)."""
    names = [f"roberta.embeddings.{t}.weight" for t in ["word_embeddings", "position_embeddings", "token_type_embeddings"]]
    names += ["roberta.embeddings.LayerNorm.weight", "roberta.embeddings.LayerNorm.bias"]
    for i in range(config["num_hidden_layers"]):
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
            names += [f"roberta.encoder.layer.{i}.{sub}.weight", f"roberta.encoder.layer.{i}.{sub}.bias"]
    for sub in ["dense", "out_proj"]:
        names += [f"classifier.{sub}.weight", f"classifier.{sub}.bias"]
    return names


def linear(w, name, x):
    return x @ w[name + ".weight"].T + w[name + ".bias"]


def layer_norm(w, name, x, eps):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w[name + ".weight"] + w[name + ".bias"]


def gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def position_ids(input_ids, padding_idx):
    # RoBERTa counts positions from padding_idx + 1 over the tokens that are not padding.
    real = (input_ids != padding_idx).long()
    return torch.cumsum(real, dim=1) * real + padding_idx


def logits(w, config, input_ids, attention_mask):
    heads = config["num_attention_heads"]
    hidden = config["hidden_size"]
    eps = config["layer_norm_eps"]
    head_size = hidden // heads
    batch, length = input_ids.shape
    e = "roberta.embeddings"
    x = (
        w[f"{e}.word_embeddings.weight"][input_ids]
        + w[f"{e}.token_type_embeddings.weight"][torch.zeros_like(input_ids)]  # one token type
        + w[f"{e}.position_embeddings.weight"][position_ids(input_ids, config["pad_token_id"])]
    )
    x = layer_norm(w, f"{e}.LayerNorm", x, eps)
    key_bias = (1.0 - attention_mask.to(torch.float64))[:, None, None, :] * torch.finfo(torch.float64).min

    def split(t):
        return t.reshape(batch, length, heads, head_size).permute(0, 2, 1, 3)

    for i in range(config["num_hidden_layers"]):
        p = f"roberta.encoder.layer.{i}"
        q = split(linear(w, p + ".attention.self.query", x))
        k = split(linear(w, p + ".attention.self.key", x))
        v = split(linear(w, p + ".attention.self.value", x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(head_size) + key_bias
        context = (torch.softmax(scores, dim=-1) @ v).permute(0, 2, 1, 3).reshape(batch, length, hidden)
        attended = layer_norm(w, p + ".attention.output.LayerNorm", linear(w, p + ".attention.output.dense", context) + x, eps)
        inner = gelu(linear(w, p + ".intermediate.dense", attended))
        x = layer_norm(w, p + ".output.LayerNorm", linear(w, p + ".output.dense", inner) + attended, eps)
    return linear(w, "classifier.out_proj", torch.tanh(linear(w, "classifier.dense", x[:, 0])))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: xlmr_reference.py DIR < inputs.json")
    directory = sys.argv[1]
    with open(f"{directory}/config.json") as f:
        config = {**DEFAULTS, **json.load(f)}
    if config.get("model_type") not in ("roberta", "xlm-roberta") or config["hidden_act"] != "gelu":
        sys.exit(f"{directory}: not a RoBERTa / XLM-RoBERTa with hidden_act gelu")
    if config.get("position_embedding_type", "absolute") != "absolute":
        sys.exit(f"{directory}: only absolute position embeddings")
    weights = read_float_tensors(f"{directory}/model.safetensors")
    expected = expected_names(config)
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        sys.exit(f"{directory}/model.safetensors: missing {missing}, unexpected {unexpected}")
    inputs = json.load(sys.stdin)
    out = logits(
        weights,
        config,
        torch.tensor(inputs["input_ids"], dtype=torch.long),
        torch.tensor(inputs["attention_mask"], dtype=torch.long),
    )
    labels = out.shape[1]
    if labels not in (1, 2):
        sys.exit(f"{directory}: {labels} labels; a ranking score has 1 or 2")
    scores = out[:, 0] if labels == 1 else out[:, 1] - out[:, 0]
    print(json.dumps({"scores": scores.tolist()}))


if __name__ == "__main__":
    with torch.no_grad():
        main()
