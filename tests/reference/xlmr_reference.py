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
import sys

import torch

from transformer import (
    check_names,
    embedding_names,
    encoder,
    encoder_names,
    inputs_from_stdin,
    layer_norm,
    linear,
    load,
    ranking_scores,
)

DEFAULTS = {"hidden_act": "gelu", "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 1}
BUFFERS = {"roberta.embeddings.position_ids", "roberta.embeddings.token_type_ids"}
UNUSED = {"roberta.pooler.dense.weight", "roberta.pooler.dense.bias"}


def expected_names(config):
    """The keys of the class's state_dict (its buffers are not persistent)."""
    names = embedding_names("roberta") + encoder_names("roberta", config["num_hidden_layers"])
    return names + [f"classifier.{sub}.{p}" for sub in ("dense", "out_proj") for p in ("weight", "bias")]


def position_ids(input_ids, padding_idx):
    # RoBERTa counts positions from padding_idx + 1 over the tokens that are not padding.
    real = (input_ids != padding_idx).long()
    return torch.cumsum(real, dim=1) * real + padding_idx


def logits(w, config, input_ids, attention_mask):
    e = "roberta.embeddings"
    x = (
        w[f"{e}.word_embeddings.weight"][input_ids]
        + w[f"{e}.token_type_embeddings.weight"][torch.zeros_like(input_ids)]  # one token type
        + w[f"{e}.position_embeddings.weight"][position_ids(input_ids, config["pad_token_id"])]
    )
    x = encoder(w, "roberta", config, layer_norm(w, f"{e}.LayerNorm", x, config["layer_norm_eps"]), attention_mask)
    return linear(w, "classifier.out_proj", torch.tanh(linear(w, "classifier.dense", x[:, 0])))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: xlmr_reference.py DIR < inputs.json")
    directory = sys.argv[1]
    config, weights, _ = load(directory, ("roberta", "xlm-roberta"), DEFAULTS, BUFFERS, UNUSED)
    check_names(directory, weights, expected_names(config))
    out = logits(weights, config, *inputs_from_stdin(["input_ids", "attention_mask"]))
    print(json.dumps({"scores": ranking_scores(directory, out).tolist()}))


if __name__ == "__main__":
    with torch.no_grad():
        main()
