"""Citation markers: ``[n]``, or several passages at once as ``[n, m]`` / ``[n; m]``.

The one definition of a marker, for everything that writes, reads, strips or
renders them (verification, follow-up rewriting, the CLI, the app).
"""

from __future__ import annotations

import re
from collections.abc import Callable

MARKER = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
"""One marker; group 1 holds its numbers (``"2, 3"``)."""
_SEPARATOR = re.compile(r"\s*[,;]\s*")
_MARKER_AND_SPACE = re.compile(r"\s*" + MARKER.pattern)


def marker_numbers(match: re.Match[str]) -> list[int]:
    """The numbers of one ``MARKER`` match, as written: ``[2, 3]`` → ``[2, 3]``."""
    return [int(number) for number in _SEPARATOR.split(match.group(1))]


def cited_numbers(text: str) -> list[int]:
    """Every number the text's markers cite, in order of mention (repeats kept)."""
    return [n for match in MARKER.finditer(text) for n in marker_numbers(match)]


def has_markers(text: str) -> bool:
    return MARKER.search(text) is not None


def strip_markers(text: str, replacement: str = "") -> str:
    """The text without its markers (and the spaces before them): ``a [1].`` → ``a.``."""
    return _MARKER_AND_SPACE.sub(replacement, text)


def render_markers(text: str, render: Callable[[list[int]], str]) -> str:
    """Each marker replaced by ``render(its numbers)``; the rest of the text unchanged."""
    return MARKER.sub(lambda match: render(marker_numbers(match)), text)
