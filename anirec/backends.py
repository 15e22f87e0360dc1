"""Run a sentence-transformers model's transformer on ONNX Runtime or OpenVINO.

Why not ``SentenceTransformer(..., backend="onnx")``: sentence-transformers loads those
backends through optimum-onnx / optimum-intel, and the releases on the package index pin
transformers below 4.58 (optimum-onnx 0.1) or 5.6 (optimum-intel 2.2, which also pulls a CUDA
torch), while sentence-transformers 6 needs transformers 5. So the same steps optimum takes
are done here with the underlying libraries directly:

1. export: ``torch.onnx.export`` of the Hugging Face transformer (input ids, attention mask,
   token types -> last hidden state), dynamic batch and sequence axes, with eager attention
   (plain MatMul/Softmax, which ONNX Runtime's fusions recognise; SDPA exports do not fuse);
2. ``onnx-int8``: ``onnxruntime.transformers.optimizer`` fuses attention, layer norms and GELU
   (what optimum's ORTOptimizer runs), then ``onnxruntime.quantization.quantize_dynamic``
   quantizes the weights to int8 per channel, activations at run time (what
   sentence-transformers' ``export_dynamic_quantized_onnx_model`` asks optimum for);
3. ``openvino``: OpenVINO compiles the exported ONNX file itself.

Everything around the transformer (tokenizer, batching, pooling, normalisation, the progress
bar) stays sentence-transformers' own: only ``model[0].model`` is swapped for a module that
calls the runtime. Exports live in ``<embedding cache>/backends/<name>-<fingerprint>/``
(``anirec.cache.export_dir``) and are written atomically, so a second run (or another command)
reuses them.

This module also holds what every backend shares: the backend names and the check that the
optional packages are installed, and the number of CPU threads the runtimes (torch included) use.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np

from .cache import export_dir
from .errors import AnirecError
from .io import atomic_path

BACKENDS = ("torch", "onnx", "onnx-int8", "openvino")
BACKEND_HELP = ("Inference backend: torch (default), onnx, onnx-int8 (about 2x faster on a CPU) or openvino "
                "(about 4x; bf16 where the CPU has it); the exported model is cached and reused. "
                "onnx*/openvino need pip install 'anirec\\[onnx]' / 'anirec\\[openvino]'.")
# backend -> (module it needs, the anirec extra that installs it)
_BACKEND_NEEDS = {"onnx": ("onnxruntime", "onnx"), "onnx-int8": ("onnxruntime", "onnx"), "openvino": ("openvino", "openvino")}
FILES = {"onnx": "model.onnx", "onnx-int8": "model-int8.onnx", "openvino": "model.onnx"}
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


# --------------------------------------------------------------------------- names, extras, threads


def check_backend(backend: str, where: str = "--backend") -> str:
    """The one validation of a backend name; returns it (lower case)."""
    value = str(backend).strip().lower()
    if value not in BACKENDS:
        raise AnirecError(f"{where} {backend!r}: unknown backend; choose one of {', '.join(BACKENDS)}.")
    return value


def require_backend(backend: str, where: str = "--backend") -> str:
    """Check the name and that its optional packages are installed (before any slow work)."""
    import importlib

    backend = check_backend(backend, where)
    if backend in _BACKEND_NEEDS:
        module, extra = _BACKEND_NEEDS[backend]
        try:
            importlib.import_module(module)
        except ImportError:
            raise AnirecError(f"{where} {backend} needs {module}, which is not installed: "
                              f"pip install 'anirec[{extra}]'") from None
    return backend


def cpu_threads() -> int:
    """Threads for encoding: $ANIREC_THREADS, else the CPUs this process may run on."""
    value = os.environ.get("ANIREC_THREADS", "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise AnirecError(f"ANIREC_THREADS={value!r}: must be a positive whole number of threads.")
        return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def set_threads() -> int:
    """Use every allowed core for torch (the default can be 1 in containers and under some
    launchers); called before any encoding. The ONNX/OpenVINO sessions read the same number."""
    import torch

    n = cpu_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


# --------------------------------------------------------------------------- export


def _transformer(model, name: str, backend: str):
    first = model[0]
    config = getattr(first, "modality_config", {}).get("text", {"method": "forward", "method_output_name": "last_hidden_state"})
    if not hasattr(first, "auto_model") or config.get("method") != "forward" or config.get("method_output_name") != "last_hidden_state":
        raise AnirecError(f"--backend {backend}: model '{name}' has no transformer encoder to export "
                          "(a static model is already fast). Use --backend torch.")
    return first


def _input_names(module) -> list[str]:
    import inspect

    params = inspect.signature(module.auto_model.forward).parameters
    probe = module.tokenizer(["a", "b c"], padding=True)
    return [k for k in _INPUTS if k in probe and k in params]


def export_onnx(module, dest: Path) -> None:
    """torch.onnx.export of ``module.auto_model`` (last hidden state) to ``dest``, atomically."""
    import torch

    names = _input_names(module)
    hf = module.auto_model

    class LastHidden(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.hf = hf

        def forward(self, *args):
            return self.hf(**dict(zip(names, args)), return_dict=True).last_hidden_state

    # Two texts of different length: the traced graph then keeps the padding-mask path.
    sample = module.tokenizer(["anime recommendation", "a longer description of an anime series"],
                              padding=True, return_tensors="pt")
    axes = {k: {0: "batch", 1: "tokens"} for k in names}
    attn = getattr(hf.config, "_attn_implementation", None)
    if attn not in (None, "eager") and hasattr(hf, "set_attn_implementation"):
        hf.set_attn_implementation("eager")
    try:
        with atomic_path(dest) as tmp, warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about python control flow: shapes are dynamic anyway
            torch.onnx.export(LastHidden().eval(), tuple(sample[k] for k in names), str(tmp), input_names=names,
                              output_names=["last_hidden_state"], dynamic_axes={**axes, "last_hidden_state": {0: "batch", 1: "tokens"}},
                              opset_version=17, dynamo=False)
    finally:
        if attn not in (None, "eager") and hasattr(hf, "set_attn_implementation"):
            hf.set_attn_implementation(attn)


def quantize_int8(source: Path, dest: Path, config=None) -> None:
    """Fuse the transformer's operators (when ONNX Runtime knows the architecture), then
    quantize dynamically to int8; written atomically."""
    import logging
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    heads, hidden = getattr(config, "num_attention_heads", 0), getattr(config, "hidden_size", 0)
    logging.disable(logging.WARNING)  # the fusion and "consider pre-processing" chatter
    try:
        with atomic_path(dest) as tmp, tempfile.TemporaryDirectory(dir=dest.parent) as work:
            source_for_int8 = source
            if heads and hidden:
                from onnxruntime.transformers.optimizer import optimize_model

                fused = Path(work) / "fused.onnx"
                try:
                    optimize_model(str(source), model_type="bert", num_heads=heads, hidden_size=hidden,
                                   opt_level=1).save_model_to_file(str(fused))
                    source_for_int8 = fused
                except Exception:  # an architecture the fusions do not cover: quantize the plain graph
                    source_for_int8 = source
            quantize_dynamic(str(source_for_int8), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        logging.disable(logging.NOTSET)


def _quantize_cached(fp32: Path, target: Path, config, folder: Path) -> None:
    """quantize_int8 of the cached fp32 export; a damaged one (a killed copy, a full disk) is one
    line, as plain --backend onnx says it, not onnx's own ValidationError."""
    try:
        quantize_int8(fp32, target, config)
    except OSError:
        raise
    except Exception as exc:  # onnx / onnxruntime raise their own types for an unreadable graph
        raise AnirecError(f"--backend onnx-int8: could not quantize the cached export {fp32} ({type(exc).__name__}); "
                          f"delete {folder} to export again.") from None


def exported_file(model, resolved: str, backend: str, cache_dir=None, name: str = "", echo=None) -> Path:
    """The cached ONNX file for ``backend``, exporting (and quantizing) it on first use."""
    _transformer(model, name or resolved, backend)
    folder = export_dir(resolved, cache_dir)
    target = folder / FILES[backend]
    if target.exists():
        return target
    say = echo or (lambda msg: None)
    start = time.perf_counter()
    fp32 = folder / FILES["onnx"]
    try:
        if not fp32.exists():
            say(f"exporting {name or resolved} to ONNX -> {fp32}")
            export_onnx(model[0], fp32)
        if backend == "onnx-int8":
            say(f"quantizing to int8 -> {target}")
            _quantize_cached(fp32, target, getattr(model[0].auto_model, "config", None), folder)
    except OSError as exc:
        raise AnirecError(f"--backend {backend}: could not write the exported model in {folder} ({exc}); "
                          "set --cache-dir or ANIREC_CACHE to a writable folder.") from None
    say(f"exported in {time.perf_counter() - start:.1f} s (reused next time)")
    return target


class RuntimeTransformer:
    """Stands in for the Hugging Face model inside sentence-transformers' Transformer module:
    same inputs, returns ``{"last_hidden_state": tensor}``."""

    def __init__(self, run, names: list[str], config):
        self._run, self._names, self.config = run, names, config

    def __call__(self, **features):
        import torch

        feeds = {k: features[k].detach().cpu().numpy().astype(np.int64) for k in self._names if k in features}
        return {"last_hidden_state": torch.from_numpy(np.asarray(self._run(feeds)))}

    forward = __call__  # sentence-transformers looks the method up by name


def _onnx_runner(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = cpu_threads()
    opts.log_severity_level = 3
    # No busy-waiting between operators: on a CPU shared with other work (a laptop, a busy
    # server) spinning threads steal the cores the next operator needs (fp32: 0.6x -> 1.1x torch
    # on the shared 2-core machine).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return lambda feeds: session.run(None, feeds)[0]


def _openvino_runner(path: Path):
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": cpu_threads(), "PERFORMANCE_HINT": "LATENCY"})
    output = compiled.output(0)
    return lambda feeds: compiled(feeds)[output]


def use_backend(model, resolved: str, backend: str, cache_dir=None, name: str = "", echo=None):
    """Swap the transformer of a loaded SentenceTransformer for its ONNX/OpenVINO version."""
    import sys

    module = _transformer(model, name or resolved, backend)
    names = _input_names(module)
    echo = echo or (lambda msg: print(msg, file=sys.stderr))
    path = exported_file(model, resolved, backend, cache_dir, name, echo)
    try:
        run = _openvino_runner(path) if backend == "openvino" else _onnx_runner(path)
    except Exception as exc:  # a corrupt or foreign file in the export cache
        raise AnirecError(f"--backend {backend}: could not load {path} ({type(exc).__name__}); "
                          f"delete {path.parent} to export again.") from None
    config = module.auto_model.config
    # Not a torch module: set as a plain attribute, which also drops the torch weights from the model.
    module._modules.pop("model", None)
    object.__setattr__(module, "model", RuntimeTransformer(run, names, config))
    model.anirec_backend = backend
    return model
