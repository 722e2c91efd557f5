"""sonoedge.runtime.config: the TOML writer reads back what it wrote, whatever the strings hold."""
from __future__ import annotations

import math
import random
import sys

import pytest

from sonoedge.runtime.config import dumps_toml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

NASTY = ['"', "'", "\\", '\\"', '"""', "'''", "\n", "\r\n", "\t", "\x00", "\x1f", "\x7f", "\b\f", "\u2028", "é", "日本",
         "\U0001F600", "\ufeff", "#", "=", "[a]", "a.b", " ", "", "key with space", "\\u0041", "${HOME}", "\x85"]
# every code point class: controls, ASCII, Latin-1, BMP, astral; surrogates are not text TOML can hold
ALPHABET = [chr(c) for c in range(0x00, 0x100)] + ["\u2028", "\uffff", "\ue000", "\U0001F600", "\U0010FFFF"]


def _random_text(rng: random.Random) -> str:
    parts = [rng.choice(NASTY) if rng.random() < 0.3 else rng.choice(ALPHABET) for _ in range(rng.randrange(0, 12))]
    return "".join(parts)


def _random_table(rng: random.Random, depth: int = 0) -> dict:
    table = {}
    for _ in range(rng.randrange(1, 6)):
        key = _random_text(rng)
        kind = rng.randrange(7 if depth < 2 else 6)
        if kind == 0:
            table[key] = _random_text(rng)
        elif kind == 1:
            table[key] = rng.randrange(-(2**63), 2**63)
        elif kind == 2:
            table[key] = rng.choice([0.0, -0.0, 1e300, -1e-300, 0.1, math.inf, -math.inf, rng.uniform(-1e6, 1e6)])
        elif kind == 3:
            table[key] = rng.random() < 0.5
        elif kind == 4:
            table[key] = [_random_text(rng) for _ in range(rng.randrange(0, 4))]
        elif kind == 5:
            table[key] = [rng.randrange(-99, 99) for _ in range(rng.randrange(0, 4))]
        else:
            table[key] = _random_table(rng, depth + 1)
    return table


@pytest.mark.parametrize("seed", range(300))
def test_written_toml_reads_back_equal(seed):
    data = _random_table(random.Random(seed))
    assert tomllib.loads(dumps_toml(data)) == data


@pytest.mark.parametrize("text", NASTY)
def test_each_nasty_string_as_key_value_and_table_name(text):
    data = {text: text, "t": {text: [text, text]}, text + "x": {"k": text}}
    assert tomllib.loads(dumps_toml(data)) == data


def test_nan_none_and_unwritable_values():
    back = tomllib.loads(dumps_toml({"a": math.nan, "b": None, "c": 1}))
    assert math.isnan(back["a"]) and "b" not in back and back["c"] == 1  # None: absent means default
    for bad in ("\ud800", 2**64):
        with pytest.raises(TypeError, match="cannot write"):
            dumps_toml({"v": bad})
