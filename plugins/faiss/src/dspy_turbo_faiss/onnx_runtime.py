"""The embedder's ``onnx`` runtime: a sentence-transformers model run by ONNX Runtime.

The graph is exported once from the loaded model itself (its transformer, its pooling and
normalisation modules, so the vectors are the model's own) and kept in
``<dspy-turbo cache dir>/onnx/``, named by a hash of the model and of the versions of the
libraries that make it (:mod:`dspy_turbo_faiss.export_key`), so a changed model or library
exports again.
The export is written to a temporary file and renamed into place, so processes exporting
at once each write their own file and the last rename wins with a complete one.

A model in a local directory is keyed by its files, read without importing anything, and
its export records how the model tokenises when its ``tokenizer.json`` (read by the
tokenizers library, :mod:`dspy_turbo_faiss.fast_tokenizer`) was checked to give the model's
own tokens. Once such an export exists, :func:`load_exported` runs the model without torch,
transformers or sentence-transformers (a fraction of their memory and start-up time). Other
models (a name in the local Hugging Face cache) are keyed by their loaded weights and
tokenised by the loaded model.

It outputs the normalised sentence vectors and the last layer's token vectors (what the
verifier's word vectors are made from). Sessions do not spin waiting for work: on a
machine shared with other processes, spinning threads take the cores the others need.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
import warnings
import weakref
from pathlib import Path
from typing import Any

from dspy_turbo.plugin.components import ComponentUnavailable
from dspy_turbo.plugin.units import cache_dir

from .export_key import model_key, module_folders, weights_key
from .fast_tokenizer import FastTokenizer

logger = logging.getLogger("dspy_turbo")
OUTPUTS = ("sentence_embedding", "token_embeddings")
_SAMPLE = ["An example question to trace the graph with, long enough to pad the other one?", "A short one."]
# Texts the tokenizers library must tokenise exactly as the model's own tokenizer before an
# export says it may: case, accents, other scripts, emoji, white space, empty, past the model's length.
_PROBES = [*_SAMPLE, "MiXeD CaSe: ÀÉÎÕÜ, straße, İstanbul", "Qu'est-ce que « ça » ? 東京の天気は？ naïve café 🎉",
           "   spaces,\ttabs\nand new lines  ", "", "?!", "word and 1,234.5 numbers " * 120]
_INPUTS = {"input_ids", "token_type_ids", "attention_mask"}  # what FastTokenizer makes
_RECORD = "dspy_turbo"  # the export's metadata entry: {"dimension": n, "tokenizer": FastTokenizer settings or null}
# How the int8 form is made (recorded in it; a form made otherwise, by an older release, is made again)
INT8_RECIPE = "dynamic, weights int8 per channel, 7-bit range"
_sessions: dict[str, OnnxModel] = {}  # by file name (model_key, "-int8")
_by_model: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # loaded model -> {int8: session}: no re-hash
_by_directory: dict[tuple[str, bool], OnnxModel] = {}  # torch-free sessions: no re-hash
_sessions_lock = threading.Lock()
_announced: set[str] = set()  # models whose first export this process has said it makes


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


def dimension(model) -> int:
    """The length of a loaded sentence-transformers model's sentence vectors (the method's name
    changed between sentence-transformers releases)."""
    method = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(method())


def _tokenizer_settings(model, directory: Path | None, inputs: list[str]) -> dict | None:
    """How :class:`FastTokenizer` tokenises for ``model`` (the settings it is made with), when it
    gives the model's own tokens, word ids and offsets on the probe texts; else None (no local
    directory, no ``tokenizer.json``, inputs it does not make, another tokenisation)."""
    module = model[0] if len(model) else None
    hf = getattr(model, "tokenizer", None)
    if directory is None or type(module).__name__ != "Transformer" or hf is None or not model.max_seq_length \
            or not set(inputs) <= _INPUTS:
        return None
    file = module_folders(directory)[0] / "tokenizer.json"
    if not file.is_file():
        return None
    settings = {"file": file.relative_to(directory).as_posix(), "max_length": int(model.max_seq_length),
                "lowercase": bool(getattr(module, "do_lower_case", False)), "pad_id": int(hf.pad_token_id or 0)}
    try:
        fast = FastTokenizer(file, settings["max_length"], settings["lowercase"], settings["pad_id"])
        expected, got = (getattr(model, "preprocess", None) or model.tokenize)(_PROBES), fast.batch(_PROBES)
        if not all(expected[name].numpy().tolist() == got[name].tolist() for name in inputs):
            return None
        for text in _PROBES:
            own = hf(text, truncation=True, max_length=settings["max_length"], return_offsets_mapping=True,
                     verbose=False)
            mine = fast.encode(text)
            if (own.word_ids() != mine.word_ids or [tuple(o) for o in own["offset_mapping"]] != mine.offsets
                    or len(hf(text, truncation=False, verbose=False)["input_ids"]) != fast.count(text)):
                return None
    except Exception as exc:  # a tokenizer.json the tokenizers library cannot read, a slow tokenizer
        logger.debug("onnx runtime: %s is not run without torch (%s: %s)", file, type(exc).__name__, exc)
        return None
    return settings


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


def export(model, path: Path, directory: Path | None = None) -> None:
    """Export ``model`` (its modules, on cpu) to ``path``, recording its dimension and, when the
    model comes from ``directory`` and its tokenizer.json tokenises as the model does, how."""
    import torch

    try:
        import onnx
    except Exception as exc:
        raise ComponentUnavailable(
            f"runtime 'onnx' exports the model once with the package onnx, which failed to import "
            f"({type(exc).__name__}: {exc}); pip install onnx, or set runtime: torch", "onnx") from None
    features = (getattr(model, "preprocess", None) or model.tokenize)(_SAMPLE)
    names = [name for name, value in features.items() if isinstance(value, torch.Tensor)]
    axes = {name: {0: "batch", 1: "tokens"} for name in names}
    axes.update({OUTPUTS[0]: {0: "batch"}, OUTPUTS[1]: {0: "batch", 1: "tokens"}})
    record = json.dumps({"dimension": dimension(model), "tokenizer": _tokenizer_settings(model, directory, names)})

    def make(tmp: str) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python-side shape checks
            torch.onnx.export(_graph(model, names), tuple(features[name] for name in names), tmp, input_names=names,
                              output_names=list(OUTPUTS), dynamic_axes=axes, dynamo=False)
        graph = onnx.load(tmp)
        entry = graph.metadata_props.add()
        entry.key, entry.value = _RECORD, record
        onnx.save(graph, tmp)

    _write(path, make)


def announce_export(name: str) -> None:
    """Say, once per model and process, that its first load exports it: otherwise the
    10-60 s of loading torch and tracing the model pass in silence."""
    if name not in _announced:
        _announced.add(name)
        logger.warning("semantic cache: model %r has no ONNX export yet: loading it with torch and exporting it, once "
                       "(10-60 s); later loads, in any process, read the export and take about a second", name)


def is_exported(directory: str | Path) -> bool:
    """Whether the model in ``directory`` (a local model directory) has its export already."""
    folder = Path(directory)
    return folder.is_dir() and _paths(model_key(folder))[0].exists()


def _export_said(model, name: str, path: Path, directory: Path | None) -> None:
    """:func:`export`, announced, and the time it took logged."""
    announce_export(name)
    started = time.perf_counter()
    export(model, path, directory)
    logger.info("semantic cache: exported model %r to ONNX in %.1f s (%s)", name, time.perf_counter() - started, path)


def quantize(source: Path, path: Path) -> None:
    """int8 dynamic quantization of ``source``'s weights (per output channel, :data:`INT8_RECIPE`)
    into ``path``, the recipe added to what the export records.

    The weights keep 7 bits (``reduce_range``): ONNX Runtime multiplies the uint8 activations
    by the int8 weights with AVX-512 VNNI or AVX-VNNI where the processor has them, and with
    AVX2's ``vpmaddubsw`` elsewhere, which saturates a pair of products at 32,767; with full
    8-bit weights (up to 2 x 255 x 127) the two paths give vectors up to 0.012 cosine apart,
    so two hosts could not share one index. With 7 bits (2 x 255 x 64 at most) nothing
    saturates, every path computes the same integers, and the vectors agree as fp32 ones do."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def make(tmp: str) -> None:
        quantize_dynamic(source, tmp, weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
        graph = onnx.load(tmp)
        entry = next((e for e in graph.metadata_props if e.key == _RECORD), None)
        if entry is None:
            entry = graph.metadata_props.add()
            entry.key, entry.value = _RECORD, "{}"
        entry.value = json.dumps({**json.loads(entry.value or "{}"), "int8": INT8_RECIPE})
        onnx.save(graph, tmp)

    _write(path, make)


class OnnxModel:
    """An ONNX Runtime session of one exported model; ``run`` is safe from many threads.
    ``tokenizer``: the model's :class:`FastTokenizer` when the export records one and the model's
    ``directory`` is given, else None (inputs come from the loaded model); ``dimension``: the
    sentence vectors' length."""

    def __init__(self, path: Path, ort, directory: Path | None = None, int8: bool = False):
        options = ort.SessionOptions()
        if int8:
            # the embedder runs int8 one text per run, one run per core: a run keeps to its thread
            options.intra_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        record = json.loads(self.session.get_modelmeta().custom_metadata_map.get(_RECORD) or "{}")
        self.dimension: int | None = record.get("dimension")
        self.int8: str | None = record.get("int8")  # the recipe of an int8 form; None: fp32 (or an older int8)
        self.tokenizer: FastTokenizer | None = None
        settings = record.get("tokenizer")
        if settings and directory is not None:
            try:
                self.tokenizer = FastTokenizer(directory / settings["file"], settings["max_length"],
                                               settings["lowercase"], settings["pad_id"])
            except Exception as exc:  # the tokenizers library gone since the export: the loaded model tokenises
                logger.debug("onnx runtime: no tokenizer for %s (%s: %s)", path, type(exc).__name__, exc)

    def run(self, features: dict[str, Any], tokens: bool) -> tuple[Any, Any]:
        """``(sentence vectors, token vectors or None)`` for a tokenised batch (numpy arrays or torch tensors)."""
        feeds = {name: _array(features[name]) for name in self.inputs}
        out = self.session.run(list(OUTPUTS) if tokens else [OUTPUTS[0]], feeds)
        return out[0], (out[1] if tokens else None)


def _array(value):
    return value.numpy() if hasattr(value, "numpy") else value


def _open(path: Path, make, ort, directory: Path | None = None, int8: bool = False) -> OnnxModel:
    """A session of the graph at ``path``, made first when it is missing or does not load
    (``int8``: or was quantized otherwise than :data:`INT8_RECIPE`)."""
    if path.exists():
        try:
            got = OnnxModel(path, ort, directory, int8)
            if not int8 or got.int8 == INT8_RECIPE:
                return got
            # an int8 form of an older release: other vectors, and ones that vary with the processor
        except Exception:
            pass  # not a valid graph (cut short by hand, a foreign file): made again
    make(path)
    return OnnxModel(path, ort, directory, int8)


def _paths(key: str) -> tuple[Path, Path]:
    """The fp32 export of ``key`` and its int8 form."""
    folder = cache_dir() / "onnx"
    return folder / f"{key}.onnx", folder / f"{key}-int8.onnx"


def load(model, name: str, int8: bool = False, directory: str | Path | None = None) -> OnnxModel:
    """The shared session for ``model`` (loaded from ``name``; from ``directory`` when that is a
    local model directory), exported first when not cached; ``int8``: its int8 dynamically
    quantized form (made from the fp32 export)."""
    ort = import_onnxruntime()
    folder = Path(directory) if directory is not None and Path(directory).is_dir() else None
    with _sessions_lock:
        got = _by_model.get(model, {}).get(int8)
        if got is not None:
            return got
        fp32, quantized = _paths(model_key(folder) if folder is not None else weights_key(model))
        path = quantized if int8 else fp32
        got = _sessions.get(path.stem)
        if got is None:
            try:
                got = _open(fp32, lambda p: _export_said(model, name, p, folder), ort, folder)
                if int8:
                    got = _open(quantized, lambda p: quantize(fp32, p), ort, folder, int8=True)
            except ComponentUnavailable:
                raise
            except Exception as exc:
                raise ExportFailed(
                    f"cannot run model {name!r} with onnxruntime: making {str(path)!r} failed "
                    f"({type(exc).__name__}: {str(exc)[:200]}); set runtime: torch", "onnxruntime") from None
            _sessions[path.stem] = got
        _by_model.setdefault(model, {})[int8] = got
        return got


def load_exported(directory: str | Path, int8: bool = False) -> OnnxModel | None:
    """The shared session of the model in ``directory``, run without torch: its export, with the
    tokenizer it records (``int8``: the int8 form, made from the export when missing). None
    when there is none to run that way (not a directory, not exported yet, an export that does
    not load or records no tokenizer): the caller loads the model and calls :func:`load`,
    which makes the export (a later process then needs no torch)."""
    ort = import_onnxruntime()
    with _sessions_lock:
        got = _by_directory.get((str(directory), int8))
        if got is None:
            try:
                got = _exported(Path(directory), int8, ort)
            except Exception as exc:  # a damaged export, an unreadable model file: load() makes or reports it
                logger.debug("onnx runtime: %s is run with torch (%s: %s)", directory, type(exc).__name__, exc)
                return None
            if got is None:
                return None
            _by_directory[(str(directory), int8)] = got
        return got


def _exported(directory: Path, int8: bool, ort) -> OnnxModel | None:
    if not directory.is_dir():
        return None
    fp32, quantized = _paths(model_key(directory))
    path = quantized if int8 else fp32
    got = _sessions.get(path.stem)
    if got is None:
        if not fp32.exists():
            return None
        if int8:  # quantizing needs onnx and onnxruntime, not torch
            got = _open(quantized, lambda p: quantize(fp32, p), ort, directory, int8=True)
        else:
            got = OnnxModel(fp32, ort, directory)
        _sessions[path.stem] = got
    return got if got.tokenizer is not None and got.dimension else None
