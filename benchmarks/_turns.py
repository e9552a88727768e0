"""Figures measured in turns, chunk by chunk, within each repetition.

:func:`_harness.run_cases` interleaves whole cases: on a shared machine a neighbour's
burst of a second or two still favours whichever case ran then, and only many
repetitions even it out. :class:`Turns` goes further for the two sides of a ratio:
within one repetition each side runs in chunks (say 100 calls), the chunks of all sides
spread evenly over the repetition and taking turns, so both sides see the same
conditions. It plugs into ``run_cases``: :meth:`Turns.cases` gives one case per side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List

from _harness import Case


def _nothing(*_: object) -> None:
    return None


@dataclass
class Side:
    """One figure: ``chunk()`` runs ``items`` items and returns the seconds they took;
    ``chunks`` of them make a repetition. ``begin(total)`` (untimed) runs before the
    first chunk with the repetition's item count, ``end()`` (untimed) after the last."""

    name: str
    chunk: Callable[[], float]
    items: int
    chunks: int
    begin: Callable[[int], object] = _nothing
    end: Callable[[], object] = _nothing


class Turns:
    """Sides measured together, their chunks taking turns (see the module)."""

    def __init__(self, *sides: Side) -> None:
        self.sides = sides
        self.last: Dict[str, float] = {}
        # chunk j of a side with n chunks runs at (j + 0.5) / n of the repetition
        slots = [((j + 0.5) / s.chunks, k) for k, s in enumerate(sides) for j in range(s.chunks)]
        self.order = [k for _, k in sorted(slots)]

    def run(self) -> Dict[str, float]:
        """One repetition: items per second of each side."""
        spent = [0.0] * len(self.sides)
        for s in self.sides:
            s.begin(s.items * s.chunks)
        chunks = [s.chunk for s in self.sides]
        for k in self.order:
            spent[k] += chunks[k]()
        for s in self.sides:
            s.end()
        self.last = {s.name: s.items * s.chunks / t for s, t in zip(self.sides, spent, strict=True)}
        return self.last

    def cases(self) -> List[Case]:
        """``run_cases`` cases: the first runs a repetition and returns its side's rate,
        the others the rates their sides had in that repetition."""
        first, *others = self.sides
        cases: List[Case] = [(first.name, lambda: self.run()[first.name])]
        cases += [(s.name, lambda name=s.name: self.last[name]) for s in others]
        return cases
