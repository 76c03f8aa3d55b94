"""Move a knowledge base to another embedding model without its original files.

Vectors from different models cannot share an index, so every stored chunk is
embedded again into a fresh folder beside the old one; only when that folder is
complete is it swapped in. Chunks keep their text and spans: they were cut for
the old model's token limit, so the new model must accept at least as many.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import KnowledgeBaseError
from ..models.embedder import Embedder
from .manifest import Manifest
from .store import KnowledgeBaseStore

log = logging.getLogger(__name__)

# Chunks are embedded this many at a time (a progress step).
BATCH_CHUNKS = 256


def needs_reembedding(folder: Path, embedder: Embedder) -> bool:
    if not KnowledgeBaseStore.exists(folder):
        return False
    return Manifest.read(folder).embedding_model != embedder.name


def reembed(
    folder: Path,
    embedder: Embedder,
    on_progress: Callable[[int, int], None] | None = None,
    carry: Sequence[str] = (),
) -> int:
    """Re-embed every chunk of ``folder`` with ``embedder``; returns the chunk count.

    ``carry`` names subfolders that live beside the index and move with it (the web
    app's ``originals``): they are copied into the new folder before the swap.

    The old knowledge base stays untouched and locked until the new one is
    complete. If the process dies before the swap, the old folder is intact and
    the half-built ``<name>.reembed`` beside it is discarded on the next run;
    if it dies between the two renames, the old one waits in ``<name>.old``.
    """
    folder = Path(folder)
    old = KnowledgeBaseStore.open(folder)
    chunker = old.manifest.chunker
    if chunker.fitted_to(embedder.max_tokens) != chunker:
        old.close()
        raise KnowledgeBaseError(
            f"{folder}: its chunks hold up to {chunker.chunk_tokens} tokens but "
            f"{embedder.name} reads at most {embedder.max_tokens}: ingest the files again "
            "into a new knowledge base instead"
        )
    staging = folder.with_name(folder.name + ".reembed")
    shutil.rmtree(staging, ignore_errors=True)
    manifest = Manifest(
        embedding_model=embedder.name,
        embedding_dimension=embedder.dimension,
        chunker=chunker,
    )
    total = old.chunk_count()
    done = 0
    with old.writing():
        new = KnowledgeBaseStore.create(staging, manifest)
        with new.writing():
            for record in old.documents():
                chunks = old.chunks_of(record.doc_id)
                texts = [chunk.text for chunk in chunks]
                vectors = [
                    embedder.embed_passages(texts[start : start + BATCH_CHUNKS])
                    for start in range(0, len(texts), BATCH_CHUNKS)
                ]
                new.replace_document(record, chunks, np.concatenate(vectors))
                done += len(chunks)
                if on_progress:
                    on_progress(done, total)
        new.close()
        for name in carry:  # e.g. the app's stored uploads go with the documents
            if (folder / name).is_dir():
                shutil.copytree(folder / name, staging / name)
        retired = folder.with_name(folder.name + ".old")
        shutil.rmtree(retired, ignore_errors=True)
        os.replace(folder, retired)
        os.replace(staging, folder)
    old.close()
    shutil.rmtree(retired, ignore_errors=True)
    log.info("%s re-embedded with %s: %d chunks", folder, embedder.name, done)
    return done
