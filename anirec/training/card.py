"""What a finished run says about itself, from its scores.json record: the model card and the summary.

``write_model_card`` puts anirec's section (base model, loss, data, scores, time) at the top of
the README.md sentence-transformers writes into the model folder; ``format_summary`` is what
`anirec finetune` prints at the end. Both read only the record, so they say what scores.json says.
"""

from __future__ import annotations

from pathlib import Path


def write_model_card(folder: Path, s: dict) -> None:
    """Put our section at the top of the library's README.md (after its YAML front matter)."""
    p, d = s["params"], s["data"]
    sp, pe = s["spearman_cosine"], s["pearson_cosine"]
    section = f"""
# {Path(s['model']).name}: {s['base']} fine-tuned on MyAnimeList pair labels (anirec)

Made with `anirec finetune`. Load it with `SentenceTransformer("{Path(s['model']).name}")` or
`anirec.models.load_model(PATH)`.

| | |
|---|---|
| base model | `{s['base']}` |
| loss | {s['loss_class']} (`{p['loss']}`) |
| max_seq_length | {s['max_seq_length']} |
| epochs / steps | {s['epochs_done']:.2f} / {s['steps']} |
| batch size / lr / warm-up | {p['batch_size']} / {p['lr']} / {p['warmup_ratio']} |
| training pairs | {d['train_pairs_used']:,} (of {d['train_pairs_available']:,}) from `{d['pairs_file']}` (sha256 {d['pairs_sha256'][:12]}) |
| validation pairs | {d['validation_pairs_used']:,} |
| catalog | `{d['catalog_file']}` (description hash {d['catalog_description_hash'][:12]}) |
| Spearman cosine (validation) | before {sp['before']:.4f} -> after {sp['after']:.4f} |
| Pearson cosine (validation) | before {pe['before']:.4f} -> after {pe['after']:.4f} |
| training time | {s['train_seconds']:.1f} s, {s['steps_per_second']} steps/s on {s['device']} |

Every parameter, data hash and timing is in `scores.json`.

"""
    readme = folder / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    if text.startswith("---\n") and (end := text.find("\n---\n", 4)) != -1:
        text = text[: end + 5] + section + text[end + 5:]
    else:
        text = section + text
    readme.write_text(text, encoding="utf-8")


def format_summary(s: dict) -> str:
    """The lines `anirec finetune` ends with: data, steps, scores before and after, where scores.json is."""
    sp, pe = s["spearman_cosine"], s["pearson_cosine"]
    resumed = f", resumed at step {s['resumed_from_step']}" if s.get("resumed_from_step") else ""
    rate = f"{s['steps_per_second']:.3f} steps/s, {s['seconds_per_step']:.2f} s/step" if s["steps_this_run"] else "no steps"
    d = s["data"]
    lines = [
        f"finetune done: {s['base']} -> {s['model']}  (loss {s['params']['loss']}, max_seq_length {s['max_seq_length']})",
        f"  pairs: {d['train_pairs_used']:,} train / {d['validation_pairs_used']:,} validation"
        + (f" ({d['pairs_missing_anime']:,} left out: anime not in the catalog)" if d["pairs_missing_anime"] else ""),
        f"  steps: {s['steps']} ({s['epochs_done']:.2f} epochs{resumed}) in {s['train_seconds']:.1f} s = {rate} on {s['device']}",
        "                      before    after   change",
        f"  Spearman cosine    {sp['before']:7.4f}  {sp['after']:7.4f}  {sp['after'] - sp['before']:+7.4f}",
        f"  Pearson cosine     {pe['before']:7.4f}  {pe['after']:7.4f}  {pe['after'] - pe['before']:+7.4f}",
        f"  wall time {s['wall_seconds']:.1f} s; scores: {Path(s['model']) / 'scores.json'}",
    ]
    return "\n".join(lines)
