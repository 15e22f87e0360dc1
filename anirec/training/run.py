"""One fine-tuning run on sentence-transformers' ``SentenceTransformerTrainer`` (METHOD.md section 4).

The reference: CosineSimilarityLoss on (description a, description b, label), batch 16, 1 epoch,
10% warm-up, scored by the Spearman correlation of cosine similarity with the label on the
validation pairs. On the library's trainer the same command trains on CPU, one GPU, or many
GPUs under torchrun/accelerate (every process runs ``finetune``; only rank 0 talks and writes).

``finetune`` reads top to bottom: check the output folder and the settings, load and check the
data (a bad file fails in a second, before any model is loaded), load the base model, score it,
train, score again, then write OUT in one rename: the model, scores.json and its model card.

A run that diverged is not a model. The training loss is watched as the Trainer logs it (its
filter that would hide a NaN loss is off) and a loss that is not a number stops the run at once;
a run whose loss, validation score (when it was a number before training) or weights are not
numbers is refused in one line, and its OUT.partial removed: resuming it needs the same
settings, so it would only diverge again.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..errors import AnirecError
from ..io import atomic_dir, check_outputs_not_inputs, check_writable_output
from ..models import load_model, resolve_model
from .card import format_summary, write_model_card
from .config import FinetuneConfig
from .data import PairTexts, load_pair_texts, make_datasets
from .objectives import IN_BATCH_NEGATIVE_LOSSES, LOSSES, make_evaluator, make_loss, validation_scores
from .resume import checkpoint_step, check_same_run, last_checkpoint, partial_dir, prepare_output, read_run, write_run

HISTORY_KEYS = ("step", "epoch", "loss", "learning_rate", "eval_validation_spearman_cosine")


@dataclass
class FinetuneResult:
    out: Path
    scores: dict  # what scores.json holds (rank 0); after == None on other ranks


def finetune(cfg: FinetuneConfig, callbacks: list | None = None, echo=print) -> FinetuneResult:
    """Fine-tune ``cfg.base`` on the pair labels; write ``cfg.out`` (layout: anirec.training.resume)."""
    t_start = time.perf_counter()
    cfg.validate()
    rank, local_rank = int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", -1))
    is_main = rank == 0
    if not is_main:  # under torchrun every rank runs this; only rank 0 talks
        echo = lambda *a, **k: None  # noqa: E731
    precision = precision_args(cfg.precision)
    out, work = Path(cfg.out).expanduser(), partial_dir(cfg.out)
    check_writable_output(out, "dir", "--out")  # OUT and OUT.partial are made beside each other
    check_outputs_not_inputs([("--out", out, "dir")], [("--base", cfg.base if cfg.base and Path(cfg.base).exists() else None), ("--catalog", cfg.catalog), ("--pairs", cfg.pairs)])
    resume_from = prepare_output(cfg, is_main)

    # Data first: a bad file fails in a second, before any model is loaded.
    texts, data = load_pair_texts(cfg)
    identity = {**cfg.identity(), "pairs_sha256": data["pairs_sha256"],
                "catalog_description_hash": data["catalog_description_hash"]}
    saved_run = read_run(work) if cfg.resume else {}
    if resume_from is not None:
        check_same_run(saved_run.get("identity", {}), identity, work)

    model = _load_base(cfg, local_rank)
    train_dataset, dataset_info = make_datasets(texts, cfg.loss, cfg.seed)
    data.update(dataset_info)
    evaluator = make_evaluator(texts.validation, cfg.batch_size, show_progress=cfg.show_progress)
    echo(_header(cfg, model, texts, dataset_info))
    # Score before training (kept in run.json, so a resumed run does not pay for it again).
    if saved_run.get("identity") == identity and "before" in saved_run:
        before, before_seconds = saved_run["before"], saved_run.get("before_seconds", 0.0)
    else:
        before, before_seconds = _timed_scores(evaluator, model)
    echo(f"Spearman cosine before training: {before['spearman_cosine']:.4f}")
    if is_main:
        write_run(work, identity, before, before_seconds, cfg)

    watch = watch_loss()
    trainer = _trainer(cfg, model, work, train_dataset, evaluator, [*(callbacks or []), watch], precision)
    start_step = checkpoint_step(resume_from) if resume_from is not None else 0
    if resume_from is not None:
        echo(f"resuming from {resume_from} (step {start_step})")
    timing = _train(trainer, resume_from, work, echo)
    if not trainer.is_world_process_zero():
        return FinetuneResult(out, {"before": before, "after": None, "steps": int(trainer.state.global_step)})

    after, after_seconds = _timed_scores(evaluator, model)
    refuse_diverged(watch, before, after, model, int(trainer.state.global_step), cfg, work)
    scores = _record(cfg, trainer, model, precision, data, before, after, start_step if resume_from else None,
                     {**timing, "eval_seconds": {"before": round(before_seconds, 2), "after": round(after_seconds, 2)}})
    _save(model, out, work, scores, cfg.keep_checkpoints, t_start)
    echo(format_summary(scores))
    return FinetuneResult(out, scores)


# --------------------------------------------------------------------------- the steps


def precision_args(precision: str) -> dict:
    import torch

    cuda = torch.cuda.is_available()
    if precision in ("fp16", "bf16") and not cuda:
        raise AnirecError(f"--precision {precision} needs a CUDA GPU; on CPU use fp32 (or auto).")
    if precision == "auto":
        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "fp32"
    return {"fp16": precision == "fp16", "bf16": precision == "bf16"}


def device_name() -> str:
    import torch

    world = int(os.environ.get("WORLD_SIZE", 1))
    name = f"cuda ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    return f"{name} x {world} processes" if world > 1 else name


def _load_base(cfg: FinetuneConfig, local_rank: int):
    import torch

    device = f"cuda:{local_rank}" if local_rank >= 0 and torch.cuda.is_available() else None
    model = load_model(cfg.base, max_seq_length=cfg.max_seq_length, device=device)
    model.model_card_data.local_files_only = True  # offline: never ask the hub about the base model
    return model


def _header(cfg: FinetuneConfig, model, texts: PairTexts, dataset_info: dict) -> str:
    triplets = (f" ({dataset_info['triplets_hard_negative']:,} with a hard negative, "
                f"{dataset_info['triplets_random_negative']:,} with a random one)" if "triplets_hard_negative" in dataset_info else "")
    return (f"finetune: {cfg.base} (max_seq_length {int(model.max_seq_length)}, loss {cfg.loss}) on {len(texts.train):,} train"
            f"{triplets} / {len(texts.validation):,} validation pairs (Spearman vs {texts.validation_label}); device {device_name()}")


def _timed_scores(evaluator, model) -> tuple[dict, float]:
    t0 = time.perf_counter()
    scores = validation_scores(evaluator(model))
    return scores, time.perf_counter() - t0


def _trainer(cfg: FinetuneConfig, model, work: Path, train_dataset, evaluator, callbacks: list, precision: dict):
    import torch
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    args = SentenceTransformerTrainingArguments(
        output_dir=str(work / "checkpoints"),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        learning_rate=cfg.lr,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float below 1 is a share of the steps
        seed=cfg.seed,
        data_seed=cfg.seed,
        eval_strategy="steps" if cfg.eval_steps else "no",
        eval_steps=cfg.eval_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        logging_strategy="steps",
        logging_steps=0.02,  # about 50 loss lines per run, whatever its length
        logging_nan_inf_filter=False,  # a NaN loss must show (WatchLoss stops the run), not be averaged away
        report_to="none",
        dataloader_pin_memory=torch.cuda.is_available(),
        use_cpu=not torch.cuda.is_available(),  # also makes torchrun on CPU real DDP (gloo), not N copies
        disable_tqdm=not cfg.show_progress,
        batch_sampler=BatchSamplers.NO_DUPLICATES if cfg.loss in IN_BATCH_NEGATIVE_LOSSES else BatchSamplers.BATCH_SAMPLER,
        **precision,
    )
    return SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train_dataset, loss=make_loss(cfg, model),
        evaluator=evaluator if cfg.eval_steps else None, callbacks=callbacks,
    )


def _train(trainer, resume_from: Path | None, work: Path, echo) -> dict:
    """Run the Trainer; the wall and CPU seconds it took."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except KeyboardInterrupt:
        last = last_checkpoint(work / "checkpoints")
        echo(f"finetune interrupted; {'last checkpoint ' + str(last) if last else 'no checkpoint yet'}. "
             "Run the same command with --resume to continue.")
        raise
    # CPU seconds of this process (all threads): on a shared machine the wall clock measures the
    # neighbours too; CPU time per step is what the run itself cost.
    return {"train_seconds": time.perf_counter() - t0, "train_cpu_seconds": time.process_time() - cpu0}


def _record(cfg: FinetuneConfig, trainer, model, precision: dict, data: dict, before: dict, after: dict,
            resumed_from_step: int | None, timing: dict) -> dict:
    """What scores.json holds (everything but the wall time and finish time, added when saving)."""
    import sentence_transformers
    import torch
    import transformers

    steps = int(trainer.state.global_step)
    steps_this_run = steps - (resumed_from_step or 0)
    seconds, cpu_seconds = timing["train_seconds"], timing["train_cpu_seconds"]
    history = [{k: v for k, v in entry.items() if k in HISTORY_KEYS}
               for entry in trainer.state.log_history if "loss" in entry or "eval_validation_spearman_cosine" in entry]
    return {
        "model": str(Path(cfg.out).expanduser()), "base": cfg.base, "base_resolved": resolve_model(cfg.base),
        "loss_class": LOSSES[cfg.loss], "max_seq_length": int(model.max_seq_length),
        "spearman_cosine": {"before": before["spearman_cosine"], "after": after["spearman_cosine"]},
        "pearson_cosine": {"before": before["pearson_cosine"], "after": after["pearson_cosine"]},
        "steps": steps, "steps_this_run": steps_this_run, "resumed_from_step": resumed_from_step,
        "epochs_done": float(trainer.state.epoch or 0.0),
        "train_seconds": round(seconds, 2),
        "train_cpu_seconds": round(cpu_seconds, 2),
        "cpu_seconds_per_step": round(cpu_seconds / steps_this_run, 3) if steps_this_run else None,
        "steps_per_second": round(steps_this_run / seconds, 4) if seconds > 0 else None,
        "seconds_per_step": round(seconds / steps_this_run, 3) if steps_this_run else None,
        "eval_seconds": timing["eval_seconds"],
        "device": device_name(), "world_size": int(os.environ.get("WORLD_SIZE", 1)),
        "mixed_precision": "bf16" if precision["bf16"] else "fp16" if precision["fp16"] else "fp32",
        "params": asdict(cfg), "data": data, "history": history,
        "versions": {"sentence_transformers": sentence_transformers.__version__,
                     "transformers": transformers.__version__, "torch": torch.__version__},
    }


def _save(model, out: Path, work: Path, scores: dict, keep_checkpoints: bool, t_start: float) -> None:
    """OUT in one rename (model, model card, scores.json, the checkpoints if kept); then OUT.partial goes."""
    with atomic_dir(out) as tmp:
        model.save(str(tmp))
        scores["wall_seconds"] = round(time.perf_counter() - t_start, 2)
        scores["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        write_model_card(tmp, scores)
        (tmp / "scores.json").write_text(json.dumps(scores, indent=2) + "\n")
        if keep_checkpoints and (work / "checkpoints").is_dir():
            os.replace(work / "checkpoints", tmp / "checkpoints")  # last: nothing can fail after it
    shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- a run that diverged


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def watch_loss():
    """A TrainerCallback that stops the run at the first logged training loss that is not a
    number (NaN or inf: the weights have diverged, and every later step is wasted); its
    ``bad_step`` and ``bad_loss`` say where."""
    from transformers import TrainerCallback

    class WatchLoss(TrainerCallback):
        bad_step = bad_loss = None

        def on_log(self, args, state, control, logs=None, **kwargs):
            loss = (logs or {}).get("loss")
            if loss is not None and not _is_number(loss) and self.bad_step is None:
                self.bad_step, self.bad_loss = state.global_step, loss
                control.should_training_stop = True

    return WatchLoss()


def non_finite_weight(model) -> str | None:
    """The name of the first parameter holding a NaN or inf, if any."""
    import torch

    for name, param in model.named_parameters():
        if not bool(torch.isfinite(param).all()):
            return name
    return None


def refuse_diverged(watch, before: dict, after: dict, model, steps: int, cfg: FinetuneConfig, work: Path) -> None:
    """Raise (one line) if the run diverged, removing OUT.partial; nothing else happens then."""
    if watch.bad_step is not None:
        what = f"the training loss is not a number ({watch.bad_loss}) at step {watch.bad_step}"
    elif _is_number(before["spearman_cosine"]) and not _is_number(after["spearman_cosine"]):
        what = (f"the validation Spearman is not a number ({after['spearman_cosine']}) at step {steps} "
                f"(it was {before['spearman_cosine']:.4f} before training)")
    elif (name := non_finite_weight(model)) is not None:
        what = f"weight {name} is not a number at step {steps}"
    else:
        return
    shutil.rmtree(work, ignore_errors=True)
    raise AnirecError(f"finetune: {what}: the run diverged (lr {cfg.lr:g}, precision {cfg.precision}). "
                      f"No model was saved and {work} was removed. Lower --lr, then run again.")
