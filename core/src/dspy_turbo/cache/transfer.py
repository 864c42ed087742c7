"""Export and import of cache entries as JSON lines (``dspy-turbo export``/``import``,
``turbo.export(path)``/``turbo.import_(path)``, DSPy's ``save_memory_cache``/``load_memory_cache``).

The file is text, one JSON object a line, never pickle: a header line, then one line per
entry with its key and its envelope (the value as its codec's JSON, with the codec's tag;
created, expires, usage, cost, model, tags)::

    {"dspy_turbo_export": 1, "namespace": "myapp", "key_version": 2}
    {"key": "myapp:v2:9f...", "tag": "json", "value": {...}, "created_at": 1767225600.0,
     "expires_at": null, "usage": {"total_tokens": 42}, "cost": 0.0001, "model": "openai/gpt-4o-mini", "tags": []}

Both directions stream: one entry at a time is held (tiers are read through their
``entries(prefix)``, pages at a time), so millions of entries take constant memory. An
entry held by several tiers is written once, from the first tier that has it. Importing
decodes values through the registered codecs only (a tag no codec knows is skipped and
counted, never imported as code); keys of another namespace move into the importing one
(a key's hash does not include the namespace); keys of another key version are skipped.
Import only files you trust: an imported entry is served as the answer to its request.
"""

from __future__ import annotations

import gzip
import io
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import msgspec
import orjson

from .codec import DecodeError, decode_value, encode_value
from .entry import Entry
from .keys import KEY_VERSION

if TYPE_CHECKING:
    from ..host.turbo import Turbo
    from .tiered import Tier

FORMAT = 1
HEADER_KEY = "dspy_turbo_export"
_CHECK_BATCH = 500  # keys checked against the tiers read before, per get_many


class TransferError(ValueError):
    """The file is not an export this version can read (its line is named)."""


@dataclass
class Report:
    """What an export or import did, per tier and in all."""

    entries: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    """Entries left out, by reason: ``expired``, ``key_version``, ``undecodable``, ``not_stored``."""
    tiers: dict[str, int] = field(default_factory=dict)
    """Export: entries written from each tier. Import: entries each tier took."""
    unlisted: dict[str, str] = field(default_factory=dict)
    """Export: tiers that cannot list their entries, with why."""

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def envelope(key: str, entry: Entry) -> dict[str, Any]:
    """One entry as an export line's object (also what ``dspy-turbo show`` prints)."""
    tag, data = encode_value(entry.value)
    return {"key": key, "tag": tag, "value": data, "created_at": entry.created_at, "expires_at": entry.expires_at,
            "usage": dict(entry.usage), "cost": entry.cost, "model": entry.model, "tags": list(entry.tags)}


def entry_from(line: dict[str, Any]) -> Entry:
    """The entry of an export line's object; ``DecodeError`` when it is not one."""
    try:
        entry = msgspec.convert([line["tag"], line["value"], line["created_at"], line.get("expires_at"),
                                 line.get("usage") or {}, line.get("cost"), line.get("model"), line.get("tags") or []],
                                Entry)
    except (KeyError, TypeError, msgspec.ValidationError) as exc:
        raise DecodeError(f"not an entry: {exc}") from None
    entry.value = decode_value(entry.tag, entry.value)
    return entry


def _open(path: str | os.PathLike | IO, mode: str) -> tuple[IO, bool]:
    """A binary file for ``path`` (``.gz`` compressed), or the stream given; and whether to close it."""
    if not isinstance(path, (str, os.PathLike)):
        return (path.buffer if isinstance(path, io.TextIOBase) and hasattr(path, "buffer") else path), False
    name = os.fspath(path)
    if name == "-":
        import sys

        return (sys.stdout.buffer if "w" in mode else sys.stdin.buffer), False
    opener = gzip.open if name.endswith(".gz") else open
    return opener(os.path.expanduser(name), mode + "b"), True


# -- export ------------------------------------------------------------------------------------


def iter_entries(turbo: Turbo, tiers: Iterable[Tier] | None = None, report: Report | None = None,
                 prefix: str | None = None) -> Iterator[tuple[str, str, Entry]]:
    """``(tier name, key, entry)`` for the live entries of this namespace, each key once (from
    the first tier, in read order, that holds it). Tiers that cannot list are noted in ``report``."""
    report = report if report is not None else Report()
    prefix = turbo.keys.prefix if prefix is None else prefix
    chosen = list(turbo.cache.tiers if tiers is None else tiers)
    before: list[Tier] = []
    for tier in chosen:
        try:
            listing = tier.backend.entries(prefix)
            batch: list[tuple[str, Entry]] = []
            for key, entry in listing:
                batch.append((key, entry))
                if len(batch) >= _CHECK_BATCH:
                    yield from _not_before(before, tier.name, batch, report)
                    batch = []
            yield from _not_before(before, tier.name, batch, report)
        except NotImplementedError as exc:
            report.unlisted[tier.name] = str(exc) or f"the {tier.backend.name!r} backend cannot list its entries"
        before.append(tier)


def _not_before(before: list[Tier], name: str, batch: list[tuple[str, Entry]], report: Report):
    """The entries of ``batch`` that no tier read before holds (those were yielded from it)."""
    if not batch:
        return
    held: set[str] = set()
    for tier in before:
        try:
            held.update(tier.backend.get_many([k for k, _ in batch if k not in held]))
        except Exception:  # a tier that fails now: its copies were listed from it, or it lists nothing
            pass
    now = time.time()
    for key, entry in batch:
        if key in held:
            continue
        if entry.expired(now):
            report.skip("expired")
            continue
        report.tiers[name] = report.tiers.get(name, 0) + 1
        yield name, key, entry


def select_tiers(turbo: Turbo, tier: str | Iterable[str] | None) -> list[Tier]:
    """The tiers named (one name or several), in read order; every tier for ``None``."""
    if tier is None:
        return list(turbo.cache.tiers)
    wanted = {tier} if isinstance(tier, str) else set(tier)
    names = [t.name for t in turbo.cache.tiers]
    unknown = sorted(wanted - set(names))
    if unknown:
        raise ValueError(f"no tier named {unknown[0]!r}; tiers: {', '.join(names)}")
    return [t for t in turbo.cache.tiers if t.name in wanted]


def export(turbo: Turbo, path: str | os.PathLike | IO, *, tier: str | Iterable[str] | None = None,
           progress: Callable[[int], None] | None = None) -> Report:
    """Write this namespace's entries (of every tier, or those named) to ``path`` as JSON lines."""
    tiers = select_tiers(turbo, tier)
    report = Report()
    out, close = _open(path, "w")
    try:
        out.write(orjson.dumps({HEADER_KEY: FORMAT, "namespace": turbo.namespace, "key_version": KEY_VERSION}) + b"\n")
        for _, key, entry in iter_entries(turbo, tiers, report):
            try:
                line = orjson.dumps(envelope(key, entry), option=orjson.OPT_SERIALIZE_NUMPY)
            except Exception:  # a value its codec no longer encodes: left out, counted
                report.skip("undecodable")
                continue
            out.write(line + b"\n")
            report.entries += 1
            if progress is not None:
                progress(1)
        out.flush()
    finally:
        if close:
            out.close()
    return report


# -- import ------------------------------------------------------------------------------------


def import_(turbo: Turbo, path: str | os.PathLike | IO, *, tier: str | Iterable[str] | None = None,
            progress: Callable[[int], None] | None = None) -> Report:
    """Read an export into this Turbo's tiers (every tier, or those named), as ``put`` writes
    them: the tiers' TTLs and size bounds apply; expired entries are skipped."""
    tiers = [t.name for t in select_tiers(turbo, tier)]
    report = Report()
    source, close = _open(path, "r")
    name = getattr(source, "name", None) or str(path)
    try:
        header = _header(source.readline(), name)
        old_prefix = f"{header.get('namespace')}:v{header.get('key_version')}:"
        new_prefix = turbo.keys.prefix
        for number, raw in enumerate(source, start=2):
            if not raw.strip():
                continue
            try:
                line = orjson.loads(raw)
                if not isinstance(line, dict) or not isinstance(line.get("key"), str):
                    raise DecodeError("expected an object with a 'key'")
                entry = entry_from(line)
            except (orjson.JSONDecodeError, DecodeError) as exc:
                raise TransferError(f"{name}, line {number}: {exc}") from None
            key = line["key"]
            if header.get("key_version") != KEY_VERSION or not key.startswith(old_prefix):
                report.skip("key_version")
                continue
            if entry.expired():
                report.skip("expired")
                continue
            key = new_prefix + key[len(old_prefix):]
            stored = turbo.cache.put_to(key, entry, tiers)
            for t in stored:
                report.tiers[t] = report.tiers.get(t, 0) + 1
            if stored:
                report.entries += 1
            else:
                report.skip("not_stored")
            if progress is not None:
                progress(1)
    finally:
        if close:
            source.close()
    return report


def _header(raw: bytes, name: str) -> dict[str, Any]:
    if raw[:2] == b"\x80\x04" or raw[:1] == b"\x80":
        raise TransferError(f"{name} is a pickle; dspy-turbo never loads pickles (export the cache with "
                            "dspy-turbo export, or turbo.export(path), to get JSON lines)")
    try:
        header = orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or HEADER_KEY not in header:
        raise TransferError(f"{name}, line 1: not a dspy-turbo export (expected a header line with {HEADER_KEY!r})")
    if header[HEADER_KEY] != FORMAT:
        raise TransferError(f"{name}: export format {header[HEADER_KEY]!r}; this version reads format {FORMAT}")
    return header
