"""The issue-17 fine-tuning configs load, validate and say what they train on."""

from __future__ import annotations

from pathlib import Path

import pytest

from anirec.training import load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name, loss, pairs", [
    ("minilm-256-jaccard", "cosent", "out/models/pairs/jaccard-3k.parquet"),
    ("minilm-256-ease-cosine", "cosine", "out/models/pairs/ease-cosine-3k.parquet"),
])
def test_label_configs(name, loss, pairs):
    cfg = load_config(ROOT / "finetune" / f"{name}.toml")
    cfg.validate()
    assert (cfg.base, cfg.max_seq_length, cfg.loss, cfg.pairs, cfg.out) == (
        "all-MiniLM-L6-v2", 256, loss, pairs, f"out/models/{name}")
    assert (cfg.batch_size, cfg.epochs, cfg.lr, cfg.warmup_ratio, cfg.seed) == (16, 1, 2e-5, 0.1, 42)
