"""The embedder's ``onnx`` runtime: a sentence-transformers model run by ONNX Runtime.

The graph is exported once from the loaded model itself (its transformer, its pooling and
normalisation modules, so the vectors are the model's own) and kept in
``<dspy-turbo cache dir>/onnx/``, named by a hash of the model's weights and configuration
and of the library versions that made it: a changed model or library exports again.
The export is written to a temporary file and renamed into place, so processes exporting
at once each write their own file and the last rename wins with a complete one.

It outputs the normalised sentence vectors and the last layer's token vectors (what the
verifier's word vectors are made from). Sessions do not spin waiting for work: on a
machine shared with other processes, spinning threads take the cores the others need.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import warnings
import weakref
from pathlib import Path
from typing import Any

from dspy_turbo.cache_dir import cache_dir
from dspy_turbo.semantic import ComponentUnavailable

_FORMAT = 1  # bump when the exported graph changes (inputs, outputs, what it computes)
OUTPUTS = ("sentence_embedding", "token_embeddings")
_SAMPLE = ["An example question to trace the graph with, long enough to pad the other one?", "A short one."]
_sessions: dict[str, OnnxModel] = {}  # by model_key
_by_model: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # loaded model -> {int8: session}: no re-hash
_sessions_lock = threading.Lock()


class ExportFailed(ComponentUnavailable):
    """The model could not be exported or its file not loaded (an unwritable cache directory,
    an exporter error), as opposed to a package that is missing."""


def import_onnxruntime():
    try:
        import onnxruntime
    except Exception as exc:  # ImportError, or a build that fails to load its libraries
        raise ComponentUnavailable(
            f"runtime 'onnx' needs the package onnxruntime, which failed to import ({type(exc).__name__}: {exc}); "
            "pip install onnxruntime, or set runtime: torch", "onnxruntime") from None
    return onnxruntime


def model_key(model) -> str:
    """A hash of what the files depend on: the model's weights and modules, and the versions
    of the libraries that trace and quantize it."""
    import onnxruntime
    import sentence_transformers
    import torch
    import transformers

    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{_FORMAT}|torch {torch.__version__}|transformers {transformers.__version__}|sentence-transformers "
                  f"{sentence_transformers.__version__}|onnxruntime {onnxruntime.__version__}|{model!r}".encode())
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(memoryview(flat.view(torch.uint8).numpy()))
    return digest.hexdigest()


def _graph(model, names: list[str]):
    """What is traced: the model's modules on positional inputs, normalised as ``encode`` does
    (torch is imported here: the module is importable without it)."""
    import torch

    class Graph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            out = self.model(dict(zip(names, inputs, strict=True)))
            sentence = torch.nn.functional.normalize(out["sentence_embedding"].float(), p=2, dim=1)
            return sentence, out["token_embeddings"].float()

    return Graph()


def _write(path: Path, make) -> None:
    """``make(temporary path)``, then rename the result to ``path`` (atomic: a reader sees
    the old file or the whole new one; a writer that fails leaves nothing behind)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        make(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def export(model, path: Path) -> None:
    """Export ``model`` (its modules, on cpu) to ``path``."""
    import torch

    try:
        import onnx  # noqa: F401 - torch's exporter writes the graph with it
    except Exception as exc:
        raise ComponentUnavailable(
            f"runtime 'onnx' exports the model once with the package onnx, which failed to import "
            f"({type(exc).__name__}: {exc}); pip install onnx, or set runtime: torch", "onnx") from None
    features = (getattr(model, "preprocess", None) or model.tokenize)(_SAMPLE)
    names = [name for name, value in features.items() if isinstance(value, torch.Tensor)]
    axes = {name: {0: "batch", 1: "tokens"} for name in names}
    axes.update({OUTPUTS[0]: {0: "batch"}, OUTPUTS[1]: {0: "batch", 1: "tokens"}})

    def make(tmp: str) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python-side shape checks
            torch.onnx.export(_graph(model, names), tuple(features[name] for name in names), tmp, input_names=names,
                              output_names=list(OUTPUTS), dynamic_axes=axes, dynamo=False)

    _write(path, make)


def quantize(source: Path, path: Path) -> None:
    """int8 dynamic quantization of ``source``'s weights (per output channel) into ``path``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    _write(path, lambda tmp: quantize_dynamic(source, tmp, weight_type=QuantType.QInt8, per_channel=True))


class OnnxModel:
    """An ONNX Runtime session of one exported model; ``run`` is safe from many threads."""

    def __init__(self, path: Path, ort):
        options = ort.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def run(self, features: dict[str, Any], tokens: bool) -> tuple[Any, Any]:
        """``(sentence vectors, token vectors or None)`` for a tokenised batch (torch tensors)."""
        feeds = {name: features[name].numpy() for name in self.inputs}
        out = self.session.run(list(OUTPUTS) if tokens else [OUTPUTS[0]], feeds)
        return out[0], (out[1] if tokens else None)


def _open(path: Path, make, ort) -> OnnxModel:
    """A session of the graph at ``path``, made first when it is missing or does not load."""
    if path.exists():
        try:
            return OnnxModel(path, ort)
        except Exception:
            pass  # not a valid graph (cut short by hand, a foreign file): made again
    make(path)
    return OnnxModel(path, ort)


def load(model, name: str, int8: bool = False) -> OnnxModel:
    """The shared session for ``model`` (loaded from ``name``), exported first when not cached;
    ``int8``: its int8 dynamically quantized form (made from the fp32 export)."""
    ort = import_onnxruntime()
    with _sessions_lock:
        got = _by_model.get(model, {}).get(int8)
        if got is not None:
            return got
        key = model_key(model) + ("-int8" if int8 else "")
        got = _sessions.get(key)
        if got is None:
            path = cache_dir() / "onnx" / f"{key}.onnx"
            try:
                if int8:
                    fp32 = _open(path.with_name(f"{key.removesuffix('-int8')}.onnx"), lambda p: export(model, p), ort)
                    got = _open(path, lambda p: quantize(fp32.path, p), ort)
                else:
                    got = _open(path, lambda p: export(model, p), ort)
            except ComponentUnavailable:
                raise
            except Exception as exc:
                raise ExportFailed(
                    f"cannot run model {name!r} with onnxruntime: making {str(path)!r} failed "
                    f"({type(exc).__name__}: {str(exc)[:200]}); set runtime: torch", "onnxruntime") from None
            _sessions[key] = got
        _by_model.setdefault(model, {})[int8] = got
        return got
