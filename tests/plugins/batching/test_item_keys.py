"""Program-level item keys: two programs that can answer differently never share a key."""

import functools

import dspy
import pytest

import dspy_turbo
from dspy_turbo.batching import program_key
from dspy_turbo.programs import Unkeyable, _sub_modules


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


def test_closures_partials_and_callable_objects_are_not_keyed(turbo):
    def make(style):
        return lambda question: f"{style}:{question}"

    for program in (make("A"), functools.partial(styled, style="A")):
        with pytest.raises(Unkeyable):
            program_key(turbo, program)


def test_an_unkeyable_program_still_batches_without_item_cache(turbo):
    def make(style):
        return lambda question: f"{style}:{question}"

    examples = [{"question": "q1"}, {"question": "q2"}]
    assert turbo.batch(make("A"), examples) == ["A:q1", "A:q2"]
    assert turbo.batch(make("B"), examples) == ["B:q1", "B:q2"]  # not A's cached results


def test_an_lm_with_cache_off_is_not_item_cached(make_turbo):
    lm = dspy_turbo.offline.offline_lm("openai/gpt-4o-mini", cache=False)
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
