"""`anirec finetune`: fine-tune a sentence embedder on the pair labels."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import app
from .. import training
from .options import max_seq_length_option, plain, seed_option


@app.command()
def finetune(
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file with any of the options below (flat keys: base, catalog, pairs, out, max_seq_length, ...); flags override it. See finetune/*.toml."),
    base: Optional[str] = typer.Option(None, "--base", help="Base model name or path (e.g. all-MiniLM-L6-v2, all-mpnet-base-v2)."),
    catalog: Optional[str] = typer.Option(None, "--catalog", help="Catalog parquet from `anirec build`."),
    pairs: Optional[str] = typer.Option(None, "--pairs", help="Pairs parquet from `anirec pairs` (its split column gives train/validation)."),
    out: Optional[str] = typer.Option(None, "--out", help="Output folder (a sentence-transformers model + scores.json). Checkpoints live in OUT.partial while training."),
    max_seq_length: Optional[int] = max_seq_length_option("Tokens per description (128/256/384/512)."),
    epochs: Optional[float] = typer.Option(None, "--epochs", help=plain("Epochs [1].")),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help=plain("Pairs per batch per device [16].")),
    lr: Optional[float] = typer.Option(None, "--lr", help=plain("Peak learning rate [2e-5].")),
    warmup_ratio: Optional[float] = typer.Option(None, "--warmup-ratio", help=plain("Share of steps for linear warm-up [0.1].")),
    loss: Optional[str] = typer.Option(None, "--loss", help=plain("cosine (reference CosineSimilarityLoss) | cosent | angle | mnrl (positive pairs, in-batch negatives) | cmnrl (cached mnrl: large batch, small memory; see --mini-batch-size) | gist (GISTEmbed: the frozen base model guides which in-batch negatives count) [cosine].")),
    mini_batch_size: Optional[int] = typer.Option(None, "--mini-batch-size", help=plain("cmnrl: texts per forward pass; memory, not the batch the loss sees [32].")),
    no_hard_negatives: bool = typer.Option(False, "--no-hard-negatives", help="mnrl/cmnrl/gist: ignore the negative pairs (label < 0) instead of training on (anchor, positive, negative) triplets."),
    seed: Optional[int] = seed_option(None, plain("Seed for shuffling, sampling and init, 0..2^32-1 [42].")),
    eval_steps: Optional[float] = typer.Option(None, "--eval-steps", help="Also score the validation pairs every N steps (below 1: a share of the run). Default: before and after only."),
    save_steps: Optional[float] = typer.Option(None, "--save-steps", help=plain("Checkpoint every N steps (below 1: a share of the run) [0.1].")),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after N optimizer steps (a time budget; overrides --epochs)."),
    max_train_pairs: Optional[int] = typer.Option(None, "--max-train-pairs", help="Train on a seeded random sample of N training pairs (a budget)."),
    max_eval_pairs: Optional[int] = typer.Option(None, "--max-eval-pairs", help="Score on a seeded random sample of N validation pairs (a budget)."),
    precision: Optional[str] = typer.Option(None, "--precision", help=plain("auto (bf16/fp16 on CUDA, fp32 on CPU) | fp32 | fp16 | bf16 [auto].")),
    resume: bool = typer.Option(False, "--resume", help="Continue the unfinished run in OUT.partial from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start over: discard OUT.partial, replace OUT when done."),
    keep_checkpoints: bool = typer.Option(False, "--keep-checkpoints", help="Keep the last checkpoints in OUT/checkpoints (default: deleted when done)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bars."),
) -> None:
    """Fine-tune a sentence embedder on pair labels (sentence-transformers Trainer; multi-GPU under torchrun)."""
    cfg = training.load_config(
        config, base=base, catalog=catalog, pairs=pairs, out=out, max_seq_length=max_seq_length, epochs=epochs,
        batch_size=batch_size, lr=lr, warmup_ratio=warmup_ratio, loss=loss, seed=seed,
        mini_batch_size=mini_batch_size, hard_negatives=False if no_hard_negatives else None, eval_steps=eval_steps,
        save_steps=save_steps, max_steps=max_steps, max_train_pairs=max_train_pairs, max_eval_pairs=max_eval_pairs,
        precision=precision, resume=resume or None, overwrite=overwrite or None,
        keep_checkpoints=keep_checkpoints or None, show_progress=False if no_progress else None,
    )
    training.finetune(cfg, echo=typer.echo)
