"""What produced an evaluation result, and where its knowledge base is kept."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import KbqaError

if TYPE_CHECKING:
    from ..qa.knowledge_base import KnowledgeBase


def run_configuration(kb: KnowledgeBase) -> dict[str, Any]:
    """What produced a result: models, chunking, retrieval, code version."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, cwd=Path(__file__).parent, check=False,
        ).stdout.strip()  # fmt: skip
    except OSError:
        commit = ""
    store = kb._store
    return {
        "embedding_model": kb.embedder.name,
        "llm_model": kb.generator.name,
        "retrieval": kb.answer_options.retrieval,
        "answer_style": kb.answer_options.answer_style,
        "answerability": kb.answer_options.answerability,
        "top_k": kb.answer_options.top_k,
        "min_score": kb.answer_options.min_score,
        "chunker": store.manifest.chunker.to_dict() if store else None,
        "knowledge_base": str(kb.folder),
        "commit": commit,
    }


def knowledge_base_name(source: Path, embedding_model: str, chunk_tokens: int) -> str:
    """The folder name (under ``$KBQA_HOME/eval``) of the knowledge base built from ``source``.

    Keyed by the content of what is indexed (a SQuAD file, or a BEIR folder's
    ``corpus.jsonl``), so two different files that share a name never share a
    knowledge base, and the same file under another name reuses its own.
    """
    source = Path(source)
    indexed = source / "corpus.jsonl" if source.is_dir() else source
    digest = hashlib.sha256()
    try:
        with open(indexed, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as error:
        raise KbqaError(f"{indexed}: cannot read it ({error.strerror or error})") from None
    model = re.sub(r"[^\w.-]+", "_", embedding_model)[-40:]
    return f"{source.stem}-{digest.hexdigest()[:12]}-{model}-{chunk_tokens}"
