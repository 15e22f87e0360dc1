"""A static (model2vec) embedder distilled from any sentence-transformers model.

model2vec passes every vocabulary token through the model once, reduces the token vectors
with PCA and weights them by token frequency (SIF): encoding a text is then a lookup and a
mean, with no transformer at run time. The folder it writes is a sentence-transformers model
(``StaticEmbedding``), so it loads wherever a model path is accepted (``anirec embed
--model DIR``, ``recommend``, ``evaluate``, ``export``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .backends import set_threads
from .errors import AnirecError
from .io import atomic_dir, check_outputs_not_inputs, check_writable_output
from .models import not_found_message, resolve_model

STATIC_EXTRA = "pip install 'anirec[static]'"


def require_model2vec():
    try:
        from model2vec.distill import distill
    except ImportError:
        raise AnirecError(f"distill needs model2vec, which is not installed: {STATIC_EXTRA}") from None
    return distill


def distill_model(model: str, out: str | Path, pca_dims: int | None = 256, echo=print) -> dict:
    """Distill ``model`` (a name, hub id or folder, fine-tuned ones included) into a static
    model written atomically to ``out``; returns what ``distill.json`` in it records."""
    if pca_dims is not None and pca_dims < 2:
        raise AnirecError(f"--pca-dims {pca_dims}: must be at least 2 (or leave it out to keep the model's dimensions).")
    distill = require_model2vec()
    out = check_writable_output(out, "dir", "--out")  # before minutes of distilling
    check_outputs_not_inputs([("--out", out, "dir")], [("--model", model if Path(model).exists() else None)])
    resolved = resolve_model(model)
    set_threads()
    start = time.perf_counter()
    echo(f"distill: {model} -> {out} (every vocabulary token through the model once, PCA to {pca_dims or 'all'} dims)")
    try:
        static = distill(model_name=resolved, pca_dims=pca_dims)
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        if "pca" in first.lower() or "dimension" in first.lower():
            raise AnirecError(f"--pca-dims {pca_dims}: {first}. Use fewer dimensions than the model has.") from None
        raise AnirecError(not_found_message(model, f"{type(exc).__name__}: {first}")) from None
    vocab, dims = (int(n) for n in static.embedding.shape)
    info = {"source_model": model, "resolved": resolved, "pca_dims": pca_dims, "vocabulary": vocab, "dims": dims,
            "seconds": round(time.perf_counter() - start, 1), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    with atomic_dir(out) as tmp:
        static.save_pretrained(str(tmp))
        (tmp / "distill.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    echo(f"distill: wrote {out} ({vocab:,} tokens x {dims} dims) in {info['seconds']:.1f} s; "
         f"use it like any model: anirec embed --model {out}")
    return info
