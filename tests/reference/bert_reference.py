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
import sys

import torch

from transformer import check_names, embedding_names, encoder, encoder_names, inputs_from_stdin, layer_norm, linear, load


def expected_names(config):
    """The keys of BertForSequenceClassification's state_dict (its buffers are not persistent)."""
    head = ["bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight", "classifier.bias"]
    return embedding_names("bert") + encoder_names("bert", config["num_hidden_layers"]) + head


def scores(w, config, input_ids, token_type_ids, attention_mask):
    x = (
        w["bert.embeddings.word_embeddings.weight"][input_ids]
        + w["bert.embeddings.token_type_embeddings.weight"][token_type_ids]
        + w["bert.embeddings.position_embeddings.weight"][torch.arange(input_ids.shape[1])]
    )
    x = encoder(w, "bert", config, layer_norm(w, "bert.embeddings.LayerNorm", x, config["layer_norm_eps"]), attention_mask)
    pooled = torch.tanh(linear(w, "bert.pooler.dense", x[:, 0]))
    return linear(w, "classifier", pooled)[:, 0]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: bert_reference.py DIR < inputs.json")
    directory = sys.argv[1]
    config, weights, metadata = load(directory, ("bert",))
    if not metadata or metadata.get("format") != "pt":
        sys.exit(f"{directory}/model.safetensors: __metadata__ lacks format 'pt' (transformers refuses it)")
    check_names(directory, weights, expected_names(config))
    out = scores(weights, config, *inputs_from_stdin(["input_ids", "token_type_ids", "attention_mask"]))
    print(json.dumps({"scores": out.tolist()}))


if __name__ == "__main__":
    with torch.no_grad():
        main()
