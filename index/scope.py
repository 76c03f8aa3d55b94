"""Which documents a question may use: a ``Scope``, resolved before retrieval.

A scope names documents (by name, source path, id prefix or glob) and tags; the
documents it matches are the union of its entries. Retrieval then searches only
their chunks (``KnowledgeBaseStore.rows_of``), never the whole index filtered
afterwards, which would return too few passages for a small scope.

An entry that matches nothing is an error naming it: a typo in ``--doc`` must not
quietly become "the documents do not say".
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import KnowledgeBaseError
from ..ingest.types import DocumentRecord

MAX_ENTRIES = 100  # documents + tags in one scope
MAX_ENTRY_CHARS = 200
MAX_TAG_CHARS = 40
MAX_TAGS_PER_DOCUMENT = 50
MIN_ID_PREFIX = 6  # shorter hex strings are too likely to be a name's beginning
_TAG = re.compile(r"[\w][\w .\-]*")
_HEX = re.compile(r"[0-9a-f]+")
_GLOB = re.compile(r"[*?\[]")


class ScopeError(KnowledgeBaseError):
    """A scope entry is invalid or matches no document; the message names it."""


def valid_tag(name: str) -> str:
    """``name`` stripped, if it is a tag: 1-40 letters, digits, spaces, ``_ . -``."""
    tag = name.strip()
    if not tag or len(tag) > MAX_TAG_CHARS or not _TAG.fullmatch(tag):
        shown = tag[:MAX_TAG_CHARS] + ("…" if len(tag) > MAX_TAG_CHARS else "")
        raise ScopeError(
            f"invalid tag {shown!r}: 1-{MAX_TAG_CHARS} letters, digits, spaces, _ . or -"
        )
    return tag


def _entry(text: str, kind: str) -> str:
    entry = text.strip()
    if not entry:
        raise ScopeError(f"empty {kind} in the scope")
    if len(entry) > MAX_ENTRY_CHARS:
        raise ScopeError(f"{kind} {entry[:40]!r}… is longer than {MAX_ENTRY_CHARS} characters")
    if any(ord(c) < 32 for c in entry):
        raise ScopeError(f"{kind} {entry[:40]!r} holds control characters")
    return entry


@dataclass(frozen=True)
class Scope:
    """Documents and tags a question may use; ``Scope()`` is the whole knowledge base."""

    documents: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.documents, str) or isinstance(self.tags, str):
            raise ScopeError("a scope takes lists of documents and tags, not one string")
        if len(self.documents) + len(self.tags) > MAX_ENTRIES:
            raise ScopeError(f"a scope holds at most {MAX_ENTRIES} documents and tags")
        documents = tuple(dict.fromkeys(_entry(d, "document") for d in self.documents))
        tags = tuple(dict.fromkeys(valid_tag(t) for t in self.tags))
        object.__setattr__(self, "documents", documents)
        object.__setattr__(self, "tags", tags)

    @classmethod
    def of(cls, documents: Iterable[str] | None = None, tags: Iterable[str] | None = None) -> Scope:
        """A scope from optional lists (front doors pass what the request held)."""
        return cls(tuple(documents or ()), tuple(tags or ()))

    def is_everything(self) -> bool:
        return not self.documents and not self.tags

    def describe(self) -> str:
        """What the answer may use, for a chat header: ``documents a.pdf, b.md; tag legal``."""
        if self.is_everything():
            return "all documents"
        parts = []
        if self.documents:
            parts.append(("document " if len(self.documents) == 1 else "documents ")
                         + ", ".join(self.documents))  # fmt: skip
        if self.tags:
            parts.append(("tag " if len(self.tags) == 1 else "tags ") + ", ".join(self.tags))
        return "; ".join(parts)


def resolve(scope: Scope, documents: Sequence[DocumentRecord]) -> list[DocumentRecord]:
    """The documents ``scope`` matches, in order; ScopeError when an entry matches none."""
    if scope.is_everything():
        return list(documents)
    chosen: set[str] = set()
    for entry in scope.documents:
        matched = [d.doc_id for d in documents if _matches(entry, d)]
        if not matched:
            raise ScopeError(f"no document matches {entry!r}")
        chosen.update(matched)
    for tag in scope.tags:
        folded = tag.casefold()
        matched = [d.doc_id for d in documents if folded in {t.casefold() for t in d.tags}]
        if not matched:
            raise ScopeError(f"no document is tagged {tag!r}")
        chosen.update(matched)
    return [d for d in documents if d.doc_id in chosen]


def _matches(entry: str, document: DocumentRecord) -> bool:
    if entry in (document.name, document.source):
        return True
    lowered = entry.lower()
    if len(lowered) >= MIN_ID_PREFIX and _HEX.fullmatch(lowered):
        return document.doc_id.startswith(lowered)
    if _GLOB.search(entry):
        return fnmatch.fnmatchcase(document.name, entry) or fnmatch.fnmatchcase(
            document.source, entry
        )
    return False
