"""Mutating valid input files for the property-based reader tests (tests/test_malformed_inputs.py).

`mutate(data, doc)` draws 1-3 edits of a JSON-like document with hypothesis: walk from the top to
a random place (the first step with probability 15/16, then 3/4), then replace the value there by null,
a string, a list, a dict, NaN, +-inf, 1e308, a huge integer, a negative number or a bool, delete
the key, truncate the list or duplicate an entry. Each edit is `note`d, so a failing example
prints the edits that made it.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

from hypothesis import note
from hypothesis import strategies as st

VALUES: list[Any] = [
    None,
    "x",
    "",
    [],
    [1, 2],
    {},
    {"a": 1},
    float("nan"),
    float("inf"),
    float("-inf"),
    1e308,
    -1e308,
    10**400,
    -1,
    -7.5,
    0,
    True,
    "12",
]
EDIT_LOG: list[str] = []  # the edits of the last mutate()
EDITS = ("replace", "replace", "replace", "negate", "delete", "truncate", "duplicate")


class Draws:
    """Choices drawn by hypothesis (`st.data()`), or by a random.Random for scripts."""

    def __init__(self, source: Any):
        self.source = source

    def integer(self, low: int, high: int) -> int:
        if isinstance(self.source, st.DataObject):
            return self.source.draw(st.integers(low, high))
        return self.source.randint(low, high)

    def pick(self, options: list) -> Any:
        return options[self.integer(0, len(options) - 1)]


def mutate(source: Any, doc: Any, max_edits: int = 3) -> Any:
    """A deep copy of `doc` with 1..max_edits edits drawn from `source` (hypothesis' st.data()
    or a random.Random)."""
    data = Draws(source)
    EDIT_LOG.clear()
    doc = copy.deepcopy(doc)
    for _ in range(data.integer(1, max_edits)):
        doc = _edit(data, doc)
    return doc


def _edit(data: Draws, doc: Any) -> Any:
    path: list[Any] = []
    parent, key, node = None, None, doc
    while isinstance(node, (dict, list)) and node and data.integer(0, 15 if parent is None else 3) > 0:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = data.pick(keys)
        path.append(key)
        parent, node = node, node[key]
    edit = data.pick(EDITS)
    where = "".join(f"[{k!r}]" for k in path) or "<top>"
    if edit == "replace" or (edit == "negate" and not _is_number(node)):
        new = copy.deepcopy(data.pick(VALUES))
    elif edit == "negate":
        new = -node - 1
    elif edit == "delete" and parent is not None:
        _note(f"delete {where}")
        del parent[key]
        return doc
    elif edit == "truncate" and isinstance(node, list) and node:
        new = node[: data.integer(0, len(node) - 1)]
    elif edit == "duplicate" and isinstance(parent, list):
        _note(f"duplicate {where}")
        parent.insert(key, copy.deepcopy(node))
        return doc
    else:
        new = None
    _note(f"{where} = {_short(new)}")
    if parent is None:
        return new
    parent[key] = new
    return doc


def _note(text: str) -> None:
    EDIT_LOG.append(text)
    with contextlib.suppress(Exception):  # outside a hypothesis test: nothing to note into
        note(text)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 1e300


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."
