"""``dspy_turbo.CachedModule(program)``: a DSPy program whose completed results are cached.

    qa = dspy_turbo.CachedModule(QA())
    qa(question="...")                         # cached per item (and per LM request inside)
    qa.batch_forward(examples)                 # turbo.batch: cache-first, concurrent, in order

The item key is the one ``turbo.batch`` uses (the program's identity and the inputs, see
``dspy_turbo.programs``), so a result computed by either is a hit for the other. It is a
``dspy.Module``: optimizers see the wrapped program's predictors, and a change they make
(new demos, new instructions) changes the key. With no Turbo (``turbo=`` or installed),
``forward`` simply runs the program.
"""

from __future__ import annotations

from typing import Any

import dspy

from .dspy_integration import active


class CachedModule(dspy.Module):
    def __init__(self, program: Any, *, turbo=None, **batch_options: Any):
        super().__init__()
        self.program = program
        self._turbo = turbo
        self._batch_options = batch_options

    @property
    def turbo(self):
        return self._turbo if self._turbo is not None else active()

    def _key(self, turbo, inputs: dict[str, Any]) -> str | None:
        from .batching import item_key

        return item_key(turbo, self.program, inputs)

    def forward(self, **inputs: Any) -> Any:
        turbo = self.turbo
        key = self._key(turbo, inputs) if turbo is not None else None
        if key is None:
            return self.program(**inputs)
        hit = turbo.lookup(key)
        if hit is not None:
            return hit
        value, shared = turbo.singleflight.do(key, lambda: self._run(turbo, key, inputs))
        return _own(turbo, key, value) if shared else value

    def _run(self, turbo, key: str, inputs: dict[str, Any]) -> Any:
        value = self.program(**inputs)
        if value is not None:
            turbo.store(key, value)
        return value

    async def aforward(self, **inputs: Any) -> Any:
        turbo = self.turbo
        key = self._key(turbo, inputs) if turbo is not None else None
        if key is None:
            return await self.program.acall(**inputs)
        hit = turbo.lookup(key)
        if hit is not None:
            return hit

        async def run():
            value = await self.program.acall(**inputs)
            if value is not None:
                turbo.store(key, value)
            return value

        value, shared = await turbo.singleflight.ado(key, run)
        return _own(turbo, key, value) if shared else value

    def batch_forward(self, examples, **options: Any) -> list:
        """``turbo.batch(program, examples)`` with this module's batch options, then ``options``."""
        return self._need_turbo().batch(self.program, examples, **{**self._batch_options, **options})

    async def abatch_forward(self, examples, **options: Any) -> list:
        return await self._need_turbo().abatch(self.program, examples, **{**self._batch_options, **options})

    def _need_turbo(self):
        turbo = self.turbo
        if turbo is None:
            raise RuntimeError("CachedModule.batch_forward needs a Turbo: pass turbo=... or install one "
                               "(dspy_turbo.load(...).install())")
        return turbo


def _own(turbo, key: str, value: Any) -> Any:
    turbo.report_coalesced(key)
    mine = turbo.lookup(key, count=False)
    return mine if mine is not None else value
