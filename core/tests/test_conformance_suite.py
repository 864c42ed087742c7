"""The conformance suite fails the broken backends a third party could write: a clear() that
reads its prefix as a pattern, writes that are not atomic, a size cap that drops long
answers, a backend that ignores the engine's signer. Each is a plausible backend, run
against the suite's own test methods."""

from __future__ import annotations

import fnmatch
import os
import threading
import time
from pathlib import Path

import pytest

from dspy_turbo import CacheBackend, DecodeError, Entry
from dspy_turbo.testing import CacheBackendSuite


class Bytes(CacheBackend):
    """A correct byte-oriented backend (a dict of signed bytes): the base of the broken ones."""

    name = "bytes"

    def __init__(self, options=None):
        super().__init__(options)
        self.data: dict[str, bytes] = {}
        self.expiry: dict[str, float] = {}
        self.lock = threading.Lock()

    def _store(self, key: str, entry: Entry) -> bytes:
        return self.encode_entry(key, entry)

    def get(self, key):
        with self.lock:
            blob = self.data.get(key)
        if blob is None or self.expiry.get(key, float("inf")) <= time.time():
            return None
        try:
            entry = self.decode_entry(key, blob)
        except DecodeError as exc:
            self.delete(key)
            self.corrupt(key, exc)
            return None
        return None if entry.expired() else entry

    def set(self, key, entry, ttl=None):
        with self.lock:
            self.data[key] = self._store(key, entry)
            if ttl is not None:
                self.expiry[key] = time.time() + ttl

    def delete(self, key):
        with self.lock:
            self.data.pop(key, None)

    def keys(self, prefix=""):
        with self.lock:
            return [k for k in self.data if k.startswith(prefix)]

    def clear(self, prefix=""):
        doomed = self.keys(prefix)
        for key in doomed:
            self.delete(key)
        return len(doomed)


class GlobPrefix(Bytes):
    """clear() and keys() through fnmatch: ``clear("n*:")`` empties other namespaces."""

    def keys(self, prefix=""):
        with self.lock:
            return [k for k in self.data if fnmatch.fnmatchcase(k, prefix + "*")]


class TornFiles(Bytes):
    """One file per key, rewritten in place in two writes: a reader can see a part of it.
    Otherwise correct (TTL, prefixes, corrupt files): it passed every test of the suite before
    the same-key concurrency test."""

    def __init__(self, directory: Path):
        super().__init__()
        self.directory = directory
        self.expiry: dict[str, float] = {}

    def _path(self, key: str) -> Path:
        return self.directory / key.encode().hex()

    def get(self, key):
        if self.expiry.get(key, float("inf")) <= time.time():
            self.delete(key)
            return None
        try:
            blob = self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        try:
            return self.decode_entry(key, blob)
        except DecodeError as exc:
            self.delete(key)
            self.corrupt(key, exc)
            return None

    def set(self, key, entry, ttl=None):
        blob = self.encode_entry(key, entry)
        if ttl is not None:
            self.expiry[key] = time.time() + ttl
        half = len(blob) // 2
        with open(self._path(key), "wb") as f:  # truncates first: the old entry is gone, the new one not there
            f.write(blob[:half])
            f.flush()
            os.sched_yield()
            f.write(blob[half:])

    def delete(self, key):
        self._path(key).unlink(missing_ok=True)

    def keys(self, prefix=""):
        names = [bytes.fromhex(p.name).decode() for p in self.directory.iterdir()]
        return [k for k in names if k.startswith(prefix)]


class CapsValues(Bytes):
    """Keeps at most 1 MB of a value, as a fixed-size column would: long answers come back cut."""

    def _store(self, key, entry):
        return self.encode_entry(key, entry)[:1_000_000]


class IgnoresSigner(Bytes):
    """Stores the entry's own bytes: with a signing key configured, nothing is signed."""

    def _store(self, key, entry):
        return entry.to_bytes()

    def get(self, key):
        with self.lock:
            blob = self.data.get(key)
        return None if blob is None or self.expiry.get(key, float("inf")) <= time.time() else Entry.from_bytes(blob)


suite = CacheBackendSuite()


def test_a_correct_byte_backend_passes_the_new_tests(tmp_path):
    for prefix in ["n*:", "n%:", "n[s]:"]:
        suite.test_clear_takes_the_prefix_literally(Bytes(), prefix)
    suite.test_one_key_written_and_read_at_once_is_never_torn(Bytes(), 200_000)
    suite.test_entries_of_several_megabytes(Bytes())
    suite.test_entries_are_signed_with_the_engines_signer(Bytes())


@pytest.mark.parametrize("prefix", ["n*:", "n?:", "n[s]:"])
def test_a_clear_that_reads_its_prefix_as_a_glob_fails(prefix):
    with pytest.raises(AssertionError, match="outside its prefix"):
        suite.test_clear_takes_the_prefix_literally(GlobPrefix(), prefix)


def test_writes_that_are_not_atomic_fail(tmp_path):
    with pytest.raises(AssertionError, match="corrupt reads|torn"):
        suite.test_one_key_written_and_read_at_once_is_never_torn(TornFiles(tmp_path), 200_000)


def test_a_backend_that_cuts_long_values_fails():
    with pytest.raises(AssertionError):
        suite.test_entries_of_several_megabytes(CapsValues())


def test_a_backend_that_ignores_the_signer_fails():
    with pytest.raises(AssertionError):
        suite.test_entries_are_signed_with_the_engines_signer(IgnoresSigner())
