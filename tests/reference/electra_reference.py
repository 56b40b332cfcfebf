#!/usr/bin/env python3
"""An independent float64 ElectraForSequenceClassification, to check ELECTRA directories as read.

Written from the computation transformers' modeling_electra.py describes (ElectraEmbeddings of width
embedding_size with their LayerNorm, embeddings_project to hidden_size when the two differ, BERT's
encoder layers, ElectraClassificationHead: out_proj(gelu(dense(first token))); eval mode, so no
dropout), not from fused-distill's code. Absent config fields take ElectraConfig's defaults. It reads
DIR/config.json and DIR/model.safetensors with the standard library and torch only (no transformers,
no safetensors package), skips the int64 position_ids / token_type_ids buffers, checks that the
float tensors are exactly ElectraForSequenceClassification's parameters, and prints one score per
row of the token ids given on stdin (one label: the logit; two: logit 1 - logit 0):

    echo '{"input_ids": [[2, 11, 3, 0]], "token_type_ids": [[0, 0, 0, 0]],
           "attention_mask": [[1, 1, 1, 0]]}' | python3 electra_reference.py DIR
    {"scores": [0.123...]}
"""

import json
import sys

import torch

from transformer import (
    check_names,
    embedding_names,
    encoder,
    encoder_names,
    gelu,
    inputs_from_stdin,
    layer_norm,
    linear,
    load,
    ranking_scores,
)

DEFAULTS = {
    "vocab_size": 30522,
    "embedding_size": 128,
    "hidden_size": 256,
    "num_hidden_layers": 12,
    "num_attention_heads": 4,
    "intermediate_size": 1024,
    "hidden_act": "gelu",
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
}
BUFFERS = {"electra.embeddings.position_ids", "electra.embeddings.token_type_ids"}


def expected_names(config):
    """The keys of ElectraForSequenceClassification's state_dict (its buffers are not persistent)."""
    names = embedding_names("electra")
    if config["embedding_size"] != config["hidden_size"]:
        names += ["electra.embeddings_project.weight", "electra.embeddings_project.bias"]
    names += encoder_names("electra", config["num_hidden_layers"])
    return names + [f"classifier.{sub}.{p}" for sub in ("dense", "out_proj") for p in ("weight", "bias")]


def logits(w, config, input_ids, token_type_ids, attention_mask):
    e = "electra.embeddings"
    x = (
        w[f"{e}.word_embeddings.weight"][input_ids]
        + w[f"{e}.token_type_embeddings.weight"][token_type_ids]
        + w[f"{e}.position_embeddings.weight"][torch.arange(input_ids.shape[1])]
    )
    x = layer_norm(w, f"{e}.LayerNorm", x, config["layer_norm_eps"])  # over embedding_size
    if "electra.embeddings_project.weight" in w:
        x = linear(w, "electra.embeddings_project", x)
    x = encoder(w, "electra", config, x, attention_mask)
    # ElectraClassificationHead: get_activation("gelu") whatever hidden_act says.
    return linear(w, "classifier.out_proj", gelu(linear(w, "classifier.dense", x[:, 0])))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: electra_reference.py DIR < inputs.json")
    directory = sys.argv[1]
    config, weights, _ = load(directory, ("electra",), DEFAULTS, BUFFERS)
    check_names(directory, weights, expected_names(config))
    out = logits(weights, config, *inputs_from_stdin(["input_ids", "token_type_ids", "attention_mask"]))
    print(json.dumps({"scores": ranking_scores(directory, out).tolist()}))


if __name__ == "__main__":
    with torch.no_grad():
        main()
