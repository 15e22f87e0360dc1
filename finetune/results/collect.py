"""Copy each fine-tuned model's scores.json here and write the summary table (README.md).

    python finetune/results/collect.py out/models/minilm-256-cosine out/models/...
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _table_rows(readme_text: str) -> dict[str, str]:
    """The run rows of an existing summary table, by run name."""
    rows = {}
    for line in readme_text.split("\n## ")[0].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] not in ("run", "") and not set(cells[0]) <= set("-"):
            rows[cells[0]] = line
    return rows


def main(folders: list[str]) -> None:
    readme = HERE / "README.md"
    old = readme.read_text() if readme.exists() else ""
    # Runs collected earlier (other machines, step-budget runs) keep their rows; a run collected
    # again replaces its own.
    by_run = _table_rows(old)
    for folder in map(Path, folders):
        scores = folder / "scores.json"
        if not scores.exists():
            print(f"skip {folder}: no scores.json (run not finished)")
            continue
        shutil.copyfile(scores, HERE / f"{folder.name}.json")
        s = json.loads(scores.read_text())
        p = s["params"]
        by_run[folder.name] = (
            f"| {folder.name} | {s['base']} | {s['loss_class']} | {s['max_seq_length']} "
            f"| {s['data']['train_pairs_used']:,} / {s['data']['validation_pairs_used']:,} | {s['steps']} "
            f"| {s['spearman_cosine']['before']:.4f} | {s['spearman_cosine']['after']:.4f} "
            f"| {s['train_seconds']:,.0f} | {s['seconds_per_step']:.2f} | {p['lr']:g} | {s.get('device', '?')} |"
        )
    head = (
        "# Fine-tuning results on the shared MAL data\n\n"
        "Made by `bash eval/run_mal.sh finetune` (the device of each run is in the table); each row's full\n"
        "record (every parameter, data hashes, loss history, device) is the JSON file of the same name.\n"
        "Spearman = Spearman of cosine similarity vs pair label on the validation pairs (for CF pairs,\n"
        "`pairs --label cf`: vs their reference agreement label, see `data.validation_label`).\n\n"
        "| run | base | loss | max_seq_length | train / validation pairs | steps | Spearman before "
        "| after | train s | s/step | lr | device |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    # Hand-written sections below the table (## headings) survive a re-collect.
    notes = old[old.index("\n## "):] if "\n## " in old else ""
    readme.write_text(head + "\n".join(by_run.values()) + "\n" + notes)
    print((HERE / "README.md").read_text())


if __name__ == "__main__":
    main(sys.argv[1:])
