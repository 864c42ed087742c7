"""The semantic cache's guards: cheap reasons why a close candidate still asks something else.

A sentence vector says two questions are about the same thing, not that they ask the
same thing: "the maximum dose" and "the minimum dose" are 0.95 apart in MiniLM,
"convert 5 miles to km" and "convert 5 km to miles" 0.98. Each guard reads both texts
(no model: a regular expression, set operations and a word table) and names the
difference that makes a candidate a miss, however close the vectors:

- ``number``: the numbers differ (digits and number words: "37 weeks" / "35 weeks").
- ``date``: the date words differ ("in May" / "in June", "last week" / "last month").
- ``negation``: one text is negated and the other not, by a word ("not", "never",
  "without", "-n't") or by an affix on a word the other text has plain ("possible" /
  "impossible", "able" / "unable", "toxic" / "non-toxic", "gluten" / "gluten-free").
- ``antonym``: the texts take opposite sides of a pair in the curated table
  (``data/antonyms.json``: "maximum" / "minimum", "before" / "after", "buy" / "sell",
  "turn on" / "turn off"), or a stem carries opposite prefixes or suffixes
  ("overestimate" / "underestimate", "careful" / "careless", "employer" / "employee").
  A text that uses both sides ("pros and cons") compares nothing for that pair.
- ``entity``: a name in one text (a capitalised word that is not a sentence opener, or an
  acronym) is missing from the other ("France" / "Spain").
- ``order``: two words both texts share swap places around the same relation word
  ("5 miles *to* km" / "5 km *to* miles", "Germany *invade* France" / "France *invade*
  Germany", "Python faster *than* Java"); around "and", "or", "vs" or "with" order is
  free ("Python and Java" / "Java and Python").

What they cannot see: a changed word that is not in the table and not an affix of the
other ("cook salmon" / "cook chicken": the verifier's business), synonyms of an opposite
("lower" / "reduce" are one side; "drop the price" / "raise the price" is caught, "slash
the price" is not), negation by scope ("not only X" reads as a negation), a relation
said with other words ("Was France invaded by Germany?" is served "Did Germany invade
France?", rightly; "Did France invade Germany?" is not). ``bench/semantic_eval.py``
measures each class on a corpus of near-duplicates (``bench/data/near_duplicates.json``).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*|\d+(?:[.,:/]\d+)*")
_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000, "million": 10**6,
    "billion": 10**9, "trillion": 10**12, "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5,
    "half": 0.5, "double": 2, "twice": 2, "triple": 3, "dozen": 12,
}
_DATE_WORDS = {
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november",
    "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "monday",
    "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "today", "tomorrow", "yesterday", "tonight",
    "weekend", "spring", "summer", "autumn", "fall", "winter", "morning", "evening", "night", "noon", "midnight",
    "before", "after", "since", "until", "ago", "last", "next", "past", "future", "current", "now",
}
# May and March are also ordinary words; count them as dates only when capitalised.
_AMBIGUOUS_DATE = {"may", "march", "fall", "before", "after", "since", "until", "now", "past", "next", "last"}
# "last week" / "last month": a period is a date only after a word that places it in time.
_DATE_MODIFIERS = {"last": "last", "past": "last", "previous": "last", "next": "next", "coming": "next", "this": "this"}
_DATE_PERIODS = {"hour", "day", "week", "weekend", "month", "quarter", "year", "decade", "century", "season", "night",
                 "morning", "evening", "summer", "winter", "spring", "autumn", "semester", "term"}
_NEGATIONS = {"not", "no", "never", "none", "nobody", "nothing", "nowhere", "neither", "nor", "cannot", "without",
              "isn't", "aren't", "wasn't", "weren't", "don't", "doesn't", "didn't", "won't", "wouldn't", "can't",
              "couldn't", "shouldn't", "haven't", "hasn't", "hadn't", "mustn't", "needn't", "ain't", "dont", "doesnt",
              "didnt", "cant", "wont", "isnt", "arent", "shouldnt", "couldnt", "wouldnt", "lack", "lacks", "except"}
# Capitalised words that are not names: sentence openers and question words.
_NOT_NAMES = {
    "i", "a", "an", "the", "what", "what's", "whats", "how", "how's", "why", "who", "who's", "whom", "whose", "which",
    "when", "where", "where's", "is", "are", "was", "were", "do", "does", "did", "can", "could", "should", "would",
    "will", "shall", "may", "might", "must", "have", "has", "had", "if", "in", "on", "at", "to", "for", "of", "and",
    "or", "but", "my", "your", "our", "their", "his", "her", "its", "it", "it's", "this", "that", "these", "those",
    "there", "here", "please", "tell", "explain", "describe", "give", "list", "name", "find", "i'm", "i've", "im",
    "we", "you", "they", "he", "she", "me", "us", "them", "be", "been", "being", "as", "by", "with", "from", "about",
    "some", "any", "all", "most", "best", "good", "ok", "okay", "hi", "hello", "hey", "yes", "so", "also", "then",
    "now", "just", "get", "make", "let", "want", "need", "know", "think", "one", "s", "t", "q", "a:",
}
# -- order: which words may trade places, and around which words order is free
_FUNCTION_WORDS = {
    "i", "a", "an", "the", "what", "what's", "whats", "how", "how's", "why", "who", "who's", "whom", "whose", "which",
    "when", "where", "where's", "is", "are", "was", "were", "am", "do", "does", "did", "can", "could", "should",
    "would", "will", "shall", "may", "might", "must", "have", "has", "had", "if", "in", "on", "at", "to", "for", "of",
    "and", "or", "but", "my", "your", "our", "their", "his", "her", "its", "it", "it's", "this", "that", "these",
    "those", "there", "here", "please", "i'm", "i've", "im", "we", "you", "they", "he", "she", "me", "us", "them",
    "be", "been", "being", "as", "by", "with", "from", "about", "some", "any", "all", "so", "also", "then", "just",
    "than", "into", "onto", "over", "under", "per", "via", "vs", "versus", "v", "not", "no", "more", "less", "much",
    "many", "very", "too", "really", "there's", "out", "up", "off", "own", "each", "other", "another", "such", "same",
    "can't", "don't", "doesn't", "isn't", "i'd", "you're", "way", "ways", "thing", "things", "get", "make",
}
# Shared between two swapped words, these say little ("sort a list in descending order in Python" /
# "sort a Python list in descending order"): only the very same words between both count.
_WEAK = {"a", "an", "the", "in", "of", "on", "at", "for", "by", "is", "are", "was", "were", "be", "do", "does", "did"}
_SYMMETRIC = {"and", "or", "nor", "vs", "versus", "v", "with", "&", "plus", "between", "both", "either", "neither"}
_FOLD = {"into": "to", "onto": "to", "toward": "to", "towards": "to", "an": "a", "feet": "foot", "teeth": "tooth",
         "men": "man", "women": "woman", "children": "child", "people": "person", "mice": "mouse", "geese": "goose"}
_MAX_SPAN = 6  # a relation is read between words at most this many tokens apart


@dataclass(frozen=True)
class Features:
    numbers: frozenset[str]
    dates: frozenset[str]
    negations: int
    names: frozenset[str]
    words: frozenset[str]
    sides: frozenset[tuple[int, int]] = frozenset()
    """``(entry, side)`` of each opposites-table entry the text uses."""
    tokens: tuple[str, ...] = ()
    """The words in order, lower case, plurals folded ("miles" -> "mile"): what the order guard reads."""
    salient: frozenset[str] = frozenset()
    """The tokens that may trade places: content words, numbers and acronyms ("US"), not "the" or "to"."""
    negated: frozenset[str] = frozenset()
    """Words this text negates by an affix: "possible" for "impossible", "gluten" for "gluten-free"."""
    affixes: frozenset[tuple[int, int, str]] = frozenset()
    """``(pair, side, stem)`` of each word made of a stem and one of an opposite pair of affixes
    ("overestimate": the over/under pair, side 0, "estimate")."""


# -- the word table (data/antonyms.json) -------------------------------------------------------


@dataclass(frozen=True)
class Affixes:
    of: dict[str, tuple[tuple[int, int], ...]]
    """affix -> ``((pair, side), ...)`` (empty for a negating affix)."""
    lengths: tuple[int, ...]
    """The lengths of the affixes: a word is split at these only."""


@dataclass(frozen=True)
class Table:
    """The word table, indexed for lookups."""

    forms: dict[str, tuple[tuple[int, int], ...]]
    """A form (one word, or two joined by a space) -> every ``(entry, side)`` it stands for."""
    negating_prefixes: Affixes
    not_negations: frozenset[str]
    negating_suffixes: Affixes
    opposite_prefixes: Affixes
    opposite_suffixes: Affixes


@functools.cache
def table() -> Table:
    """The opposites table shipped with the package, parsed once."""
    raw = json.loads(resources.files("dspy_turbo_faiss").joinpath("data/antonyms.json").read_text(encoding="utf-8"))
    forms: dict[str, list[tuple[int, int]]] = {}
    for entry, line in enumerate(raw["opposites"]):
        sides = line.split("|")
        if len(sides) != 2:
            raise ValueError(f"dspy_turbo_faiss/data/antonyms.json: opposites[{entry}] needs exactly one '|': {line!r}")
        for side, forms_text in enumerate(sides):
            for form in forms_text.split(","):
                form = " ".join(form.lower().split())
                if form:
                    forms.setdefault(form, []).append((entry, side))
    return Table({k: tuple(v) for k, v in forms.items()}, _affix_index({a: () for a in raw["negating_prefixes"]}),
                 frozenset(raw["not_negations"]), _affix_index({a: () for a in raw["negating_suffixes"]}),
                 _opposite_index(raw["opposite_prefixes"]), _opposite_index(raw["opposite_suffixes"]))


def _opposite_index(pairs: list[list[str]]) -> Affixes:
    index: dict[str, list[tuple[int, int]]] = {}
    for pair, affixes in enumerate(pairs):
        if len(affixes) != 2:
            raise ValueError(f"dspy_turbo_faiss/data/antonyms.json: an opposite affix pair needs two affixes: {affixes!r}")
        for side, affix in enumerate(affixes):
            index.setdefault(affix.lower(), []).append((pair, side))
    return _affix_index({k: tuple(v) for k, v in index.items()})


def _affix_index(index: dict[str, tuple[tuple[int, int], ...]]) -> Affixes:
    return Affixes(index, tuple(sorted({len(k) for k in index})))


# -- reading a text ----------------------------------------------------------------------------


def _number(token: str) -> str | None:
    if token[0].isdigit():
        return token.replace(",", "")
    value = _NUMBER_WORDS.get(token.lower())
    return None if value is None else format(value, "g")


def _fold(word: str) -> str:
    """One form for the order guard: plurals folded, "into" as "to", "an" as "a"."""
    if word in _FOLD:
        return _FOLD[word]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is", "'s")):
        return word[:-1]
    return word


def features(text: str) -> Features:
    """What the guards compare: numbers (digits and number words), date words, negations,
    names (a cheap, model-free reading: a capitalised word that is not a sentence opener or a
    question word, or an acronym), the sides of the opposites table the text uses, and its
    words in order. Names are compared against the other text's words, so a lower-case
    "france" still matches "France"."""
    numbers, dates, names, words, negations = set(), set(), set(), set(), 0
    lowers: list[str] = []
    folded: list[str] = []
    salient: set[str] = set()
    sentence_start = True
    for match in _WORD.finditer(text):
        token = match.group(0)
        lower = token.lower().strip("'-")
        if lower.endswith("'s"):
            lower = lower[:-2]
        if not lower:
            continue
        words.add(lower)
        lowers.append(lower)
        acronym = token.isupper() and len(token) > 1
        folded.append(lower if acronym else _fold(lower))  # "HTTPS" is no plural
        if acronym or folded[-1] not in _FUNCTION_WORDS:
            salient.add(folded[-1])
        number = _number(token)
        if number is not None:
            numbers.add(number)
        if lower in _DATE_WORDS and (lower not in _AMBIGUOUS_DATE or (token[0].isupper() and not sentence_start)):
            dates.add(lower)
        if lower in _NEGATIONS or lower.endswith("n't"):
            negations += 1
        if token[0].isupper() and lower not in _NOT_NAMES and number is None and lower not in _DATE_WORDS:
            if not sentence_start or token.isupper() and len(token) > 1:
                names.add(lower)
        sentence_start = _ends_sentence(text, match.end())
    t = table()
    forms = t.forms
    sides, negated, affixes = set(), set(), set()
    for i, lower in enumerate(lowers):
        sides.update(forms.get(lower, ()))
        negated.update(_negated(lower, t))
        affixes.update(_affixes(lower, t))
        if i:
            sides.update(forms.get(f"{lowers[i - 1]} {lower}", ()))
            modifier = _DATE_MODIFIERS.get(lowers[i - 1])
            if modifier and _fold(lower) in _DATE_PERIODS:
                dates.add(f"{modifier} {_fold(lower)}")
    return Features(frozenset(numbers), frozenset(dates), negations, frozenset(names), frozenset(words),
                    frozenset(sides), tuple(folded), frozenset(salient),
                    frozenset(negated), frozenset(affixes))


def _ends_sentence(text: str, end: int) -> bool:
    rest = text[end:end + 4].lstrip(" )\"'")
    return rest[:1] in (".", "?", "!", ":", "\n") and rest != ""


def _named_in(name: str, words: frozenset[str]) -> bool:
    if name in words:
        return True
    stem = name[: max(4, len(name) - 3)]  # "Australia" ~ "Australian", "Paris" ~ "Parisian"
    return len(name) >= 4 and any(w.startswith(stem) for w in words if len(w) >= 4)


# -- the checks --------------------------------------------------------------------------------


def _negated(word: str, t: Table) -> list[str]:
    """The words ``word`` is the negation of by an affix ("impossible" -> "possible")."""
    if word in t.not_negations:
        return []
    return [base for prefix, base in _split_prefix(word, t.negating_prefixes)
            if len(base) >= (6 if prefix == "a" else 4)] + \
           [stem for _, stem in _split_suffix(word, t.negating_suffixes) if len(stem) >= 3]


def _affixes(word: str, t: Table) -> list[tuple[int, int, str]]:
    """``(pair, side, stem)`` for each opposite prefix or suffix pair ``word`` is made with."""
    keys = [(pair, side, stem) for prefix, stem in _split_prefix(word, t.opposite_prefixes) if len(stem) >= 3
            for pair, side in t.opposite_prefixes.of[prefix]]
    keys += [(-1 - pair, side, stem) for suffix, stem in _split_suffix(word, t.opposite_suffixes) if len(stem) >= 3
             for pair, side in t.opposite_suffixes.of[suffix]]
    return keys


def _split_prefix(word: str, affixes: Affixes) -> list[tuple[str, str]]:
    return [(word[:n], word[n:]) for n in affixes.lengths if len(word) > n and word[:n] in affixes.of]


def _split_suffix(word: str, affixes: Affixes) -> list[tuple[str, str]]:
    return [(word[-n:], word[:-n]) for n in affixes.lengths if len(word) > n and word[-n:] in affixes.of]


def _negates(one: Features, two: Features) -> bool:
    """``two`` negates by an affix a word that ``one`` has plain (and ``two`` does not)."""
    return not (two.negated - one.negated).isdisjoint(one.words - two.words)


def _opposite_affix(query: Features, cached: Features) -> bool:
    """A stem with one affix of an opposite pair in one text, the other affix in the other
    ("overestimate" / "underestimate", "upload" / "download", "careful" / "careless")."""
    only_q, only_c = query.affixes - cached.affixes, cached.affixes - query.affixes
    return any((pair, 1 - side, stem) in only_c for pair, side, stem in only_q)


def _opposite_sides(query: frozenset[tuple[int, int]], cached: frozenset[tuple[int, int]]) -> bool:
    """An entry of the table whose sides the two texts use differently."""
    if not query or not cached:
        return False
    entries = {e for e, _ in query} & {e for e, _ in cached}
    for entry in entries:
        q = {s for e, s in query if e == entry}
        c = {s for e, s in cached if e == entry}
        if q != c:  # opposite sides, or both sides against one ("big dog, small flat" / "small dog")
            return True
    return False


def _swapped(a: Features, b: Features) -> bool:
    """Two salient words that occur once in each text trade places around the same relation: a
    shared word between them ("to", "than", "invade"), or the very same weak words ("in", "a")."""
    pos_a = _single_positions(a.tokens, a.salient)
    pos_b = _single_positions(b.tokens, b.salient)
    shared = [w for w in pos_a if w in pos_b]
    if len(shared) < 2:
        return False
    shared.sort(key=pos_a.__getitem__)
    for i, x in enumerate(shared):
        for y in shared[i + 1:]:
            ax, ay, bx, by = pos_a[x], pos_a[y], pos_b[x], pos_b[y]
            if ay - ax > _MAX_SPAN + 1:
                break  # sorted by position in a: the later ones are farther still
            if by > bx or bx - by > _MAX_SPAN + 1:
                continue
            span_a, span_b = a.tokens[ax + 1:ay], b.tokens[by + 1:bx]
            if _SYMMETRIC.intersection(span_a) or _SYMMETRIC.intersection(span_b):
                continue
            if (set(span_a) & set(span_b)) - _WEAK or (span_a and span_a == span_b):
                return True
    return False


def _single_positions(tokens: tuple[str, ...], salient: frozenset[str]) -> dict[str, int]:
    seen: dict[str, int] = {}
    twice = set()
    for i, word in enumerate(tokens):
        if word in seen:
            twice.add(word)
        else:
            seen[word] = i
    return {w: i for w, i in seen.items() if w not in twice and w in salient}


def guard_reason(query: Features, cached: Features, guards: Any = None) -> str | None:
    """Why a candidate must not be served for this query (``number``, ``date``,
    ``negation``, ``antonym``, ``entity``, ``order``), or None when every enabled guard passes.
    ``guards`` is a :class:`~dspy_turbo_faiss.feature.SemanticGuards` (None: all on)."""
    on = (lambda name: getattr(guards, name, True)) if guards is not None else (lambda name: True)
    if on("numbers") and query.numbers != cached.numbers:
        return "number"
    if on("dates") and query.dates != cached.dates:
        return "date"
    if on("negations"):
        if (query.negations > 0) != (cached.negations > 0):
            return "negation"
        if (cached.negated and _negates(query, cached)) or (query.negated and _negates(cached, query)):
            return "negation"
    if on("antonyms"):
        if _opposite_sides(query.sides, cached.sides):
            return "antonym"
        if query.affixes and cached.affixes and _opposite_affix(query, cached):
            return "antonym"
    if on("entities"):
        if any(not _named_in(n, cached.words) for n in query.names) or any(not _named_in(n, query.words) for n in cached.names):
            return "entity"
    if on("order") and query.tokens != cached.tokens and _swapped(query, cached):
        return "order"
    return None
