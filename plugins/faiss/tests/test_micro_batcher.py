"""MicroBatcher: concurrent embed calls share passes that grow with the load; a caller alone never waits."""

import asyncio
import threading
import time

import numpy as np
import pytest

from dspy_turbo_faiss.micro_batcher import MicroBatcher


class FakeModel:
    """An embed function whose vector is a function of the text, with a pass that takes
    ``seconds`` outside the GIL (as a forward pass does), recording every batch it gets."""

    def __init__(self, seconds=0.0, fail_on=None):
        self.seconds = seconds
        self.fail_on = fail_on
        self.batches: list[list[str]] = []
        self._lock = threading.Lock()

    @staticmethod
    def vector(text):
        return np.array([len(text), sum(map(ord, text)) % 997], dtype=np.float32)

    def __call__(self, texts):
        with self._lock:
            self.batches.append(list(texts))
        if self.seconds:
            time.sleep(self.seconds)
        if self.fail_on is not None and self.fail_on in texts:
            raise RuntimeError("model failed")
        return np.vstack([self.vector(t) for t in texts])


def test_a_caller_alone_never_waits_for_the_window():
    model = FakeModel()
    batcher = MicroBatcher(model, window=5.0)
    started = time.monotonic()
    for i in range(3):
        assert np.array_equal(batcher.embed(f"q{i}"), model.vector(f"q{i}"))
    assert time.monotonic() - started < 2.5, "a window of 5 s was never waited for"
    assert model.batches == [["q0"], ["q1"], ["q2"]]


def test_after_a_burst_a_lone_caller_does_not_wait():
    model = FakeModel(seconds=0.05)
    batcher = MicroBatcher(model, window=0.5, max_batch=64)
    threads = [threading.Thread(target=batcher.embed, args=(f"burst {i}",)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(len(b) for b in model.batches) > 1, "the burst shared passes"
    started = time.monotonic()
    batcher.embed("alone")
    assert time.monotonic() - started < 0.4, "the 0.5 s window is for callers coming back under load, not for one alone"


def test_batches_grow_with_concurrent_threads_and_respect_max_batch():
    model = FakeModel(seconds=0.02)
    batcher = MicroBatcher(model, window=0.002, max_batch=8)
    results, lock = {}, threading.Lock()

    def caller(i):
        for j in range(5):
            text = f"caller {i} question {j}"
            vector = batcher.embed(text)
            with lock:
                results[text] = vector

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 160
    for text, vector in results.items():
        assert np.array_equal(vector, model.vector(text)), f"{text!r} got another text's vector"
    sizes = [len(b) for b in model.batches]
    assert max(sizes) == 8, "32 callers fill passes up to max_batch and never past it"
    assert len(sizes) < 160 / 3, f"passes were shared: {len(sizes)} passes for 160 texts"
    assert batcher.batches == len(sizes) and batcher.embedded == 160


async def test_asyncio_callers_through_threads_share_passes():
    """DSPy's async path reaches the semantic cache through asyncio.to_thread."""
    model = FakeModel(seconds=0.02)
    batcher = MicroBatcher(model, window=0.002, max_batch=64)
    texts = [f"async question {i}" for i in range(24)]
    vectors = await asyncio.gather(*(asyncio.to_thread(batcher.embed, t) for t in texts))
    for text, vector in zip(texts, vectors, strict=True):
        assert np.array_equal(vector, model.vector(text))
    assert len(model.batches) < len(texts), "concurrent coroutines shared passes"


def test_duplicates_in_flight_are_embedded_once_and_cached_texts_not_again():
    model = FakeModel(seconds=0.02)
    batcher = MicroBatcher(model, window=0.002)
    threads = [threading.Thread(target=batcher.embed, args=("same question",)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(b.count("same question") <= 1 for b in model.batches), "a pass embeds a text once"
    before = len(model.batches)
    batcher.embed("same question")
    assert len(model.batches) == before and batcher.cache_hits >= 1


def test_a_failing_pass_reaches_its_callers_and_the_next_pass_still_runs():
    model = FakeModel(seconds=0.02, fail_on="poison")
    batcher = MicroBatcher(model, window=0.002)
    errors, ok = [], []

    def caller(text):
        try:
            ok.append(batcher.embed(text))
        except RuntimeError as exc:
            errors.append((text, exc))

    threads = [threading.Thread(target=caller, args=(t,)) for t in ["poison"] + [f"fine {i}" for i in range(10)]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads), "no caller hangs after a failed pass"
    assert "poison" in {text for text, _ in errors}
    assert len(errors) + len(ok) == 11
    assert np.array_equal(batcher.embed("after"), model.vector("after")), "the batcher works after a failure"
    with pytest.raises(RuntimeError, match="model failed"):
        batcher.embed("poison")
