"""``kbqa docs``, ``kbqa tag`` and ``kbqa remove``: what a knowledge base holds."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING

from ..errors import KbqaError
from .terminal import EXIT_ERROR, EXIT_OK, json_text, say

if TYPE_CHECKING:
    from ..qa.knowledge_base import KnowledgeBase


def documents_command(kb: KnowledgeBase, args: argparse.Namespace) -> int:
    """Run the ``docs``, ``tag`` or ``remove`` subcommand ``args`` names."""
    return {"docs": _docs, "tag": _tag, "remove": _remove}[args.command](kb, args)


def _docs(kb: KnowledgeBase, args: argparse.Namespace) -> int:
    records = kb.documents(tag=args.tag)
    if args.json:
        print(json_text([asdict(r) for r in records]))
        return EXIT_OK
    for r in records:
        ocr = f"  ({r.ocr_summary()})" if r.ocr_pages else ""  # pages read from pictures
        tags = f"  [{', '.join(r.tags)}]" if r.tags else ""
        say(
            f"{r.doc_id[:12]}  {r.pages:4d} p  {r.chunks:5d} chunks  {r.added_at}  "
            f"{r.name}{tags}{ocr}"
        )
    say(f"{len(records)} documents in {kb.folder}" + (f" tagged {args.tag}" if args.tag else ""))
    return EXIT_OK


def _tag(kb: KnowledgeBase, args: argparse.Namespace) -> int:
    change = kb.untag if args.remove else kb.tag
    record = change(args.document, args.tags)
    say(f"{record.name}: {', '.join(record.tags) or 'no tags'}")
    return EXIT_OK


def _remove(kb: KnowledgeBase, args: argparse.Namespace) -> int:
    status = EXIT_OK
    for document in args.documents:
        try:
            record = kb.remove(document)
            say(f"removed: {record.name} ({record.doc_id[:12]}, {record.chunks} chunks)")
        except KbqaError as error:
            say(f"kbqa: error: {error}", file=sys.stderr)
            status = EXIT_ERROR
    return status
