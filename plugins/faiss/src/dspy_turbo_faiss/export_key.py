"""The name of a model's ONNX export: a hash of what the exported graph is made from.

A model in a local directory is hashed from its files, read as bytes (no library imported,
no model loaded), so a process finds the export before deciding whether it needs torch at
all; any other model (a name in the local Hugging Face cache) from its loaded weights. Both
hashes cover the versions of the libraries that export, quantize and tokenise it, read from
their installed metadata, and a format tag.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from pathlib import Path

import xxhash

FORMAT = 2  # bump when the exported graph changes (inputs, outputs, what it computes, what it records)
_LIBRARIES = ("torch", "transformers", "sentence-transformers", "onnx", "onnxruntime", "tokenizers")
# A model directory's files the graph and its tokenisation are made from: configurations,
# vocabularies, sentencepiece models, weights, remote code (not READMEs, not other formats' folders)
_GRAPH_FILES = {".json", ".txt", ".model", ".safetensors", ".bin", ".py"}


def _versions() -> str:
    """The versions of the libraries that export, quantize and tokenise, read without importing them."""
    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "-"

    return "|".join(f"{name} {version(name)}" for name in _LIBRARIES)


def module_folders(directory: Path) -> list[Path]:
    """The folders of a model directory's modules, in order (``modules.json``; the directory
    itself when it has none: sentence-transformers then reads it as one transformer)."""
    listed = directory / "modules.json"
    if not listed.is_file():
        return [directory]
    modules = sorted(json.loads(listed.read_text(encoding="utf-8")), key=lambda m: m.get("idx", 0))
    return [directory / module.get("path", "") for module in modules]


def model_key(directory: Path) -> str:
    """The hash for the model in ``directory``: the files the graph is made from (its own and
    its modules' configurations, tokenizer files and weights; their contents, not their times)."""
    digest = xxhash.xxh3_128(f"{FORMAT}|{_versions()}".encode())
    folders = {directory, *module_folders(directory)}
    files = sorted({path for folder in folders if folder.is_dir() for path in folder.iterdir()
                    if path.suffix in _GRAPH_FILES and not path.name.startswith(".") and path.is_file()})
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    for path in files:
        digest.update(f"|{path.relative_to(directory).as_posix()}|{path.stat().st_size}|".encode())
        with path.open("rb") as fh:
            while size := fh.readinto(buffer):
                digest.update(view[:size])
    return digest.hexdigest()


def weights_key(model) -> str:
    """:func:`model_key` for a model that is not a local directory (a name in the Hugging Face
    cache): its loaded weights and modules instead of its files."""
    import torch

    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{FORMAT}|{_versions()}|{model!r}".encode())
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(memoryview(flat.view(torch.uint8).numpy()))
    return digest.hexdigest()
