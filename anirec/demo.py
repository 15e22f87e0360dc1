"""`anirec demo`: the whole path on the shipped demo catalog, in well under a minute."""

from __future__ import annotations

from pathlib import Path

from .build import build_catalog, format_build_summary

DEMO_DIR = Path(__file__).resolve().parent.parent / "data" / "demo"
DEMO_TITLES = ("Cowboy Bebop", "K-On!", "Death Note")
DEMO_LIKES = ("Shingeki no Kyojin", "Steins;Gate")  # what a new user says they liked


def run_demo(model: str = "all-MiniLM-L6-v2", k: int = 5, out_dir: Path = Path("out/demo"), echo=print,
             cache_dir: Path | None = None) -> dict:
    """Build the demo catalog, then answer title queries with the text method (what plain
    `anirec recommend` serves) and a new user's likes with the default method (what `anirec fit`
    fits without --method), fitted, saved and loaded back."""
    from .embeddings import format_embed_summary
    from .fitting import fit_on_catalog
    from .recommenders import make
    from .serving import Query, Served, answer

    out_dir = Path(out_dir)
    result = build_catalog(DEMO_DIR, out_dir / "catalog.parquet")
    echo(format_build_summary(result))
    text = fit_on_catalog(make("text", {"model": model}, cache_dir=cache_dir, progress=False), result.catalog)
    if text.embeddings is not None:
        echo(format_embed_summary(text.embeddings))
    served = Served(result.catalog, text)
    genres = result.catalog.set_index("MAL_ID")["Genres"]
    shown = {}
    for title in DEMO_TITLES:
        if title not in set(result.catalog["Name"]):
            continue
        recs = answer(served, Query(titles=(title,), k=k)).frame
        echo(f"\nBecause you liked {title}:")
        for r in recs.itertuples(index=False):
            echo(f"  {r.rank}. {r.title}  ({genres[r.MAL_ID]})  cos={r.recommender_score:.3f}")
        shown[title] = recs["title"].tolist()
    shown["likes"] = demo_fitted(result.out, k, out_dir / "recommender", echo, cache_dir)
    return shown


def demo_fitted(catalog_path: Path, k: int, folder: Path, echo=print, cache_dir: Path | None = None) -> list[str]:
    """Fit the default method (cEASE on the demo's synthetic ratings and the descriptions), save
    it, load the folder back and answer a new user's --likes, as `anirec recommend --recommender` would."""
    from .fitted import load_fitted
    from .fitting import FitMethod, fit_to_folder, format_fit_summary
    from .recommenders import DEFAULT_METHOD
    from .serving import Query, Served, answer

    fit = fit_to_folder(FitMethod(DEFAULT_METHOD, {}), str(DEMO_DIR), catalog_path, folder,
                        cache_dir=cache_dir, progress=False)
    echo("\n" + format_fit_summary(fit))
    fitted = load_fitted(folder)
    frame = answer(Served(fitted.catalog, fitted.recommender), Query(titles=DEMO_LIKES, k=k, as_user=True)).frame
    likes = " ".join(f'--likes "{t}"' for t in DEMO_LIKES)
    echo(f"\nanirec recommend --recommender {folder} {likes} -k {k}")
    for r in frame.itertuples(index=False):
        echo(f"  {r.rank}. {r.title}  score={r.recommender_score:.3f}")
    return frame["title"].tolist()
