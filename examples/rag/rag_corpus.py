"""A generated local corpus for the RAG example: fictional towns, eight passages each.

Deterministic (seeded), so every run and every machine gets the same passages and the
same questions; the facts are invented, so a real model can only answer them from the
retrieved context.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

_START = ["Vel", "Dur", "Kor", "Ash", "Bel", "Mar", "Tor", "Eld", "Wyn", "Cal", "Ost", "Fen", "Gal", "Hav", "Ily", "Jor",
          "Lun", "Nor", "Pel", "Quar", "Ros", "Sel", "Tam", "Ulm", "Vor", "Yar", "Zen", "Bram", "Cor", "Dun"]
_END = ["mora", "hal", "wick", "dale", "ford", "mere", "stead", "holm", "bury", "gate", "ton", "vale", "crest", "haven",
        "reach", "moor", "fall", "wood"]
_PROVINCES = ["Aldmark", "Brenmoor", "Calvera", "Drossland", "Estrel", "Fayholt", "Gorran", "Heshwick"]
_RIVERS = ["Ambril", "Sorrow", "Tessel", "Kaldra", "Vey", "Olun", "Marrow", "Pike"]
_TRADES = ["copper mining", "wool weaving", "glassblowing", "salt trading", "shipbuilding", "apple orchards",
           "clockmaking", "paper milling", "cheese making", "timber"]
_FESTIVALS = ["the Lantern Night", "the Harvest of Bells", "the River Regatta", "the Frost Fair", "the Kite Week",
              "the Midsummer Masks"]
_LANDMARKS = ["a seven-arched stone bridge", "a leaning bell tower", "a sunken amphitheatre", "a glass observatory",
              "a fortified granary", "a spiral library"]
_CLIMATES = ["mild and wet", "cold and windy", "dry and sunny", "foggy in winter and warm in summer"]


@dataclass(frozen=True)
class Town:
    name: str
    province: str
    river: str
    founded: int
    founder: str
    population: int
    population_1900: int
    trade: str
    festival: str
    landmark: str
    climate: str
    rail: int


def towns(n: int, seed: int = 7) -> list[Town]:
    rng = random.Random(seed)
    names = sorted({s + e for s in _START for e in _END})
    rng.shuffle(names)
    out = []
    for name in names[:n]:
        population = rng.randrange(800, 250_000)
        out.append(Town(name, rng.choice(_PROVINCES), rng.choice(_RIVERS), rng.randrange(900, 1850),
                        f"{rng.choice(['Lady', 'Lord', 'Abbot', 'Captain', 'Mayor'])} {rng.choice(names)[:5].title()}",
                        population, max(100, int(population * rng.uniform(0.1, 1.4))), rng.choice(_TRADES),
                        rng.choice(_FESTIVALS), rng.choice(_LANDMARKS), rng.choice(_CLIMATES), rng.randrange(1840, 1990)))
    return out


def passages(town_list: list[Town]) -> list[str]:
    """Eight passages per town, one aspect each."""
    out = []
    for t in town_list:
        out += [
            f"{t.name} is a town in the province of {t.province}, on the banks of the river {t.river}.",
            f"{t.name} was founded in {t.founded} by {t.founder}, who built its first market hall.",
            f"In the latest census {t.name} had a population of {t.population:,}; in 1900 it had {t.population_1900:,} inhabitants.",
            f"The economy of {t.name} has long rested on {t.trade}, which still employs many of its residents.",
            f"Every year {t.name} celebrates {t.festival}, which draws visitors from across {t.province}.",
            f"The best-known landmark of {t.name} is {t.landmark}, restored after a fire in {t.founded + 311}.",
            f"The climate of {t.name} is {t.climate}, which shaped the steep roofs of its old quarter.",
            f"The railway reached {t.name} in {t.rail}, linking it to the other towns on the {t.river}.",
        ]
    return out


def questions(town_list: list[Town], n: int, seed: int = 11) -> list[str]:
    """A mix of easy lookups and multi-step questions over the corpus."""
    rng = random.Random(seed)
    easy = [
        "When was {a} founded?", "Which river flows through {a}?", "What festival does {a} celebrate?",
        "What is the population of {a}?", "In which province is {a}?", "When did the railway reach {a}?",
    ]
    hard = [
        "Compare the population growth of {a} and {b} since 1900 and explain step by step which grew faster.",
        "Analyze why the economy of {a} differs from that of {b}, considering their rivers and climate.",
        "How many years passed between the founding of {a} and the arrival of its railway? Derive it step by step.",
    ]
    out = []
    for i in range(n):
        a, b = rng.sample(town_list, 2)
        template = rng.choice(hard if i % 3 == 2 else easy)
        out.append(template.format(a=a.name, b=b.name))
    return out
