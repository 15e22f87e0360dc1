"""Benchmark for issue 11 (not a test): encoding speed per backend, and the quality each keeps.

One run on one machine, for one model (all-MiniLM-L6-v2 by default) at max_seq_length 256:

1. speed: descriptions/s of torch fp32, onnx, onnx-int8, openvino and the static model2vec
   model distilled from the same model, on a fixed seeded sample of catalog descriptions.
   The backends take turns (interleaved rounds, the order rotated each round); the speed-up is
   the median over rounds of each backend's rate divided by torch's rate in the same round, so
   load from other processes on a shared machine, which drifts during a run, hits both sides
   of each ratio alike. The load average is sampled and printed.
2. quality: holdout and cold-start NDCG@10 of each backend's vectors of the whole catalog,
   through the evaluation API (`anirec evaluate --protocols holdout,coldstart -b none`), and
   how close each backend's vectors are to torch's (cosine on the speed sample).

    python bench/bench_encode.py --data ../shared/data/mal --out eval/bench_encode.txt

The exported ONNX files, the distilled model and the embeddings are cached (``--work``,
``--cache-dir``), so a second run only measures.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from benchlog import save, say  # noqa: E402  (first: sets the offline environment)

from anirec.backends import BACKENDS, cpu_threads  # noqa: E402
from anirec.models import load_model, resolve_model  # noqa: E402

STATIC = "static"


def load() -> str:
    return "{:.1f}/{:.1f}/{:.1f}".format(*os.getloadavg())


def available(backends: list[str]) -> list[str]:
    from anirec.errors import AnirecError
    from anirec.backends import require_backend

    keep = []
    for b in backends:
        try:
            if b == STATIC:
                from anirec.distill import require_model2vec

                require_model2vec()
            else:
                require_backend(b)
            keep.append(b)
        except AnirecError as exc:
            say(f"skipped {b}: {exc}")
    return keep


def static_model(model: str, work: Path, pca_dims: int) -> Path:
    from anirec.distill import distill_model

    out = work / f"{Path(resolve_model(model)).name}-static-{pca_dims}"
    if not (out / "distill.json").exists():
        distill_model(model, out, pca_dims, echo=say)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="Kaggle folder (catalog source and ratings)")
    ap.add_argument("--catalog", help="catalog parquet (default: built from --data into --work)")
    ap.add_argument("--model", default="all-MiniLM-L6-v2")
    ap.add_argument("--backends", default=",".join([*BACKENDS, STATIC]))
    ap.add_argument("--quality", default=",".join([*BACKENDS, STATIC]), help="backends to evaluate on the full catalog ('none': skip)")
    ap.add_argument("--max-seq-length", type=int, default=256)
    ap.add_argument("--sample", type=int, default=200, help="descriptions per speed round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--pca-dims", type=int, default=256)
    ap.add_argument("--work", type=Path, default=Path("/tmp/anirec-bench-encode"))
    ap.add_argument("--cache-dir", help="embedding cache (default: anirec's)")
    ap.add_argument("--out", type=Path, default=Path("eval/bench_encode.txt"))
    a = ap.parse_args()

    import pandas as pd
    import sentence_transformers
    import torch

    from anirec.build import build_catalog

    a.work.mkdir(parents=True, exist_ok=True)
    say(f"# bench_encode  {time.strftime('%Y-%m-%d %H:%M')}  python {platform.python_version()}  torch {torch.__version__}  "
        f"sentence-transformers {sentence_transformers.__version__}  {os.cpu_count()} CPUs, {cpu_threads()} threads  "
        f"load average at start {load()}")
    say("command: python " + " ".join(sys.argv))
    catalog_path = Path(a.catalog) if a.catalog else a.work / "catalog.parquet"
    if not catalog_path.exists():
        build_catalog(a.data, catalog_path)
    catalog = pd.read_parquet(catalog_path)
    backends = available([b.strip() for b in a.backends.split(",") if b.strip()])
    paths = {b: (str(static_model(a.model, a.work, a.pca_dims)) if b == STATIC else a.model) for b in backends}

    # ---------------------------------------------------------------- speed
    rng = np.random.default_rng(0)
    texts = catalog["description"].astype(str).to_numpy()[rng.choice(len(catalog), min(a.sample, len(catalog)), replace=False)].tolist()
    models, load_s = {}, {}
    for b in backends:
        t = time.perf_counter()
        models[b] = load_model(paths[b], a.max_seq_length, backend="torch" if b == STATIC else b, cache_dir=a.cache_dir)
        load_s[b] = time.perf_counter() - t
        models[b].encode(texts[:8], batch_size=8)  # warm-up (first-call allocations, OpenVINO compile)
    tok = models[backends[0]].tokenizer if backends[0] != STATIC else None
    longer = (sum(len(tok(t)["input_ids"]) > a.max_seq_length for t in texts) / len(texts)) if tok else float("nan")
    rates: dict[str, list[float]] = {b: [] for b in backends}
    vectors: dict[str, np.ndarray] = {}
    loads = [load()]
    for r in range(a.rounds):
        order = backends[r % len(backends):] + backends[: r % len(backends)]
        for b in order:
            t = time.perf_counter()
            vectors[b] = models[b].encode(texts, batch_size=a.batch_size, normalize_embeddings=True)
            rates[b].append(len(texts) / (time.perf_counter() - t))
        loads.append(load())
        say(f"round {r + 1}: " + "  ".join(f"{b} {rates[b][-1]:.1f}/s" for b in backends) + f"  (load {loads[-1]})")
    del models

    med = {b: statistics.median(rates[b]) for b in backends}
    base = med.get("torch")
    say()
    if "openvino" in backends:
        import openvino as ov

        precision = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")
        say(f"OpenVINO's inference precision on this CPU: {precision.get_type_name()} (its default: bf16 where the CPU has AMX/AVX512-BF16, else f32)")
    say(f"## speed: {a.model}, max_seq_length {a.max_seq_length}, batch {a.batch_size}, {len(texts)} catalog descriptions "
        f"(seeded sample, {longer:.0%} longer than {a.max_seq_length} tokens), median of {a.rounds} interleaved rounds")
    say(f"load average (1/5/15 min) sampled before and after each round: {', '.join(loads)} on {os.cpu_count()} CPUs")
    say("speed-up: median over rounds of (rate / torch's rate in the same round)")
    say("| backend | descriptions/s (median) | rounds | speed-up vs torch fp32 | cosine to torch (min / mean) | load+export s |")
    say("|---|---|---|---|---|---|")
    for b in backends:
        if "torch" in vectors and b != STATIC:
            cos = (vectors[b] * vectors["torch"]).sum(1)
            close = f"{cos.min():.4f} / {cos.mean():.4f}"
        else:
            close = "- (other model)" if b == STATIC else "-"
        up = f"{statistics.median(x / t for x, t in zip(rates[b], rates['torch'])):.1f}x" if base else "-"
        say(f"| {b} | {med[b]:.1f} | {', '.join(f'{x:.1f}' for x in rates[b])} | {up} | {close} | {load_s[b]:.1f} |")

    # ---------------------------------------------------------------- quality
    save(a.out)  # the speed table is kept even if the quality part is cut short
    quality = [b.strip() for b in a.quality.split(",") if b.strip() in backends]
    if quality:
        from anirec import evaluation as ev

        say()
        say(f"## quality: the whole catalog ({len(catalog):,} anime) per backend, as `anirec evaluate --models NAME=MODEL "
            f"--backend B --max-seq-length {a.max_seq_length} --protocols holdout,coldstart -b none --bootstrap 0`")
        say("| backend | holdout NDCG@10 | cold-start NDCG@10 | cold-start vs torch | holdout hit@10 | cold-start hit@10 | encode s (0: cached) | load at end |")
        say("|---|---|---|---|---|---|---|---|")
        cold_torch = None
        # torch first (the reference), then the rest; one evaluation per backend, the file rewritten after each
        for b in sorted(quality, key=lambda b: b != "torch"):
            cfg = ev.EvalConfig(catalog=str(catalog_path), ratings=a.data, protocols=["holdout", "coldstart"], baselines=[],
                                models=[ev.MethodSpec(b, "text", {"model": paths[b], "max_seq_length": a.max_seq_length,
                                                                  "backend": "torch" if b == STATIC else b}, where="bench")],
                                bootstrap=0, cache_dir=a.cache_dir, out=str(a.work / "eval" / b))
            outcome = ev.run_evaluation(cfg, echo=print)
            res = outcome.results

            def get(protocol, metric):
                row = res[(res["method"] == b) & (res["protocol"] == protocol) & (res["metric"] == metric)]
                return float(row["value"].iat[0]) if len(row) else float("nan")

            cold = get("coldstart", "ndcg@10")
            cold_torch = cold if b == "torch" else cold_torch
            rel = f"{cold / cold_torch - 1:+.1%}" if cold_torch and b != "torch" else "-"
            runs = [r.get("embedding") or {} for r in outcome.meta["methods"][b]["runs"].values()]
            enc = sum(r.get("embed_seconds", 0) for r in runs if r.get("cache_hit") is False)
            say(f"| {b} | {get('holdout', 'ndcg@10'):.4f} | {cold:.4f} | {rel} | {get('holdout', 'hit_rate@10'):.3f} | "
                f"{get('coldstart', 'hit_rate@10'):.3f} | {enc:.0f} | {load()} |")
            save(a.out)
    say()
    say(f"load average at end {load()} (the machine is shared: speeds are lower bounds, ratios are the result)")
    save(a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
