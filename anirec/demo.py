"""`anirec demo`: the whole path on the shipped demo catalog, in well under a minute."""

from __future__ import annotations

from pathlib import Path

from .build import build_catalog, format_build_summary

DEMO_DIR = Path(__file__).resolve().parent.parent / "data" / "demo"
DEMO_TITLES = ("Cowboy Bebop", "K-On!", "Death Note")


def run_demo(model: str = "all-MiniLM-L6-v2", k: int = 5, out_dir: Path = Path("out/demo"), echo=print,
             cache_dir: Path | None = None) -> dict:
    from .embeddings import format_embed_summary
    from .recommend import Recommender

    out_dir = Path(out_dir)
    result = build_catalog(DEMO_DIR, out_dir / "catalog.parquet")
    echo(format_build_summary(result))
    rec = Recommender.from_catalog(result.catalog, model, cache_dir=cache_dir, show_progress=False)
    echo(format_embed_summary(rec.embeddings))
    shown = {}
    for title in DEMO_TITLES:
        if title not in set(rec.catalog["Name"]):
            continue
        recs = rec.similar(title, k)
        echo(f"\nBecause you liked {title}:")
        for r in recs.itertuples(index=False):
            genres = rec.catalog["Genres"].iat[int(rec.rows_of_ids([r.MAL_ID])[0])]
            echo(f"  {r.rank}. {r.title}  ({genres})  cos={r.similarity:.3f}")
        shown[title] = recs["title"].tolist()
    return shown
