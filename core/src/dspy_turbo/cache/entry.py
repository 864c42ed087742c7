"""The cache entry envelope and its wire format.

An entry carries the value and what a hit needs to report honestly: when it was made,
when it expires, the usage and dollar cost of the original call (a hit *saves* those),
the model, and tags for invalidation.

Wire format (what byte-oriented tiers such as Redis and disk store)::

    b"DT" + FORMAT_VERSION byte + JSON [tag, data, created_at, expires_at, usage, cost,
                                        model, tags]

``tag`` and ``data`` are the value as ``codec`` writes it: ``json`` (the value is plain
JSON) or ``typed`` (a tree with type tags that reads back exactly: tuples, sets, non-finite
floats, datetimes, allow-listed classes, LiteLLM responses). Format 3 added ``typed``;
format 2 entries (``json`` and the per-type tags of before) and format 1 ones are still
read, so a cache written before stays warm.

A positional array rather than an object: :class:`Entry` is a ``msgspec.Struct`` laid out
as that array, so a hit is parsed, its metadata type-checked and the entry built in one C
call, with no Python per field (format 1 was the same fields as an object; it is still
read). Writes encode with orjson.

Anything else under our prefix (a foreign value, a truncated write, a pickle someone
planted) fails :meth:`Entry.from_bytes` with ``DecodeError`` and is treated as a miss.
"""

from __future__ import annotations

import re
import time
from itertools import repeat
from typing import Any

import msgspec
import orjson
from msgspec import UNSET, UnsetType

from .codec import MAX_DEPTH, DecodeError, copy_value, decode_value, encode_value

MAGIC = b"DT"
FORMAT_VERSION = 3
_HEADER = MAGIC + bytes([FORMAT_VERSION])
_HEADER_V2 = MAGIC + b"\x02"
_HEADER_V1 = MAGIC + b"\x01"
_CURRENT_TAGS = frozenset({"json", "typed"})


# array_like: the first eight fields in this order are the wire array. Anything past them is
# refused, not cut short: the two per-copy fields accept no JSON value, and
# forbid_unknown_fields covers what comes after those.
class Entry(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    tag: str
    value: Any
    created_at: float
    expires_at: float | None
    usage: dict[str, int]
    cost: float | None
    model: str | None
    tags: tuple[str, ...]
    # State of this copy, never on the wire: its bytes, and whether the value was decoded for
    # one read and is held by nobody else (see ``copy_value``). Struct slots, not a __dict__
    # (which costs ~330 B more per entry a memory tier holds); typed UnsetType so that no JSON
    # value decodes into them, and set after decoding (a Struct checks no type on assignment).
    _blob: UnsetType = UNSET
    _owned: UnsetType = UNSET

    @classmethod
    def create(cls, value: Any, *, ttl: float | None = None, usage=None, cost=None, model=None, tags=()) -> Entry:
        """An entry for a fresh value; raises ``EncodeError`` when the value cannot be stored."""
        now = time.time()
        entry = cls("", value, now, now + ttl if ttl else None, dict(usage or {}), cost, model, tuple(tags))
        # Encode now: a value that cannot be stored fails here, before any tier sees it.
        data = entry._encode()
        # The cache keeps its own copy: the caller may go on mutating the value it returned.
        # Plain JSON's copy is the encoded data read back, made once here rather than again by the codec.
        entry.value = orjson.loads(data) if entry.tag == "json" else copy_value(entry.tag, value)
        return entry

    def _encode(self) -> bytes:
        """Fill in the tag and the wire bytes; returns the encoded value alone (JSON)."""
        tag, data = encode_value(self.value)
        encoded = orjson.dumps(data)
        self.tag = tag
        self._blob = _HEADER + orjson.dumps(
            [tag, orjson.Fragment(encoded), self.created_at, self.expires_at, self.usage, self.cost, self.model,
             list(self.tags)])
        return encoded

    def to_bytes(self) -> bytes:
        if not self._blob:  # UNSET: never encoded (an entry's bytes are never empty)
            self._encode()
        return self._blob

    @classmethod
    def from_bytes(cls, blob: bytes) -> Entry:
        if type(blob) is not bytes:  # the hot path gets bytes; spare it the isinstance chain
            if not isinstance(blob, (bytes, bytearray, memoryview)):
                raise DecodeError(f"expected bytes, got {type(blob).__name__}")
            blob = bytes(blob)
        if blob[:3] != _HEADER:
            return cls._from_older(blob)
        try:
            entry = _decode(blob[3:])
        except Exception as exc:
            raise _corrupt(exc) from exc
        return _finish(entry, blob)

    @classmethod
    def from_many(cls, blobs: list[bytes]) -> list[Entry | DecodeError]:
        """``from_bytes`` of each blob, in order: its entry, or in its place the ``DecodeError``
        ``from_bytes`` would raise for it.

        A bulk read decodes hundreds of blobs, and a call of ``from_bytes`` each adds a fifth
        to their parsing: when every blob is the current format they are checked and parsed
        by ``map`` (a loop in C), and only what needs Python per entry (a typed value, one
        that may nest deep) leaves that path. Each blob is parsed on its
        own, never joined to its neighbours: a bad one cannot shift what the others read.
        Anything unexpected (a blob not in the current format, one that does not parse)
        reads them all again one at a time."""
        try:
            if not all(map(bytes.startswith, blobs, repeat(_HEADER))):  # TypeError for what is not bytes
                raise ValueError
            entries = list(map(_decode, (blob[3:] for blob in blobs)))  # one slice at a time: large entries are not held twice
        except Exception:
            return [_from_bytes_or_error(blob) for blob in blobs]
        out: list[Entry | DecodeError] = entries  # type: ignore[assignment]
        for i, (entry, blob) in enumerate(zip(entries, blobs, strict=True)):
            try:
                _finish(entry, blob)
            except DecodeError as exc:
                out[i] = exc
        return out

    @classmethod
    def _from_older(cls, blob: bytes) -> Entry:
        """Formats 1 and 2, and the errors for what is neither (a cache written before stays warm)."""
        try:
            if blob.startswith(_HEADER_V2):
                entry = _decode(blob[3:])
            elif blob.startswith(_HEADER_V1):
                raw = orjson.loads(blob[3:])
                entry = msgspec.convert([raw["t"], raw["d"], raw["c"], raw.get("e"), raw.get("u") or {}, raw.get("$"),
                                         raw.get("m"), raw.get("g") or []], Entry)
            elif blob[:2] != MAGIC:
                raise DecodeError("not a dspy-turbo entry (bad magic)")
            else:
                raise DecodeError(f"entry format version {blob[2:3]!r} is not one of 1 to {FORMAT_VERSION}")
        except DecodeError:
            raise
        except Exception as exc:
            raise _corrupt(exc) from exc
        entry.value = decode_value(entry.tag, entry.value, _brackets(blob) <= MAX_DEPTH)
        if entry.tag not in _CURRENT_TAGS:  # an older format's own tag: copied as any typed value now
            entry.tag = "typed"
        entry._blob = blob
        entry._owned = True
        return entry

    @property
    def size(self) -> int:
        return len(self.to_bytes())

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now if now is not None else time.time()) >= self.expires_at

    def remaining_ttl(self, now: float | None = None) -> float | None:
        """Seconds left, or None for no expiry (promotion keeps what is left, never more)."""
        if self.expires_at is None:
            return None
        return max(0.0, self.expires_at - (now if now is not None else time.time()))

    def copy_value(self) -> Any:
        """The caller's own copy of the value (see ``codec``).

        An entry decoded from bytes for this read, and not kept by any tier since, holds a
        value nobody else has: it is handed over once without a copy (a copy of a
        ``ModelResponse`` costs ~6 µs of a ~60 µs disk hit). Later calls copy.
        """
        if self._owned:
            self._owned = False
            return self.value
        return copy_value(self.tag, self.value)

    def share(self) -> None:
        """The entry is kept somewhere now (promoted into a tier): its value is no longer
        the reader's to take, every ``copy_value`` copies."""
        self._owned = False

    @property
    def total_tokens(self) -> int:
        u = self.usage
        return int(u.get("total_tokens") or (u.get("prompt_tokens", 0) or 0) + (u.get("completion_tokens", 0) or 0))


_decode = msgspec.json.Decoder(Entry).decode
_FIELDS = Entry.__struct_fields__
_WIRE_FIELDS = 8
_INDEX = re.compile(r"\$\[(\d+)\]")


def _finish(entry: Entry, blob: bytes) -> Entry:
    """A current-format entry as parsed from ``blob``, made ready to read (``from_bytes`` and
    ``from_many`` both end here); ``DecodeError`` for an unknown tag or a value nested too deep."""
    tag = entry.tag
    if tag == "json":
        # Plain JSON is its value already, fresh from the parser: only its depth is checked,
        # and no container nests deeper than the brackets its bytes hold.
        if len(blob) - len(blob.replace(b"[", b"").replace(b"{", b"")) > MAX_DEPTH:  # _brackets(blob), inline
            entry.value = decode_value(tag, entry.value)  # walks it
    elif tag == "typed":
        entry.value = decode_value(tag, entry.value)  # bounds its depth as it goes
    else:
        raise DecodeError(f"unknown value tag {tag!r}")
    entry._blob = blob
    entry._owned = True
    return entry


def _from_bytes_or_error(blob: bytes) -> Entry | DecodeError:
    try:
        return Entry.from_bytes(blob)
    except DecodeError as exc:
        return exc


def _brackets(blob: bytes) -> int:
    """How many ``[`` and ``{`` the bytes hold: a bound on how deep anything they parse to nests.

    ``replace`` finds them with memchr: a third of the instructions of two ``count`` calls,
    which look at every byte (a record of 1.7 KB: about 6,000 against 19,000)."""
    return len(blob) - len(blob.replace(b"[", b"").replace(b"{", b""))


def _corrupt(exc: Exception) -> DecodeError:
    """Not JSON, not an array of eight, metadata of the wrong type: msgspec says where by array
    index ("at `$[4][...]`"), the message names the field instead."""
    where = str(exc)
    past = _INDEX.search(where)
    where = "an array longer than eight" if past and int(past[1]) >= _WIRE_FIELDS else \
        _INDEX.sub(lambda m: _FIELDS[int(m[1])], where)
    return DecodeError(f"corrupt entry: {where}")
