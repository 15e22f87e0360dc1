"""`anirec demo`: the whole path on the shipped demo catalog, in well under a minute."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .build import build_catalog, format_build_summary

DEMO_DIR = Path(__file__).resolve().parent.parent / "data" / "demo"
DEMO_TITLES = ("Cowboy Bebop", "K-On!", "Death Note")


def run_demo(model: str = "all-MiniLM-L6-v2", k: int = 5, out_dir: Path = Path("out/demo"), echo=print) -> dict:
    from .models import load_model

    out_dir = Path(out_dir)
    result = build_catalog(DEMO_DIR, out_dir / "catalog.parquet")
    echo(format_build_summary(result))
    catalog = result.catalog
    encoder = load_model(model)
    vectors = encoder.encode(catalog["description"].tolist(), normalize_embeddings=True, show_progress_bar=False)
    sims = vectors @ vectors.T
    shown = {}
    for title in DEMO_TITLES:
        hit = np.flatnonzero(catalog["Name"].to_numpy() == title)
        if not len(hit):
            continue
        i = int(hit[0])
        order = [j for j in np.argsort(-sims[i]) if j != i][:k]
        echo(f"\nBecause you liked {title}:")
        for rank, j in enumerate(order, 1):
            echo(f"  {rank}. {catalog['Name'].iat[j]}  ({catalog['Genres'].iat[j]})  cos={sims[i, j]:.3f}")
        shown[title] = catalog["Name"].iloc[order].tolist()
    return shown
