"""``dspy_turbo.CachedModule(program)``: a DSPy program served cache-first.

    qa = dspy_turbo.CachedModule(QA())
    qa(question="...")                         # through the Turbo (per LM request, and per item when sound)
    qa.batch_forward(examples)                 # turbo.batch: cache-first, concurrent, in order

Each call runs the program with every LM request through the Turbo (the LM-level cache,
always current). Its *completed result* is cached too, under the item key ``turbo.batch``
uses (so a result computed by either is a hit for the other), when that is sound or asked
for, exactly as in a batch: ``item_cache`` unset caches results only for a program made
entirely of DSPy's own code; ``item_cache=True`` for any program, at the risk that a code
change the key cannot see (see ``dspy_turbo.cache.program_identity``) serves the old answer;
``item_cache=False`` never. It is a ``dspy.Module``: optimizers see the wrapped program's
predictors, and a change they make (new demos, new instructions) changes the key. With no
Turbo (``turbo=`` or installed), ``forward`` simply runs the program; with ``turbo=`` and
none installed, that Turbo is installed for the call.
"""

from __future__ import annotations

from typing import Any

import dspy

from ..integration.dspy_cache import active


class CachedModule(dspy.Module):
    def __init__(self, program: Any, *, turbo=None, item_cache: bool | None = None, **batch_options: Any):
        super().__init__()
        self.program = program
        self._turbo = turbo
        self._item_cache = item_cache
        self._batch_options = {**batch_options, "item_cache": item_cache}

    @property
    def turbo(self):
        return self._turbo if self._turbo is not None else active()

    def _key(self, turbo, inputs: dict[str, Any]) -> str | None:
        from .items import item_key, uses_item_cache

        try:
            if not uses_item_cache(self._item_cache, self.program):
                return None
        except Exception:  # never let the check break the program: run it
            return None
        return item_key(turbo, self.program, inputs)

    def forward(self, **inputs: Any) -> Any:
        turbo = self.turbo
        if turbo is None:
            return self.program(**inputs)
        undo = _installed(turbo)
        try:
            key = self._key(turbo, inputs)
            if key is None:
                return self.program(**inputs)
            hit = turbo.lookup(key)
            if hit is not None:
                return hit
            value, shared = turbo.singleflight.do(key, lambda: self._run(turbo, key, inputs))
            return _own(turbo, key, value) if shared else value
        finally:
            if undo is not None:
                undo()

    def _run(self, turbo, key: str, inputs: dict[str, Any]) -> Any:
        value = self.program(**inputs)
        if value is not None:
            turbo.store(key, value)
        return value

    async def aforward(self, **inputs: Any) -> Any:
        turbo = self.turbo
        if turbo is None:
            return await self.program.acall(**inputs)
        undo = _installed(turbo)
        try:
            key = self._key(turbo, inputs)
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
        finally:
            if undo is not None:
                undo()

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


def _installed(turbo):
    """Install ``turbo`` for the call when no Turbo is (so the program's LM requests go
    through it, as in a batch); the undo, or None."""
    from .items import ensure_installed

    return ensure_installed(turbo)


def _own(turbo, key: str, value: Any) -> Any:
    turbo.report_coalesced(key)
    mine = turbo.lookup(key, count=False)
    return mine if mine is not None else value
