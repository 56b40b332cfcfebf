#!/usr/bin/env python3
"""Loads an exported directory with the Hugging Face libraries themselves and prints what they see.

    python3 transformers_check.py DIR MAX_LENGTH < pairs.json     (pairs.json: [["query", "passage"], ...])

prints {"loading_info": {...}, "architecture": ..., "input_ids": [[...]], "transformers": [...],
"cross_encoder": [...]}: the missing / unexpected keys transformers reports, the token ids its
AutoTokenizer gives for the pairs (padded to MAX_LENGTH), the logits of
AutoModelForSequenceClassification and the scores of sentence-transformers' CrossEncoder.predict.
Needs a python with torch, transformers and sentence-transformers (the jest test names it with
FUSED_DISTILL_TRANSFORMERS_PYTHON); works offline.
"""

import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from sentence_transformers import CrossEncoder  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402


def main():
    directory, max_length = sys.argv[1], int(sys.argv[2])
    pairs = json.load(sys.stdin)
    model, info = AutoModelForSequenceClassification.from_pretrained(directory, output_loading_info=True)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    encoded = tokenizer(
        [q for q, _ in pairs],
        [p for _, p in pairs],
        padding="max_length",
        truncation="longest_first",
        max_length=max_length,
        return_tensors="pt",
    )
    with torch.no_grad():
        logits = model.float().eval()(**encoded).logits[:, 0]
    cross_encoder = CrossEncoder(directory, device="cpu", model_kwargs={"dtype": torch.float32})
    print(
        json.dumps(
            {
                "loading_info": {k: sorted(map(str, v)) for k, v in info.items()},
                "architecture": type(model).__name__,
                "input_ids": encoded["input_ids"].tolist(),
                "transformers": logits.tolist(),
                "cross_encoder": cross_encoder.predict(pairs).tolist(),
            }
        )
    )


if __name__ == "__main__":
    main()
