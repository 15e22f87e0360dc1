"""Fine-tuning a sentence embedder on anime pair labels (METHOD.md section 4).

The reference: CosineSimilarityLoss on (description a, description b, label), batch 16,
1 epoch, 10% warm-up, scored by the Spearman correlation of cosine similarity with the
label on the validation pairs. We run it on sentence-transformers' ``SentenceTransformerTrainer``
(so the same command trains on CPU, one GPU, or many GPUs under torchrun/accelerate), and
add CoSENT and AnglE (rank-based, usually better on graded labels) and three contrastive
losses that train on the positive pairs with in-batch negatives (the objective that matches
recommendation: each anime's CF neighbours should be its nearest texts): MultipleNegativesRanking,
its GradCache version CachedMultipleNegativesRanking (a large effective batch in the memory of
a small one) and GISTEmbed (the frozen base model as a guide that masks in-batch "negatives" it
finds more similar than the positive: popular anime sit in many pairs, so false negatives are
common). All three come from sentence-transformers, use its NO_DUPLICATES batch sampler (one
anime twice in a batch would be its own negative), and train on (anchor, positive, negative)
triplets when the pairs hold negatives (label < 0, e.g. `pairs --label cf --hard-negatives`).

Validation: the Spearman of cosine vs the pairs' ``agreement_label`` column when it has one
(`--label cf` pairs: all positives share label 1.0, which no correlation can use), else vs
``label``.

Output layout, for ``out = DIR``:

* ``DIR.partial/`` while training: ``checkpoints/checkpoint-N`` (model, optimizer, scheduler,
  RNG state: what ``--resume`` continues from) and ``run.json`` (the run's identity and the
  score before training, so a resumed run checks it is the same run and skips re-scoring).
* ``DIR/`` appears only when the run has finished, in one rename: a sentence-transformers
  folder (``SentenceTransformer(DIR)`` / ``anirec.models.load_model(DIR)`` load it), its
  README.md model card, and ``scores.json``. A half-finished run never looks like a model.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from .config import Seed, Tokens, from_table, override, read_toml
from .data import read_catalog
from .errors import AnirecError, warn
from .io import atomic_dir, check_writable_output, hash_file, hash_strings, write_text
from .split import check_pairs_split
from .models import load_model, resolve_model

LOSSES = {
    "cosine": "CosineSimilarityLoss",
    "cosent": "CoSENTLoss",
    "angle": "AnglELoss",
    "mnrl": "MultipleNegativesRankingLoss",
    "cmnrl": "CachedMultipleNegativesRankingLoss",
    "gist": "GISTEmbedLoss",
}
IN_BATCH_NEGATIVE_LOSSES = ("mnrl", "cmnrl", "gist")  # positives only, NO_DUPLICATES batches
AGREEMENT_COLUMN = "agreement_label"  # optional in a pairs file: the reference label (see anirec.cf_pairs)
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
PAIR_COLUMNS = ["anime_a", "anime_b", "label", "split"]
SPLITS = ("train", "validation")
# What must match for --resume to continue a run (the rest, e.g. eval/save cadence, may change).
IDENTITY_KEYS = (
    "base", "max_seq_length", "epochs", "batch_size", "lr", "warmup_ratio", "loss", "seed",
    "max_steps", "max_train_pairs", "max_eval_pairs", "precision", "mini_batch_size", "hard_negatives",
)


@dataclass
class FinetuneConfig:
    """Every parameter of a fine-tuning run; a TOML file (flat keys, these names) or CLI flags set them."""

    base: str | None = None  # model name or path (resolved by anirec.models)
    catalog: str | None = None  # catalog parquet from `anirec build`
    pairs: str | None = None  # pairs parquet from `anirec pairs`
    out: str | None = None  # output folder
    max_seq_length: Tokens = None  # None (or 0): the base model's own setting
    epochs: float = 1
    batch_size: int = 16
    lr: float = 2e-5
    warmup_ratio: float = 0.1
    loss: str = "cosine"
    mini_batch_size: int = 32  # cmnrl: texts per forward pass (memory), not the batch the loss sees
    hard_negatives: bool = True  # in-batch losses: add each anchor's negative pair (label < 0) as a third column
    seed: Seed = 42
    eval_steps: float | None = None  # evaluate every N steps (<1: a share of the run); None: before/after only
    save_steps: float = 0.1  # checkpoint every N steps (<1: a share of the run, 0.1 = ten checkpoints)
    save_total_limit: int = 2  # checkpoints kept on disk while training
    max_steps: int | None = None  # stop after N optimizer steps (a budget; overrides epochs)
    max_train_pairs: int | None = None  # seeded random sample of the training pairs (a budget)
    max_eval_pairs: int | None = None  # seeded random sample of the validation pairs (a budget)
    precision: str = "auto"  # auto: bf16/fp16 mixed precision on CUDA, fp32 on CPU
    resume: bool = False  # continue the unfinished run in OUT.partial from its last checkpoint
    overwrite: bool = False  # replace a finished OUT / discard an unfinished OUT.partial
    keep_checkpoints: bool = False  # move the checkpoints into OUT/checkpoints when done (else deleted)
    show_progress: bool = True

    def validate(self) -> None:
        for name in ("base", "catalog", "pairs", "out"):
            if not getattr(self, name):
                raise AnirecError(f"finetune: '{name}' is not set: pass --{name} or put {name} = \"...\" in the --config file.")
        if self.loss not in LOSSES:
            raise AnirecError(f"finetune: loss '{self.loss}' is unknown: use one of {', '.join(LOSSES)}.")
        if self.precision not in PRECISIONS:
            raise AnirecError(f"finetune: precision '{self.precision}' is unknown: use one of {', '.join(PRECISIONS)}.")
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr, "save_steps": self.save_steps,
                    "save_total_limit": self.save_total_limit, "mini_batch_size": self.mini_batch_size}
        for opt in ("max_steps", "max_train_pairs", "max_eval_pairs", "eval_steps", "max_seq_length"):
            if getattr(self, opt) is not None:
                positive[opt] = getattr(self, opt)
        for name, value in positive.items():
            if not value > 0:
                raise AnirecError(f"finetune: {name} = {value}: must be above 0.")
        for name in ("save_steps", "eval_steps"):
            value = getattr(self, name)
            if value is not None and value >= 1:
                if value != int(value):
                    raise AnirecError(f"finetune: {name} = {value}: a whole number of steps, or a share of the run below 1.")
                setattr(self, name, int(value))
        if not 0 <= self.warmup_ratio < 1:
            raise AnirecError(f"finetune: warmup_ratio = {self.warmup_ratio}: must be in [0, 1) (0.1 = 10% warm-up).")
        if self.resume and self.overwrite:
            raise AnirecError("finetune: --resume and --overwrite contradict each other: pick one.")

    def identity(self) -> dict:
        return {k: getattr(self, k) for k in IDENTITY_KEYS}


def load_config(path: str | Path | None = None, **overrides) -> FinetuneConfig:
    """A config from a TOML file (optional) with ``overrides`` (the CLI flags; None = not given)
    on top, every key and value checked by :mod:`anirec.config` before any work."""
    cfg = FinetuneConfig()
    if path is not None:
        doc = read_toml(path, missing="see finetune/*.toml for examples")
        from_table(FinetuneConfig, doc.table, doc.locator(), base=cfg)
    return override(cfg, overrides)


# --------------------------------------------------------------------------- data


def read_pairs(path: str | Path) -> pd.DataFrame:
    """Read and check a pairs file (parquet from `anirec pairs`; a CSV with the same columns also works)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise AnirecError(f"{path}: pairs file not found. Create it with `anirec pairs --out {path}`.")
    try:
        df = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except Exception as exc:
        raise AnirecError(f"{path}: cannot read the pairs file ({type(exc).__name__}: {str(exc)[:200]}).") from None
    missing = [c for c in PAIR_COLUMNS if c not in df.columns]
    if missing:
        raise AnirecError(
            f"{path}: pairs file lacks column(s) {', '.join(missing)} (has: {', '.join(map(str, df.columns))}). "
            f"Expected {', '.join(PAIR_COLUMNS)}, as written by `anirec pairs`."
        )
    if len(df) == 0:
        raise AnirecError(f"{path}: the pairs file has no rows.")
    check_pairs_split(path)
    for col in ("anime_a", "anime_b"):
        if not pd.api.types.is_integer_dtype(df[col]):
            raise AnirecError(f"{path}: column '{col}' must hold integer MAL_IDs (found {df[col].dtype}).")
    label = pd.to_numeric(df["label"], errors="coerce").astype(np.float32)
    bad = ~np.isfinite(label.to_numpy())
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise AnirecError(f"{path}: row {row}: label {df['label'].iloc[row]!r} is not a number ({int(bad.sum())} such rows).")
    split = df["split"].astype(str)
    unknown = sorted(set(split.unique()) - set(SPLITS))
    if unknown:
        raise AnirecError(f"{path}: column 'split' has value(s) {', '.join(map(repr, unknown[:5]))}: only 'train' and 'validation' are allowed.")
    out = pd.DataFrame({"anime_a": df["anime_a"].astype(np.int64), "anime_b": df["anime_b"].astype(np.int64),
                        "label": label, "split": split})
    if AGREEMENT_COLUMN in df.columns:
        out[AGREEMENT_COLUMN] = pd.to_numeric(df[AGREEMENT_COLUMN], errors="coerce").astype(np.float32)
    return out


@dataclass
class PairTexts:
    """Pairs with their two descriptions, split into train and validation, and what was left out."""

    train: pd.DataFrame  # anime_a, anime_b, text_a, text_b, label (in-batch losses: the positives)
    validation: pd.DataFrame  # text_a, text_b, label (the label Spearman is measured against)
    pairs_total: int
    missing_anime: int  # pairs naming an anime that is not in the catalog (left out)
    train_available: int  # train pairs usable before the budget / the positives filter
    validation_available: int
    validation_label: str = "label"  # which column of the pairs file validation scores against
    negatives: pd.DataFrame | None = None  # in-batch losses: train pairs with label < 0 (anime_a, anime_b)
    descriptions: pd.Series | None = None  # MAL_ID -> description, to look up negatives


def attach_texts(pairs: pd.DataFrame, catalog: pd.DataFrame, cfg: FinetuneConfig) -> PairTexts:
    """Look up both descriptions of every pair; drop pairs whose anime are missing; apply budgets."""
    desc = catalog.drop_duplicates("MAL_ID").set_index("MAL_ID")["description"]
    text_a = pairs["anime_a"].map(desc)
    text_b = pairs["anime_b"].map(desc)
    known = text_a.notna() & text_b.notna()
    df = pairs.assign(text_a=text_a, text_b=text_b)[known]
    train = df[df["split"] == "train"][["anime_a", "anime_b", "text_a", "text_b", "label"]]
    validation = df[df["split"] == "validation"]
    n_train, n_val = len(train), len(validation)
    validation_label = "label"
    if AGREEMENT_COLUMN in validation and validation[AGREEMENT_COLUMN].notna().sum() >= 2:
        # CF pairs: the graded reference label, where the pair has one, is what Spearman can rank
        validation_label = AGREEMENT_COLUMN
        validation = validation[validation[AGREEMENT_COLUMN].notna()]
        validation = validation.assign(label=validation[AGREEMENT_COLUMN])
    validation = validation[["text_a", "text_b", "label"]]
    negatives = None
    if cfg.loss in IN_BATCH_NEGATIVE_LOSSES:  # in-batch negatives: train on the positive pairs
        if cfg.hard_negatives:
            negatives = train.loc[train["label"] < 0, ["anime_a", "anime_b"]].reset_index(drop=True)
        train = train[train["label"] > 0]
    if cfg.max_train_pairs is not None and len(train) > cfg.max_train_pairs:
        train = train.sample(n=cfg.max_train_pairs, random_state=cfg.seed)
    if cfg.max_eval_pairs is not None and len(validation) > cfg.max_eval_pairs:
        validation = validation.sample(n=cfg.max_eval_pairs, random_state=cfg.seed)
    return PairTexts(train.reset_index(drop=True), validation.reset_index(drop=True), len(pairs),
                     int((~known).sum()), n_train, n_val, validation_label,
                     negatives if negatives is not None and len(negatives) else None, desc)


def check_pair_texts(texts: PairTexts, cfg: FinetuneConfig) -> None:
    where = f"{cfg.pairs} with catalog {cfg.catalog}"
    if texts.missing_anime:
        warn(f"{texts.missing_anime:,} of {texts.pairs_total:,} pairs name anime that are not in {cfg.catalog}; "
             "they were left out (build the pairs against the same catalog to use them).")
    if len(texts.train) == 0:
        why = " positive (label > 0)" if cfg.loss in IN_BATCH_NEGATIVE_LOSSES else ""
        raise AnirecError(f"{where}: no{why} training pairs left ({texts.train_available:,} train rows, "
                          f"{texts.missing_anime:,} pairs with anime missing from the catalog). "
                          "Check that the pairs were made from this catalog and have split == 'train'.")
    if len(texts.validation) < 2:
        raise AnirecError(f"{where}: {len(texts.validation)} validation pair(s) with both anime in the catalog"
                          f"{' and an ' + AGREEMENT_COLUMN if texts.validation_label == AGREEMENT_COLUMN else ''}; "
                          "at least 2 are needed to score. Make the pairs with a validation split.")


def negative_for_each(positives: pd.DataFrame, negatives: pd.DataFrame, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A negative anime for every positive pair (anchor a, positive b): one of a's negative pairs
    (either side of the pair), else one of b's (the pair is then read as b -> a), else a random
    anime of the positives that is neither a nor b (an extra random negative, which is what
    in-batch negatives are anyway). Returns (negative MAL_ID, kind: 2 hard for a, 1 hard for b, 0 random)."""
    rng = np.random.default_rng(seed)
    by_anime = pd.concat([
        negatives.rename(columns={"anime_a": "anime", "anime_b": "negative"}),
        negatives.rename(columns={"anime_b": "anime", "anime_a": "negative"}),
    ]).groupby("anime")["negative"].apply(np.asarray).to_dict()

    def draw(anime):
        options = by_anime.get(anime)
        return -1 if options is None else int(options[rng.integers(len(options))])

    a, b = positives["anime_a"].to_numpy(), positives["anime_b"].to_numpy()
    neg_a = np.array([draw(x) for x in a], np.int64)
    neg_b = np.array([draw(x) for x in b], np.int64)
    kind = np.where(neg_a >= 0, 2, np.where(neg_b >= 0, 1, 0))
    negative = np.where(kind == 2, neg_a, neg_b)
    pool = np.unique(np.r_[a, b])
    for row in np.flatnonzero(kind == 0):
        pick = pool[rng.integers(len(pool))]
        while len(pool) > 2 and pick in (a[row], b[row]):
            pick = pool[rng.integers(len(pool))]
        negative[row] = pick
    return negative, kind


def make_datasets(texts: PairTexts, loss: str, seed: int = 42):
    """The training ``datasets.Dataset`` and what it holds: (sentence_a, sentence_b, label); for
    the in-batch losses (anchor, positive), or (anchor, positive, negative) when there are negatives."""
    from datasets import Dataset

    t = texts.train
    if loss not in IN_BATCH_NEGATIVE_LOSSES:
        return Dataset.from_dict({"sentence_a": t["text_a"].tolist(), "sentence_b": t["text_b"].tolist(),
                                  "label": t["label"].astype(np.float32).tolist()}), {"columns": 3}
    if texts.negatives is None:
        return Dataset.from_dict({"anchor": t["text_a"].tolist(), "positive": t["text_b"].tolist()}), {"columns": 2}
    negative, kind = negative_for_each(t, texts.negatives, seed)
    swap = kind == 1  # only b has a hard negative: b is the anchor
    anchor = np.where(swap, t["text_b"], t["text_a"])
    positive = np.where(swap, t["text_a"], t["text_b"])
    dataset = Dataset.from_dict({"anchor": anchor.tolist(), "positive": positive.tolist(),
                                 "negative": texts.descriptions.loc[negative].tolist()})
    return dataset, {"columns": 3, "triplets_hard_negative": int((kind > 0).sum()),
                     "triplets_random_negative": int((kind == 0).sum()),
                     "hard_negative_pairs": int(len(texts.negatives))}


def make_loss(cfg: "FinetuneConfig", model):
    """The sentence-transformers loss object (none is written here: the library's are tested and
    know about DDP gathering, caching and the guide's tokenizer)."""
    from sentence_transformers.sentence_transformer import losses

    cls = getattr(losses, LOSSES[cfg.loss])
    if cfg.loss == "cmnrl":
        return cls(model, mini_batch_size=cfg.mini_batch_size)
    if cfg.loss == "gist":
        # The guide is the untuned base model, frozen: it judges which in-batch negatives are
        # really positives, and must not drift with the model it guides.
        guide = load_model(cfg.base, max_seq_length=int(model.max_seq_length), device=str(model.device))
        guide.eval()
        guide.requires_grad_(False)
        return cls(model, guide=guide)
    return cls(model)


def make_evaluator(validation: pd.DataFrame, batch_size: int, show_progress: bool = False):
    """An EmbeddingSimilarityEvaluator (Spearman of cosine vs label) that encodes each distinct
    description once: validation pairs share their anime heavily (on the shared MAL data, 5,484
    validation pairs name only 455 anime, so 455 encodes instead of 10,968)."""
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    class PairSimilarityEvaluator(EmbeddingSimilarityEvaluator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            codes, self._unique = pd.factorize(pd.Series([*self.sentences1, *self.sentences2]))
            self._codes = (codes[: len(self.sentences1)], codes[len(self.sentences1):])
            self._vectors = None

        def __call__(self, model, output_path=None, epoch=-1, steps=-1):
            self._vectors = super().embed_inputs(model, list(self._unique))
            try:
                return super().__call__(model, output_path, epoch, steps)
            finally:
                self._vectors = None

        def embed_inputs(self, model, sentences, **kwargs):
            if self._vectors is not None and sentences is self.sentences1:
                return self._vectors[self._codes[0]]
            if self._vectors is not None and sentences is self.sentences2:
                return self._vectors[self._codes[1]]
            return super().embed_inputs(model, sentences, **kwargs)

    return PairSimilarityEvaluator(
        validation["text_a"].tolist(), validation["text_b"].tolist(), validation["label"].astype(float).tolist(),
        batch_size=batch_size, main_similarity="cosine", similarity_fn_names=["cosine"], name="validation",
        show_progress_bar=show_progress,
    )


def _scores(metrics: dict) -> dict:
    return {"spearman_cosine": float(metrics["validation_spearman_cosine"]),
            "pearson_cosine": float(metrics["validation_pearson_cosine"])}


# --------------------------------------------------------------------------- the run


@dataclass
class FinetuneResult:
    out: Path
    scores: dict  # what scores.json holds (rank 0); after == None on other ranks


def partial_dir(out: str | Path) -> Path:
    out = Path(out).expanduser()
    return out.with_name(out.name + ".partial")


def _checkpoint_step(checkpoint: Path) -> int | None:
    """The step a checkpoint holds, or None when it is incomplete: the Trainer writes
    trainer_state.json after the model, optimizer, scheduler and RNG states, so a checkpoint
    without a readable one was cut short (killed while saving)."""
    try:
        step = json.loads((checkpoint / "trainer_state.json").read_text()).get("global_step")
    except (OSError, ValueError, AttributeError):
        return None
    return step if isinstance(step, int) else None


def _last_checkpoint(folder: Path, drop_incomplete: bool = False) -> Path | None:
    """The newest complete ``checkpoint-N`` in ``folder``; with ``drop_incomplete`` newer,
    incomplete ones are removed (with a warning) so the Trainer never saves into or rotates them."""
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := re.fullmatch(r"checkpoint-(\d+)", p.name))]
    for _, checkpoint in sorted(found, reverse=True):
        if _checkpoint_step(checkpoint) is not None:
            return checkpoint
        if drop_incomplete:
            warn(f"--resume: {checkpoint} is incomplete (no readable trainer_state.json: the run was stopped while "
                 "saving it); removed it and looked for an earlier one.")
            shutil.rmtree(checkpoint, ignore_errors=True)
    return None


def _prepare_output(cfg: FinetuneConfig, is_main: bool) -> Path | None:
    """Check OUT / OUT.partial against --resume/--overwrite; return the checkpoint to resume from."""
    out, work = Path(cfg.out).expanduser(), partial_dir(cfg.out)
    if cfg.overwrite:
        if is_main:
            shutil.rmtree(work, ignore_errors=True)
        return None
    if out.exists() and not work.exists():
        what = "a finished run" if (out / "scores.json").exists() else "something that is not a finished run"
        raise AnirecError(f"{out} already exists ({what}). Pass --overwrite to train again, or choose another --out.")
    if not work.exists():
        if cfg.resume:
            warn(f"--resume: no unfinished run at {work}; starting from step 0.")
        return None
    if not cfg.resume:
        raise AnirecError(f"{work} holds an unfinished run: pass --resume to continue it, or --overwrite to start over.")
    last = _last_checkpoint(work / "checkpoints", drop_incomplete=is_main)
    if last is None:
        warn(f"--resume: {work} has no complete checkpoint yet (stopped before the first save); starting from step 0.")
    return last


def _read_run(work: Path) -> dict:
    try:
        return json.loads((work / "run.json").read_text())
    except (OSError, ValueError):
        return {}


def _check_same_run(saved: dict, current: dict, work: Path) -> None:
    # A key the run was started without (added to anirec since) had its default then.
    defaults = asdict(FinetuneConfig())
    saved = {**{k: defaults[k] for k in current if k not in saved and k in defaults}, **saved}
    diffs = [f"{k}: was {saved.get(k)!r}, now {v!r}" for k, v in current.items() if saved.get(k) != v]
    if diffs:
        raise AnirecError(f"--resume: {work} was started with other settings or data ({'; '.join(diffs)}). "
                          "Use the same settings, or --overwrite to start over.")


def _precision_args(precision: str) -> dict:
    import torch

    cuda = torch.cuda.is_available()
    if precision in ("fp16", "bf16") and not cuda:
        raise AnirecError(f"--precision {precision} needs a CUDA GPU; on CPU use fp32 (or auto).")
    if precision == "auto":
        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "fp32"
    return {"fp16": precision == "fp16", "bf16": precision == "bf16"}


def _device_name() -> str:
    import torch

    world = int(os.environ.get("WORLD_SIZE", 1))
    name = f"cuda ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    return f"{name} x {world} processes" if world > 1 else name


def finetune(cfg: FinetuneConfig, callbacks: list | None = None, echo=print) -> FinetuneResult:
    """Fine-tune ``cfg.base`` on the pair labels; write ``cfg.out`` (see the module docstring)."""
    t_start = time.perf_counter()
    cfg.validate()
    rank, local_rank = int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", -1))
    is_main = rank == 0
    if not is_main:  # under torchrun every rank runs this; only rank 0 talks
        echo = lambda *a, **k: None  # noqa: E731
    precision = _precision_args(cfg.precision)
    out, work = Path(cfg.out).expanduser(), partial_dir(cfg.out)
    check_writable_output(out, "dir", "--out")  # OUT and OUT.partial are made beside each other
    resume_from = _prepare_output(cfg, is_main)

    # Data first: a bad file fails in a second, before any model is loaded.
    pairs = read_pairs(cfg.pairs)
    catalog = read_catalog(cfg.catalog)
    texts = attach_texts(pairs, catalog, cfg)
    check_pair_texts(texts, cfg)
    data = {
        "pairs_file": str(cfg.pairs), "pairs_sha256": hash_file(Path(cfg.pairs).expanduser()),
        "catalog_file": str(cfg.catalog), "catalog_description_hash": hash_strings(catalog["description"]),
        "pairs_total": texts.pairs_total, "pairs_missing_anime": texts.missing_anime,
        "train_pairs_available": texts.train_available, "train_pairs_used": len(texts.train),
        "validation_pairs_available": texts.validation_available, "validation_pairs_used": len(texts.validation),
        "validation_label": texts.validation_label,
    }
    identity = {**cfg.identity(), "pairs_sha256": data["pairs_sha256"],
                "catalog_description_hash": data["catalog_description_hash"]}
    saved_run = _read_run(work) if cfg.resume else {}
    if resume_from is not None:
        _check_same_run(saved_run.get("identity", {}), identity, work)

    import torch

    device = f"cuda:{local_rank}" if local_rank >= 0 and torch.cuda.is_available() else None
    model = load_model(cfg.base, max_seq_length=cfg.max_seq_length, device=device)
    model.model_card_data.local_files_only = True  # offline: never ask the hub about the base model
    max_seq_length = int(model.max_seq_length)

    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    train_dataset, dataset_info = make_datasets(texts, cfg.loss, cfg.seed)
    data.update(dataset_info)
    evaluator = make_evaluator(texts.validation, cfg.batch_size, show_progress=cfg.show_progress)
    triplets = (f" ({dataset_info['triplets_hard_negative']:,} with a hard negative, "
                f"{dataset_info['triplets_random_negative']:,} with a random one)" if "triplets_hard_negative" in dataset_info else "")
    echo(f"finetune: {cfg.base} (max_seq_length {max_seq_length}, loss {cfg.loss}) on {len(texts.train):,} train"
         f"{triplets} / {len(texts.validation):,} validation pairs (Spearman vs {texts.validation_label}); device {_device_name()}")

    # Score before training (kept in run.json, so a resumed run does not pay for it again).
    if saved_run.get("identity") == identity and "before" in saved_run:
        before, before_seconds = saved_run["before"], saved_run.get("before_seconds", 0.0)
    else:
        t0 = time.perf_counter()
        before = _scores(evaluator(model))
        before_seconds = time.perf_counter() - t0
    echo(f"Spearman cosine before training: {before['spearman_cosine']:.4f}")
    if is_main:
        work.mkdir(parents=True, exist_ok=True)
        write_text(json.dumps({"identity": identity, "before": before, "before_seconds": before_seconds,
                               "config": asdict(cfg)}, indent=2), work / "run.json")

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
        report_to="none",
        dataloader_pin_memory=torch.cuda.is_available(),
        use_cpu=not torch.cuda.is_available(),  # also makes torchrun on CPU real DDP (gloo), not N copies
        disable_tqdm=not cfg.show_progress,
        batch_sampler=BatchSamplers.NO_DUPLICATES if cfg.loss in IN_BATCH_NEGATIVE_LOSSES else BatchSamplers.BATCH_SAMPLER,
        **precision,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train_dataset, loss=make_loss(cfg, model),
        evaluator=evaluator if cfg.eval_steps else None, callbacks=callbacks,
    )
    start_step = 0
    if resume_from is not None:
        start_step = _checkpoint_step(resume_from)
        echo(f"resuming from {resume_from} (step {start_step})")

    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except KeyboardInterrupt:
        last = _last_checkpoint(work / "checkpoints")
        echo(f"finetune interrupted; {'last checkpoint ' + str(last) if last else 'no checkpoint yet'}. "
             "Run the same command with --resume to continue.")
        raise
    train_seconds = time.perf_counter() - t0
    # CPU seconds of this process (all threads): on a shared machine the wall clock measures the
    # neighbours too; CPU time per step is what the run itself cost.
    train_cpu_seconds = time.process_time() - cpu0
    steps = int(trainer.state.global_step)
    if not trainer.is_world_process_zero():
        return FinetuneResult(out, {"before": before, "after": None, "steps": steps})

    t0 = time.perf_counter()
    after = _scores(evaluator(model))
    after_seconds = time.perf_counter() - t0
    steps_this_run = steps - start_step
    history = [
        {k: v for k, v in entry.items() if k in ("step", "epoch", "loss", "learning_rate", "eval_validation_spearman_cosine")}
        for entry in trainer.state.log_history if "loss" in entry or "eval_validation_spearman_cosine" in entry
    ]
    import sentence_transformers
    import transformers

    scores = {
        "model": str(out), "base": cfg.base, "base_resolved": resolve_model(cfg.base), "loss_class": LOSSES[cfg.loss],
        "max_seq_length": max_seq_length,
        "spearman_cosine": {"before": before["spearman_cosine"], "after": after["spearman_cosine"]},
        "pearson_cosine": {"before": before["pearson_cosine"], "after": after["pearson_cosine"]},
        "steps": steps, "steps_this_run": steps_this_run, "resumed_from_step": start_step if resume_from else None,
        "epochs_done": float(trainer.state.epoch or 0.0),
        "train_seconds": round(train_seconds, 2),
        "train_cpu_seconds": round(train_cpu_seconds, 2),
        "cpu_seconds_per_step": round(train_cpu_seconds / steps_this_run, 3) if steps_this_run else None,
        "steps_per_second": round(steps_this_run / train_seconds, 4) if train_seconds > 0 else None,
        "seconds_per_step": round(train_seconds / steps_this_run, 3) if steps_this_run else None,
        "eval_seconds": {"before": round(before_seconds, 2), "after": round(after_seconds, 2)},
        "device": _device_name(), "world_size": int(os.environ.get("WORLD_SIZE", 1)),
        "mixed_precision": "bf16" if precision["bf16"] else "fp16" if precision["fp16"] else "fp32",
        "params": asdict(cfg), "data": data, "history": history,
        "versions": {"sentence_transformers": sentence_transformers.__version__,
                     "transformers": transformers.__version__, "torch": torch.__version__},
    }
    with atomic_dir(out) as tmp:
        model.save(str(tmp))
        scores["wall_seconds"] = round(time.perf_counter() - t_start, 2)
        scores["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        _write_model_card(tmp, scores)
        (tmp / "scores.json").write_text(json.dumps(scores, indent=2) + "\n")
        if cfg.keep_checkpoints and (work / "checkpoints").is_dir():
            os.replace(work / "checkpoints", tmp / "checkpoints")  # last: nothing can fail after it
    shutil.rmtree(work, ignore_errors=True)
    echo(format_summary(scores))
    return FinetuneResult(out, scores)


def _write_model_card(folder: Path, s: dict) -> None:
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
