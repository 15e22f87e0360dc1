"""Find an embedder by name or path, and load it.

Resolution order for a name such as ``all-MiniLM-L6-v2``:
1. an existing path (a sentence-transformers folder, e.g. a fine-tuned output);
2. ``$ANIREC_MODELS/NAME`` (default ``~/.cache/anirec/models/NAME``), where the offline
   installer puts real weights;
3. the name as a Hugging Face hub id (a leading ``sentence-transformers/`` is stripped,
   sentence-transformers adds it back for its own models).

Backends (``--backend``, ``anirec.backends``): ``torch`` runs the model as it is; ``onnx``,
``onnx-int8`` and ``openvino`` run the same transformer exported once to ONNX (int8: dynamically
quantized by ONNX Runtime; openvino: the ONNX file compiled by OpenVINO). The exported files are
cached beside the embedding cache, keyed by the model's fingerprint (``anirec.cache``), and reused.
"""

from __future__ import annotations

import os
from pathlib import Path

from .backends import require_backend, set_threads, use_backend
from .errors import AnirecError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
HUB_PREFIX = "sentence-transformers/"


def models_dir() -> Path:
    return Path(os.environ.get("ANIREC_MODELS", "~/.cache/anirec/models")).expanduser()


def _candidates(name: str) -> list[Path]:
    short = name.removeprefix(HUB_PREFIX)
    return [Path(name).expanduser(), models_dir() / name, models_dir() / short]


def resolve_model(name: str) -> str:
    """Return a local path if one matches ``name``, else the hub id to ask sentence-transformers for."""
    for cand in _candidates(name):
        if cand.exists():
            return str(cand)
    return name.removeprefix(HUB_PREFIX)


def not_found_message(name: str, reason: str = "") -> str:
    looked = ", ".join(dict.fromkeys(str(c) for c in _candidates(name)))
    hub = name.removeprefix(HUB_PREFIX)
    return (
        f"model '{name}' not found: looked at {looked} and the Hugging Face hub id '{hub}'"
        + (f" ({reason})" if reason else "")
        + f". Offline: put a sentence-transformers folder at {models_dir() / hub} "
        f"(e.g. `shared/tools/offline-models {models_dir()}`), or pass the folder's path."
    )


def load_model(name: str, max_seq_length: int | None = None, device: str | None = None,
               backend: str = "torch", cache_dir: str | Path | None = None):
    """Load a SentenceTransformer by name/path; errors name every place that was tried.

    ``backend`` other than torch swaps the transformer for its exported ONNX/OpenVINO
    version (made once and cached in ``cache_dir``, default the embedding cache)."""
    from sentence_transformers import SentenceTransformer

    from transformers.utils import logging as hf_logging

    backend = require_backend(backend)
    set_threads()
    resolved = resolve_model(name)
    # transformers 5 shows a "Loading weights" bar for every load: noise next to our own output.
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model = SentenceTransformer(resolved, device=device)
    except Exception as exc:  # OSError, ValueError, HF hub errors: all mean "not loadable"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise AnirecError(not_found_message(name, f"{type(exc).__name__}: {first[:200]}")) from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    if max_seq_length is not None:
        set_max_seq_length(model, max_seq_length, name)
    if backend != "torch":
        use_backend(model, resolved, backend, cache_dir, name)
    return model


def model_max_positions(model) -> int | None:
    """The longest input the transformer itself can take (position embeddings), if known."""
    try:
        cfg = model[0].auto_model.config
    except Exception:
        return None
    n = getattr(cfg, "max_position_embeddings", None)
    if n is None:
        return None
    # RoBERTa-family models (distilroberta, mpnet) reserve padding_idx + 1 positions.
    if getattr(cfg, "model_type", "") in ("roberta", "xlm-roberta", "mpnet", "camembert"):
        n -= getattr(cfg, "pad_token_id", 1) + 1
    return int(n)


def set_max_seq_length(model, max_seq_length: int, name: str = "") -> None:
    limit = model_max_positions(model)
    if max_seq_length < 1:
        raise AnirecError(f"--max-seq-length {max_seq_length}: must be a positive number of tokens.")
    if limit is not None and max_seq_length > limit:
        raise AnirecError(
            f"--max-seq-length {max_seq_length} is above what model '{name or 'model'}' supports "
            f"({limit} tokens). Use {limit} or less."
        )
    if not hasattr(model[0], "auto_model") and hasattr(getattr(model[0], "tokenizer", None), "enable_truncation"):
        # A static (model2vec) model has no position limit; truncate its tokenizer so that
        # "256 tokens" means the same text for every model.
        model[0].tokenizer.enable_truncation(max_seq_length)
        return
    model.max_seq_length = max_seq_length


def load_tokenizer(name: str):
    """The tokenizer of an embedder (for token-length statistics), without loading weights."""
    from transformers import AutoTokenizer

    resolved = resolve_model(name)
    try:
        return AutoTokenizer.from_pretrained(resolved)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise AnirecError(not_found_message(name, f"{type(exc).__name__}: {first[:200]}")) from None
