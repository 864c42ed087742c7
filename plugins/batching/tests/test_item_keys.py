"""Program-level item keys: two programs that can answer differently never share a key."""

import functools
import uuid

import dspy
import pydantic
import pytest

import dspy_turbo
from dspy_turbo.cache.items import program_key
from dspy_turbo.cache.program_identity import Unkeyable, _sub_modules, library_program


class Shout(dspy.Module):
    def __init__(self, n):
        super().__init__()
        self.n = n

    def forward(self, question):
        return question + "!" * self.n


class Up(dspy.Module):
    def forward(self, question):
        return question.upper()


class Down(dspy.Module):
    def forward(self, question):
        return question.lower()


class Outer(dspy.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, question):
        return self.inner(question=question)


def styled(question, style):
    return f"{style}:{question}"


@pytest.fixture
def turbo(make_turbo, lm):
    return make_turbo()


def test_settings_submodules_and_predict_config_are_part_of_the_key(turbo):
    assert program_key(turbo, Shout(1)) != program_key(turbo, Shout(5))
    assert program_key(turbo, Shout(1)) == program_key(turbo, Shout(1))
    assert program_key(turbo, Outer(Up())) != program_key(turbo, Outer(Down()))
    assert program_key(turbo, dspy.Predict("q -> a")) != program_key(turbo, dspy.Predict("q -> a", n=4, temperature=1.0))
    assert program_key(turbo, dspy.Predict("q -> a")) == program_key(turbo, dspy.Predict("q -> a"))


def test_closures_and_partials_are_keyed_by_what_they_capture(turbo):
    def make(style):
        return lambda question: f"{style}:{question}"

    assert program_key(turbo, make("A")) == program_key(turbo, make("A"))
    assert program_key(turbo, make("A")) != program_key(turbo, make("B"))
    assert program_key(turbo, functools.partial(styled, style="A")) != program_key(turbo, functools.partial(styled, style="B"))


def test_an_unkeyable_program_still_batches_without_item_cache(turbo):
    def make(style):
        return lambda question: f"{style}:{question}"

    examples = [{"question": "q1"}, {"question": "q2"}]
    assert turbo.batch(make("A"), examples) == ["A:q1", "A:q2"]
    assert turbo.batch(make("B"), examples) == ["B:q1", "B:q2"]  # not A's cached results


def test_an_lm_with_cache_off_is_not_item_cached(make_turbo):
    lm = dspy_turbo.engines.offline.offline_lm("openai/gpt-4o-mini", cache=False)
    turbo = make_turbo()
    with dspy.context(lm=lm):
        with pytest.raises(Unkeyable):
            program_key(turbo, dspy.Predict("q -> a"))


class Nested(dspy.Module):
    def __init__(self):
        super().__init__()
        self.first = dspy.Predict("question -> answer")
        self.rest = [dspy.ChainOfThought("question -> answer"), {"last": dspy.Predict("q -> a")}]

    def forward(self, question):
        return self.first(question=question)


def test_sub_modules_are_named_as_dspy_names_them():
    program = Nested()
    assert [(n, id(m)) for n, m in _sub_modules(program)] == [(n, id(m)) for n, m in program.named_sub_modules()]


def test_what_a_program_recorded_while_running_is_not_its_identity(turbo, lm):
    # DSPy appends every call to each module's history (up to 10,000 entries); walking it on
    # every batch cost more than the batch's own work. Nothing in it is part of the program.
    program = Nested()
    program(question="warm up")
    before = program_key(turbo, program)
    program.history.append({"outputs": [dspy.Predict("x -> y")]})
    program.first.history.extend({"messages": [{"content": f"call {i}"}]} for i in range(100))
    assert program_key(turbo, program) == before


def test_field_types_are_part_of_the_key(turbo):
    # dump_state() holds field names and descriptions, not types: an int answer and a str
    # answer are parsed differently.
    assert program_key(turbo, dspy.Predict("question -> answer: int")) != program_key(turbo, dspy.Predict("question -> answer: str"))


def test_lm_credentials_are_not_part_of_the_key_and_parameters_are(make_turbo):
    turbo = make_turbo()

    def key(**kwargs):
        lm = dspy.LM("openai/gpt-4o-mini", api_base="http://127.0.0.1:9/v1", **kwargs)
        with dspy.context(lm=lm):
            return program_key(turbo, dspy.Predict("q -> a"))

    assert key(api_key="A", aws_secret_access_key="A", extra_headers={"Authorization": "A"}) == \
        key(api_key="B", aws_secret_access_key="B", extra_headers={"Authorization": "B"})
    assert key(temperature=0.0) != key(temperature=0.5)


# -- which programs the item cache serves by itself ------------------------------------------------


class Subclassed(dspy.Predict):
    pass


class Verdict(pydantic.BaseModel):
    ok: bool


class OwnAdapter(dspy.ChatAdapter):
    pass


class Callback(dspy.utils.callback.BaseCallback):
    pass


def test_programs_made_of_dspys_own_code_are_library_programs(lm):
    assert library_program(dspy.Predict("question -> answer")) is None
    assert library_program(dspy.ChainOfThought("question -> answer: int")) is None
    assert library_program(dspy.Predict("question, context: list[str] -> answer: Literal['a', 'b']")) is None
    with dspy.context(adapter=dspy.JSONAdapter()):
        assert library_program(dspy.Predict("question -> answer")) is None


@pytest.mark.parametrize("make", [
    lambda: Up(),                                                       # a forward of its own
    lambda: Subclassed("question -> answer"),                           # a subclass of DSPy's
    lambda: dspy.Predict(dspy.Signature("question -> verdict", "").with_updated_fields("verdict", type_=Verdict)),
    lambda: dspy.Predict("question -> answer", callbacks=[Callback()]),
    lambda: (lambda question: question),
], ids=["own-module", "subclass", "own-type", "callbacks", "function"])
def test_other_programs_are_not(lm, make):
    assert library_program(make()) is not None


@pytest.mark.parametrize("context", [
    {"adapter": OwnAdapter()}, {"callbacks": [Callback()]}, {"trace": []}, {"track_usage": True},
], ids=["own-adapter", "callbacks", "optimizer-trace", "usage"])
def test_nor_is_a_library_program_in_a_context_it_would_not_see_on_a_hit(lm, context):
    with dspy.context(**context):
        assert library_program(dspy.Predict("question -> answer")) is not None


def test_nor_with_an_lm_of_the_programs_own(lm):
    class OwnLM(dspy.BaseLM):
        def forward(self, *args, **kwargs):
            raise NotImplementedError

    with dspy.context(lm=OwnLM("m")):
        assert library_program(dspy.Predict("question -> answer")) is not None


@pytest.mark.parametrize("program", [dspy.Predict("question -> answer"), dspy.ChainOfThought("question -> answer")],
                         ids=["Predict", "ChainOfThought"])
def test_a_library_program_is_item_cached_by_default(make_turbo, lm, program):
    turbo = make_turbo()
    examples = [{"question": f"q{i}"} for i in range(8)]
    first = turbo.batch(program, examples)
    calls = lm.engine.calls
    turbo.reset_stats()
    again = turbo.batch(program, examples)
    assert lm.engine.calls == calls and [r.answer for r in again] == [r.answer for r in first]
    assert turbo.stats()["batches"]["hits"] == 8 and turbo.stats()["batches"]["executed"] == 0


# -- a code edit never serves an old answer --------------------------------------------------------

PROGRAM_SOURCE = '''
import dspy
import pydantic

SUFFIX = {suffix!r}


def decorate(answer):
    return answer.upper() + SUFFIX {helper}


class Shout(dspy.Module):
    def __init__(self):
        super().__init__()
        self.predict = dspy.Predict("question -> answer")

    def forward(self, question):
        return dspy.Prediction(answer=decorate(self.predict(question=question).answer))
'''


@pytest.fixture
def edited_program(tmp_path, monkeypatch):
    """Write the program's module, import it; ``edit(**changes)`` rewrites and reloads it, as
    a code change and a re-run do. Returns (load, edit)."""
    import importlib
    import sys

    name = f"shout_{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{name}.py"
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # an edit in the same second must be seen

    def write(suffix="!", helper=""):
        path.write_text(PROGRAM_SOURCE.format(suffix=suffix, helper=helper))
        importlib.invalidate_caches()
        if name in sys.modules:
            return importlib.reload(sys.modules[name])
        return importlib.import_module(name)

    yield write
    sys.modules.pop(name, None)


@pytest.mark.parametrize("change", [{"suffix": "?"}, {"helper": "+ '#'"}], ids=["module-constant", "helper"])
@pytest.mark.parametrize("item_cache", [None, True], ids=["default", "item_cache=True"])
@pytest.mark.requires_plugin("file")
def test_after_an_edit_a_batch_returns_what_the_program_returns_now(tmp_path, edited_program, lm, change, item_cache):
    config = {"cache": {"tiers": [{"type": "file", "directory": str(tmp_path / "cache")}]}}
    examples = [{"question": f"q{i}"} for i in range(4)]
    module = edited_program()
    before = dspy_turbo.load(config)
    try:
        old = [r.answer for r in before.batch(module.Shout(), examples, item_cache=item_cache)]
    finally:
        before.close()
    module = edited_program(**change)
    after = dspy_turbo.load(config)  # a new run on the same file tier
    try:
        program = module.Shout()
        new = [r.answer for r in after.batch(program, examples, item_cache=item_cache)]
        direct = [program(**e).answer for e in examples]
    finally:
        after.close()
    assert new == direct and new != old


def test_a_cached_module_of_a_program_of_its_own_runs_it(make_turbo, edited_program, lm):
    turbo = make_turbo()
    qa = dspy_turbo.CachedModule(edited_program().Shout(), turbo=turbo)
    assert qa(question="q").answer.endswith("!")
    qa = dspy_turbo.CachedModule(edited_program(suffix="?").Shout(), turbo=turbo)
    assert qa(question="q").answer.endswith("?")  # not the entry of the old code
    calls = lm.engine.calls
    assert qa(question="q").answer.endswith("?") and lm.engine.calls == calls  # its LM request was a hit


def test_a_cached_module_of_a_library_program_caches_its_results(make_turbo, lm):
    turbo = make_turbo()
    qa = dspy_turbo.CachedModule(dspy.Predict("question -> answer"), turbo=turbo)
    first = qa(question="q")
    turbo.reset_stats()
    assert qa(question="q").answer == first.answer
    assert turbo.stats()["hits_total"] == 1  # the item, not its LM request
