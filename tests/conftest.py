"""Shared fixtures: the real MAL subset in ../shared, and tiny offline models."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

# No network here or in CI: fail fast instead of retrying the hub for a minute.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
SHARED_MAL = Path(os.environ.get("ANIREC_SHARED_MAL", ROOT.parent / "shared" / "data" / "mal"))
MODELS = Path(os.environ.get("ANIREC_MODELS", Path.home() / ".cache" / "anirec" / "models"))
MINILM = MODELS / "all-MiniLM-L6-v2"


@pytest.fixture(scope="session")
def mal_dir() -> Path:
    if not (SHARED_MAL / "anime.csv").exists():
        pytest.skip(f"shared MAL data not found at {SHARED_MAL}")
    return SHARED_MAL


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    if not (MINILM / "model.safetensors").exists():
        pytest.skip(f"all-MiniLM-L6-v2 not installed at {MINILM} (run ../shared/tools/offline-models)")
    return MINILM


@pytest.fixture(scope="session")
def mal_catalog(mal_dir, tmp_path_factory):
    """The shared catalog built once per session: (DataFrame, parquet path)."""
    from anirec.build import build_catalog

    out = tmp_path_factory.mktemp("catalog") / "catalog.parquet"
    result = build_catalog(mal_dir, out)
    return result.catalog, out


@pytest.fixture(scope="session")
def catalog(mal_catalog) -> pd.DataFrame:
    """The shared catalog's DataFrame (tests that read titles and fields, not files)."""
    return mal_catalog[0]


@pytest.fixture(scope="session")
def tiny_model_path(minilm_path, tmp_path_factory) -> Path:
    """A randomly initialised 2-layer BERT (hidden 32) with MiniLM's tokenizer, saved as a
    sentence-transformers folder: real code paths, no network, trains in seconds."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny") / "tiny-bert"
    tok = AutoTokenizer.from_pretrained(str(minilm_path))
    cfg = BertConfig(
        vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512,
    )
    hf_dir = out.parent / "hf"
    BertModel(cfg).save_pretrained(hf_dir)
    tok.save_pretrained(hf_dir)
    word = models.Transformer(str(hf_dir), max_seq_length=128)
    pool = models.Pooling(word.get_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[word, pool, models.Normalize()]).save(str(out))
    return out
