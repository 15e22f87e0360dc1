"""anirec finetune: a tiny model learns an obviously learnable toy label; resume; config; errors."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import expect_user_error, run_cli

ROOT = Path(__file__).resolve().parent.parent

# Two topic vocabularies hidden in a shared filler vocabulary: same-topic pairs are similar
# (label +0.9), cross-topic pairs are not (-0.9). A random encoder cannot tell them apart
# from the filler; a few dozen steps are enough to learn to weight the topic words.
TOPICS = [
    "starship galaxy robot laser orbit alien planet mecha comet nebula asteroid cyborg".split(),
    "bakery recipe noodle kitchen dumpling sushi pastry tea omelette curry festival picnic".split(),
]
FILLER = ("the a story young girl boy friend school day life world town journey secret old new family city "
          "night dream heart summer").split()


def toy_data(folder: Path, per_topic: int = 16, validation_per_topic: int = 4, seed: int = 0) -> tuple[Path, Path]:
    """A catalog parquet and a pairs parquet; validation pairs are between anime never seen in training."""
    rng = np.random.default_rng(seed)
    rows = []
    for topic, vocab in enumerate(TOPICS):
        for i in range(per_topic):
            words = list(rng.choice(vocab, 6)) + list(rng.choice(FILLER, 24))
            rng.shuffle(words)
            rows.append({"MAL_ID": 100 * topic + i + 1, "Name": f"Anime {topic}-{i}", "English name": "Unknown",
                         "Type": "TV", "Genres": "Action", "Premiered": "Spring 2000", "description": " ".join(words),
                         "topic": topic, "held_out": i >= per_topic - validation_per_topic})
    catalog = pd.DataFrame(rows)
    pairs = [
        (a.MAL_ID, b.MAL_ID, 0.9 if a.topic == b.topic else -0.9, "validation" if a.held_out else "train")
        for a, b in itertools.combinations(catalog.itertuples(), 2) if a.held_out == b.held_out
    ]
    pairs = pd.DataFrame(pairs, columns=["anime_a", "anime_b", "label", "split"]).astype(
        {"anime_a": "int64", "anime_b": "int64", "label": "float32"})
    folder.mkdir(parents=True, exist_ok=True)
    catalog.drop(columns=["topic", "held_out"]).to_parquet(folder / "catalog.parquet")
    pairs.to_parquet(folder / "pairs.parquet")
    return folder / "catalog.parquet", folder / "pairs.parquet"


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The tiny model trains several times faster on one thread when the 2 shared cores are busy."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def toy(tmp_path):
    return toy_data(tmp_path / "data")


def test_toy_label_is_learned(tiny_model_path, toy, tmp_path):
    from anirec.training import finetune, load_config
    from sentence_transformers import SentenceTransformer

    catalog, pairs = toy
    cfg = load_config(None, base=str(tiny_model_path), catalog=str(catalog), pairs=str(pairs), out=str(tmp_path / "m"),
                      lr=1e-3, max_steps=24, save_steps=1000, show_progress=False)
    result = finetune(cfg, echo=lambda *a: None)
    sp = result.scores["spearman_cosine"]
    assert sp["after"] > sp["before"] + 0.3, sp
    assert result.scores["steps"] == 24
    assert result.scores["data"]["train_pairs_used"] == 276 and result.scores["data"]["validation_pairs_used"] == 28

    # The output is a normal model that scores the same when loaded back.
    saved = json.loads((tmp_path / "m" / "scores.json").read_text())
    assert saved["spearman_cosine"] == sp and saved["params"]["lr"] == 1e-3
    model = SentenceTransformer(str(tmp_path / "m"))
    from anirec.data import read_catalog
    from anirec.training import attach_texts, make_evaluator, read_pairs

    texts = attach_texts(read_pairs(pairs), read_catalog(catalog), cfg)
    reloaded = make_evaluator(texts.validation, 16)(model)["validation_spearman_cosine"]
    assert reloaded == pytest.approx(sp["after"], abs=1e-4)
    card = (tmp_path / "m" / "README.md").read_text()
    assert "CosineSimilarityLoss" in card and f"after {sp['after']:.4f}" in card
    assert not (tmp_path / "m.partial").exists()


@pytest.mark.parametrize("loss", ["cosent", "angle", "mnrl"])
def test_other_losses_learn(tiny_model_path, toy, tmp_path, loss):
    from anirec.training import finetune, load_config

    catalog, pairs = toy
    cfg = load_config(None, base=str(tiny_model_path), catalog=str(catalog), pairs=str(pairs), out=str(tmp_path / loss),
                      lr=1e-3, max_steps=20, save_steps=1000, loss=loss, show_progress=False)
    s = finetune(cfg, echo=lambda *a: None).scores
    assert s["spearman_cosine"]["after"] > s["spearman_cosine"]["before"] + 0.3, s["spearman_cosine"]
    if loss == "mnrl":  # positives only
        assert s["data"]["train_pairs_used"] == 132


def test_interrupted_run_resumes_from_its_checkpoint(tiny_model_path, toy, tmp_path, capsys):
    from transformers import TrainerCallback

    from anirec.training import finetune, load_config

    catalog, pairs = toy
    out = tmp_path / "m"
    config = tmp_path / "run.toml"
    config.write_text(f'base = "{tiny_model_path}"\ncatalog = "{catalog}"\npairs = "{pairs}"\nout = "{out}"\n'
                      "lr = 1e-3\nmax_steps = 8\nsave_steps = 3\nshow_progress = false\n")

    class Kill(TrainerCallback):  # the run dies after step 5: checkpoint-3 is the last one on disk
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 5:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(load_config(config), callbacks=[Kill()], echo=lambda *a: None)
    assert not out.exists(), "an interrupted run must not look like a finished model"
    assert (tmp_path / "m.partial" / "checkpoints" / "checkpoint-3").is_dir()

    err = expect_user_error(capsys, "finetune", "--config", config)
    assert "--resume" in err

    code, stdout, stderr = run_cli(capsys, "finetune", "--config", config, "--resume")
    assert code == 0, stderr
    assert "resuming from" in stdout and "(step 3)" in stdout
    scores = json.loads((out / "scores.json").read_text())
    assert (scores["steps"], scores["resumed_from_step"], scores["steps_this_run"]) == (8, 3, 5)
    assert not (tmp_path / "m.partial").exists()

    from anirec.models import load_model

    assert load_model(str(out)).encode(["a robot on a starship"]).shape == (1, 32)
    err = expect_user_error(capsys, "finetune", "--config", config)
    assert "already exists" in err and "--overwrite" in err


def test_resume_refuses_changed_settings(tiny_model_path, toy, tmp_path, capsys):
    from transformers import TrainerCallback

    from anirec.training import finetune, load_config

    catalog, pairs = toy
    args = dict(base=str(tiny_model_path), catalog=str(catalog), pairs=str(pairs), out=str(tmp_path / "m"),
                max_steps=4, save_steps=2, show_progress=False)

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(load_config(None, **args), callbacks=[Kill()], echo=lambda *a: None)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in args.items() if k != "show_progress"]
    err = expect_user_error(capsys, "finetune", *flags, "--lr", "1e-3", "--resume", "--no-progress")
    assert "lr: was 2e-05, now 0.001" in err


def test_config_files_and_flag_overrides(tmp_path):
    from anirec.training import load_config

    expected = {
        "distilroberta-384": ("sentence-transformers/paraphrase-distilroberta-base-v1", 384),
        "mpnet-384": ("all-mpnet-base-v2", 384),
        "mpnet-512": ("all-mpnet-base-v2", 512),
        "minilm-256": ("all-MiniLM-L6-v2", 256),
    }
    for name, (base, seq) in expected.items():
        cfg = load_config(ROOT / "finetune" / f"{name}.toml")
        cfg.validate()
        assert (cfg.base, cfg.max_seq_length, cfg.loss, cfg.batch_size, cfg.epochs, cfg.warmup_ratio) == (
            base, seq, "cosine", 16, 1, 0.1)
    cfg = load_config(ROOT / "finetune" / "mpnet-384.toml", loss="cosent", max_seq_length=None, max_steps=7)
    assert (cfg.loss, cfg.max_seq_length, cfg.max_steps) == ("cosent", 384, 7)


def test_config_errors(tmp_path, capsys):
    bad_key = tmp_path / "bad.toml"
    bad_key.write_text('base = "x"\nlearning_rate = 0.1\n')
    err = expect_user_error(capsys, "finetune", "--config", bad_key)
    assert "learning_rate" in err and "lr" in err
    bad_type = tmp_path / "bad2.toml"
    bad_type.write_text('batch_size = "16"\n')
    assert "batch_size" in expect_user_error(capsys, "finetune", "--config", bad_type)
    assert "'out' is not set" in expect_user_error(capsys, "finetune", "--base", "x", "--catalog", "c", "--pairs", "p")
    assert "unknown" in expect_user_error(capsys, "finetune", "--base", "x", "--catalog", "c", "--pairs", "p",
                                          "--out", tmp_path / "o", "--loss", "triplet")


def test_input_errors(tiny_model_path, toy, tmp_path, capsys):
    catalog, pairs = toy
    common = ["finetune", "--base", tiny_model_path, "--catalog", catalog, "--out", tmp_path / "m", "--no-progress"]

    err = expect_user_error(capsys, *common, "--pairs", pairs, "--max-seq-length", "1000")
    assert "512" in err  # the tiny BERT's position limit

    no_split = tmp_path / "no_split.parquet"
    pd.read_parquet(pairs).drop(columns="split").to_parquet(no_split)
    err = expect_user_error(capsys, *common, "--pairs", no_split)
    assert "split" in err and str(no_split) in err

    strangers = tmp_path / "strangers.parquet"
    p = pd.read_parquet(pairs)
    p.loc[p["split"] == "train", "anime_a"] += 10_000  # every training pair names an unknown anime
    p.to_parquet(strangers)
    err = expect_user_error(capsys, *common, "--pairs", strangers)
    assert "no training pairs" in err and "276 pairs with anime missing" in err

    err = expect_user_error(capsys, "finetune", "--base", tmp_path / "no-such-model", "--catalog", catalog,
                            "--pairs", pairs, "--out", tmp_path / "m")
    assert "not found" in err and "no-such-model" in err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("args, says", [
    (["--seed", "-1"], "--seed -1: expected a seed between 0 and 4294967295"),
    (["--seed", str(2**32)], "expected a seed"),
    (["--lr", "inf"], "--lr inf: expected a finite number (not nan or inf)."),
    (["--epochs", "nan"], "--epochs nan: expected a finite number"),
    (["--warmup-ratio", "nan"], "not nan or inf"),
])
def test_bad_numbers_fail_before_any_output(tiny_model_path, toy, tmp_path, capsys, args, says):
    """A seed numpy cannot take crashed after OUT.partial was made, which then blocked the next
    valid run; lr = inf trained an all-NaN model. Both are one line now, before any output."""
    catalog, pairs = toy
    err = expect_user_error(capsys, "finetune", "--base", tiny_model_path, "--catalog", catalog, "--pairs", pairs,
                            "--out", tmp_path / "m", "--max-steps", "1", "--no-progress", *args)
    assert says in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no m, no m.partial
    cfg = tmp_path / "ft.toml"
    cfg.write_text("seed = -1\nlr = 2e-5\n")
    assert f"{cfg} line 1: seed = -1: expected a seed" in expect_user_error(capsys, "finetune", "--config", cfg)


def test_roberta_family_positions(minilm_path, toy, tmp_path, capsys):
    """distilroberta/mpnet reserve 2 of their 514 positions: 384 trains, 513 is refused naming 512.
    (A tiny random RoBERTa with MiniLM's tokenizer: the same code path as paraphrase-distilroberta-base-v1.)"""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, RobertaConfig, RobertaModel

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(minilm_path))
    cfg = RobertaConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=514, pad_token_id=1)
    RobertaModel(cfg).save_pretrained(tmp_path / "hf")
    tok.save_pretrained(tmp_path / "hf")
    word = Transformer(str(tmp_path / "hf"), max_seq_length=128)
    SentenceTransformer(modules=[word, Pooling(word.get_embedding_dimension()), Normalize()]).save(str(tmp_path / "rob"))

    catalog, pairs = toy
    common = ["finetune", "--base", tmp_path / "rob", "--catalog", catalog, "--pairs", pairs, "--no-progress"]
    err = expect_user_error(capsys, *common, "--out", tmp_path / "m513", "--max-seq-length", "513")
    assert "(512 tokens)" in err
    code, out, err = run_cli(capsys, *common, "--out", tmp_path / "m384", "--max-seq-length", "384", "--max-steps", "2")
    assert code == 0, err
    assert json.loads((tmp_path / "m384" / "scores.json").read_text())["max_seq_length"] == 384


# --------------------------------------------------------------------------- contrastive losses (issue 10)


@pytest.mark.parametrize("loss", ["cmnrl", "gist"])
def test_new_in_batch_losses_run_on_triplets(tiny_model_path, toy, tmp_path, loss):
    """Two steps each; the toy pairs hold negatives (label < 0), so the batches are triplets."""
    from anirec.training import finetune, load_config

    catalog, pairs = toy
    cfg = load_config(None, base=str(tiny_model_path), catalog=str(catalog), pairs=str(pairs), out=str(tmp_path / loss),
                      max_steps=2, batch_size=8, mini_batch_size=4, save_steps=1000, loss=loss, show_progress=False)
    s = finetune(cfg, echo=lambda *a: None).scores
    assert s["steps"] == 2 and s["loss_class"] == {"cmnrl": "CachedMultipleNegativesRankingLoss", "gist": "GISTEmbedLoss"}[loss]
    assert s["data"]["columns"] == 3 and s["data"]["train_pairs_used"] == 132  # positives, each with a negative
    assert s["data"]["triplets_hard_negative"] == 132  # every toy anime has a cross-topic negative pair
    assert s["params"]["mini_batch_size"] == 4
    assert (tmp_path / loss / "model.safetensors").exists()


def test_negative_for_each_positive():
    from anirec.training import negative_for_each

    positives = pd.DataFrame({"anime_a": [1, 2, 5], "anime_b": [2, 3, 6]})
    negatives = pd.DataFrame({"anime_a": [1, 3], "anime_b": [9, 4]})
    negative, kind = negative_for_each(positives, negatives, seed=0)
    assert negative[0] == 9 and kind[0] == 2  # anchor 1 has its own negative
    assert negative[1] == 4 and kind[1] == 1  # only the positive (3) has one: read as 3 -> 2, negative 4
    assert kind[2] == 0 and negative[2] not in (5, 6)  # none: a random other anime


def test_no_hard_negatives_flag_trains_on_pairs(tiny_model_path, toy, tmp_path):
    from anirec.training import finetune, load_config

    catalog, pairs = toy
    cfg = load_config(None, base=str(tiny_model_path), catalog=str(catalog), pairs=str(pairs), out=str(tmp_path / "m"),
                      max_steps=1, batch_size=8, save_steps=1000, loss="mnrl", hard_negatives=False, show_progress=False)
    assert finetune(cfg, echo=lambda *a: None).scores["data"]["columns"] == 2


def test_validation_scores_against_the_agreement_label(tiny_model_path, toy, tmp_path):
    """CF pairs all have label 1.0: Spearman is measured against agreement_label where present."""
    from anirec.training import finetune, load_config

    catalog, pairs = toy
    p = pd.read_parquet(pairs)
    p["agreement_label"] = np.where(np.arange(len(p)) % 3 == 0, np.nan, p["label"]).astype(np.float32)
    p["label"] = np.where(p["label"] > 0, 1.0, -1.0).astype(np.float32)
    cf = tmp_path / "cf.parquet"
    p.to_parquet(cf)
    cfg = load_config(None, base=str(tiny_model_path), catalog=str(catalog), pairs=str(cf), out=str(tmp_path / "m"),
                      max_steps=1, batch_size=8, save_steps=1000, loss="mnrl", show_progress=False)
    d = finetune(cfg, echo=lambda *a: None).scores["data"]
    has_agreement = p[(p["split"] == "validation")]["agreement_label"].notna().sum()
    assert d["validation_label"] == "agreement_label" and d["validation_pairs_used"] == has_agreement


def test_cf_config_runs_end_to_end(tiny_model_path, toy, tmp_path, capsys):
    from anirec.training import load_config

    for name in ("minilm-256-cf-mnrl", "minilm-256-cf-cmnrl", "minilm-256-cf-gist", "mpnet-256-cf-mnrl"):
        cfg = load_config(ROOT / "finetune" / f"{name}.toml")
        cfg.validate()
        assert (cfg.batch_size, cfg.epochs, cfg.max_seq_length, cfg.warmup_ratio) == (64, 1, 256, 0.1), name
    catalog, pairs = toy
    out = tmp_path / "cf-mnrl"
    code, stdout, err = run_cli(capsys, "finetune", "--config", ROOT / "finetune" / "minilm-256-cf-mnrl.toml",
                                "--base", tiny_model_path, "--pairs", pairs, "--catalog", catalog, "--out", out,
                                "--max-seq-length", "128", "--max-steps", "2", "--no-progress")
    assert code == 0, err
    s = json.loads((out / "scores.json").read_text())
    assert s["params"]["loss"] == "mnrl" and s["params"]["batch_size"] == 64 and s["steps"] == 2
    assert s["steps_per_second"] > 0


# --------------------------------------------------------------------------- a run that diverged (issue 19, bug 5)


def test_a_diverged_run_is_not_saved(tiny_model_path, toy, tmp_path, capsys):
    """--lr 1e30 sends the weights to NaN (the loss too, from step 3): no model, one line naming
    the step, exit 2, and no OUT.partial left to block the next run."""
    catalog, pairs = toy
    out = tmp_path / "m"
    common = ["finetune", "--base", tiny_model_path, "--catalog", catalog, "--pairs", pairs, "--out", out, "--no-progress"]
    err = expect_user_error(capsys, *common, "--lr", "1e30", "--max-steps", "4", "--save-steps", "2")
    [line] = [line for line in err.splitlines() if line.startswith("anirec: error:")]  # (library bars aside)
    assert "not a number" in line and "step 3" in line and "--lr" in line, line
    assert not out.exists() and not (tmp_path / "m.partial").exists()
    code, _, err = run_cli(capsys, *common, "--max-steps", "1", "--save-steps", "1000")  # a sane rate trains
    assert code == 0, err
    assert json.loads((out / "scores.json").read_text())["steps"] == 1


def test_lr_inf_from_python_saves_no_model(tiny_model_path, toy, tmp_path):
    """The loader refuses lr = inf (test_bad_numbers_fail_before_any_output); a FinetuneConfig made
    in Python does not pass through it, and the run it starts diverges at step 2."""
    from anirec.errors import AnirecError
    from anirec.training import FinetuneConfig, finetune

    catalog, pairs = toy
    cfg = FinetuneConfig(base=str(tiny_model_path), catalog=str(catalog), pairs=str(pairs), out=str(tmp_path / "m"),
                         lr=float("inf"), max_steps=3, save_steps=1000, show_progress=False)
    with pytest.raises(AnirecError, match=r"training loss is not a number \(nan\) at step 2.*lr inf"):
        finetune(cfg, echo=lambda *a: None)
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.partial").exists()


def test_a_nan_loss_stops_the_run_at_once(tiny_model_path, toy, tmp_path):
    """Weights that become NaN mid-run (what an overflow does): the run stops at the next logged
    loss instead of training on, and nothing is saved."""
    from transformers import TrainerCallback

    from anirec.errors import AnirecError
    from anirec.training import finetune, load_config

    class Poison(TrainerCallback):  # step 3 leaves NaN weights behind, as a diverging update does
        steps = 0

        def on_step_end(self, args, state, control, model=None, **kw):
            Poison.steps = state.global_step
            if state.global_step == 3:
                import torch

                with torch.no_grad():
                    for p in model.parameters():
                        p.fill_(float("nan"))

    catalog, pairs = toy
    cfg = load_config(None, base=str(tiny_model_path), catalog=str(catalog), pairs=str(pairs), out=str(tmp_path / "m"),
                      max_steps=40, save_steps=1000, show_progress=False)
    with pytest.raises(AnirecError, match=r"not a number.*step [34]\b"):
        finetune(cfg, callbacks=[Poison()], echo=lambda *a: None)
    assert Poison.steps < 10, "the run trained on after its loss became NaN"
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.partial").exists()
