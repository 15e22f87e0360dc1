"""Where ONNX Runtime spends an onnx-int8 batch (issue 11, not a test): time per operator type.

The int8 export quantizes the weight matrices (MatMul -> DynamicQuantizeMatMul, the fused
attention's QKV projection -> QAttention); what stays fp32 (the attention scores, softmax,
layer norms, GELU) bounds the speed-up over torch fp32 (Amdahl). This prints ONNX Runtime's
own profile of one batch of real catalog descriptions at max_seq_length tokens, for the fp32
and the int8 export, beside torch's time for the same batch.

    python bench/profile_onnx_int8.py --catalog out/mal/catalog.parquet --out eval/profile_onnx_int8.txt
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

import benchlog  # noqa: E402,F401  (first: sets the offline environment)

from anirec.backends import cpu_threads, exported_file  # noqa: E402
from anirec.models import load_model, resolve_model  # noqa: E402


def ort_profile(path: Path, feeds: dict, repeats: int) -> tuple[float, dict[str, float]]:
    """(best seconds per batch, ms per operator type averaged over the repeats)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = cpu_threads()
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as anirec runs it
    with tempfile.TemporaryDirectory() as tmp:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        names = {i.name for i in session.get_inputs()}
        run_feeds = {k: v for k, v in feeds.items() if k in names}
        session.run(None, run_feeds)  # warm-up (also in the profile; subtracted below)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            session.run(None, run_feeds)
            times.append(time.perf_counter() - t)
        events = json.loads(Path(session.end_profiling()).read_text())
    per_op: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"] / 1000.0 / (repeats + 1)
    return min(times), dict(per_op)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--catalog", required=True, help="catalog parquet from `anirec build`")
    ap.add_argument("--model", default="all-MiniLM-L6-v2")
    ap.add_argument("--max-seq-length", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32, help="descriptions in the profiled batch (seeded sample)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()

    import pandas as pd
    import torch

    texts = pd.read_parquet(a.catalog, columns=["description"])["description"].astype(str).tolist()
    pick = np.random.default_rng(0).choice(len(texts), size=min(a.batch, len(texts)), replace=False)
    batch = [texts[i] for i in pick]
    model = load_model(a.model, a.max_seq_length)
    resolved = resolve_model(a.model)
    features = model.preprocess(batch)
    feeds = {k: v.numpy().astype(np.int64) for k, v in features.items() if hasattr(v, "numpy")}
    tokens = int(features["attention_mask"].sum())
    lines = [f"# profile_onnx_int8  {time.strftime('%Y-%m-%d %H:%M')}  {os.cpu_count()} CPUs, {cpu_threads()} threads, "
             f"load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())}",
             f"{a.model} at {a.max_seq_length} tokens: one batch of {len(batch)} catalog descriptions "
             f"({feeds['input_ids'].shape[1]} tokens padded, {tokens:,} real), best of {a.repeats}", ""]

    times = []
    with torch.inference_mode():
        model(dict(features))  # warm-up
        for _ in range(a.repeats):
            t = time.perf_counter()
            model(dict(features))  # the same tokenized batch: transformer, pooling, normalisation
            times.append(time.perf_counter() - t)
    best = min(times)
    lines.append(f"torch fp32: {best * 1000:.0f} ms per batch")
    for backend in ("onnx", "onnx-int8"):
        path = exported_file(model, resolved, backend, name=a.model)
        secs, per_op = ort_profile(path, feeds, a.repeats)
        total = sum(per_op.values())
        lines += ["", f"## {backend}: {secs * 1000:.0f} ms per batch ({best / secs:.2f}x torch), operators:",
                  "| operator | ms per batch | share |", "|---|---|---|"]
        lines += [f"| {op} | {ms:.1f} | {100 * ms / total:.1f}% |"
                  for op, ms in sorted(per_op.items(), key=lambda kv: -kv[1]) if ms >= 0.05 * total / 100]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        a.out.write_text(text)


if __name__ == "__main__":
    main()
