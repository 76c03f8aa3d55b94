"""The public Python API: one knowledge base, its documents, and cited answers.

kb = KnowledgeBase.open("my-kb")
kb.add(["docs/"])
answer = kb.ask("¿Cuántos parámetros tiene GPT-3?")
print(answer.text, [c.label() for c in answer.citations])
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import KbqaError, KnowledgeBaseError
from ..index.conversations import ConversationStore
from ..index.manifest import Manifest
from ..index.scope import MAX_TAGS_PER_DOCUMENT, Scope, ScopeError, resolve, valid_tag
from ..index.store import DATABASE_NAME, Hit, KnowledgeBaseStore
from ..ingest.chunking import ChunkerSettings
from ..ingest.limits import ParseLimits
from ..ingest.local import (
    FileOutcome,
    IngestEngine,
    IngestOptions,
    IngestReport,
    InputFile,
    ingest_files,
    walk,
)
from ..ingest.types import Chunk, DocumentRecord
from ..models.embedder import Embedder, SentenceTransformerEmbedder
from ..models.generator import Generator, TransformersGenerator
from ..models.registry import choose_generator
from ..settings import Settings
from .followup import Turn
from .options import AnswerOptions, Style
from .pipeline import AnswerStream
from .retrieval import make_retriever

if TYPE_CHECKING:
    from .answer import Answer
    from .langchain_retriever import KnowledgeBaseRetriever

log = logging.getLogger(__name__)


class KnowledgeBase:
    """A knowledge-base folder plus the models that read and answer from it.

    Cheap to construct: the embedder loads on the first embedding, the LLM on
    the first answer.
    """

    def __init__(
        self,
        folder: Path,
        embedder: Embedder,
        generator: Generator,
        answer_options: AnswerOptions,
        chunker: ChunkerSettings,
        max_file_bytes: int,
        limits: ParseLimits | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.embedder = embedder
        self.generator = generator
        self.answer_options = answer_options
        self._chunker = chunker
        self._max_file_bytes = max_file_bytes
        self.limits = limits or ParseLimits()  # what reading one file may cost
        self._store: KnowledgeBaseStore | None = None
        self._conversations: ConversationStore | None = None
        if KnowledgeBaseStore.exists(self.folder):
            self._store = KnowledgeBaseStore.open(self.folder)
            self._check_embedder(self._store.manifest)

    @classmethod
    def open(
        cls,
        folder: str | Path | None = None,
        *,
        settings: Settings | None = None,
        create: bool = True,
        embedder: Embedder | None = None,
        generator: Generator | None = None,
    ) -> KnowledgeBase:
        """Open (or, with ``create``, start) the knowledge base in ``folder``.

        Models and options come from ``settings`` unless given directly; without
        ``settings``, the defaults (``Settings.defaults()``: the environment is not
        read here; front doors pass ``kbqa.load_settings()``).
        """
        settings = settings or Settings.defaults()
        path = Path(folder).expanduser() if folder else settings.default_kb
        if not create and not KnowledgeBaseStore.exists(path):
            raise KnowledgeBaseError(
                f"no knowledge base at {path}; create one with `kbqa ingest FILES --kb {path}`"
            )
        if embedder is None or generator is None:
            default_embedder, default_generator = load_models(settings)
            embedder = embedder or default_embedder
            generator = generator or default_generator
        return cls(
            path,
            embedder,
            generator,
            settings.answer_options(embedder.name),
            ChunkerSettings(settings.chunk_tokens, settings.chunk_overlap),
            int(settings.max_file_mb * 1024 * 1024),
            settings.parse_limits(),
        )

    # -- documents -------------------------------------------------------

    def add(
        self,
        paths: Sequence[str | Path],
        *,
        password: str | None = None,
        sync: bool = False,
        progress: bool = False,
        on_outcome: Callable[[FileOutcome], None] | None = None,
        engine: IngestEngine | None = None,
        tags: Sequence[str] = (),
    ) -> IngestReport:
        """Ingest files and folders; with ``sync``, drop documents whose files are gone.

        ``engine`` reads, chunks and embeds (default: here, ``ingest_files``; on a Ray
        cluster: ``kbqa.ingest.distributed.RayIngest``); this process stores.
        ``tags``: given to every document read (added, updated or unchanged).
        """
        checked = [valid_tag(t) for t in tags]  # before reading anything
        files, missing = walk(paths)
        roots = [Path(p) for p in paths if Path(p).is_dir()] if sync else []
        report = self._ingest(files, password, progress, on_outcome, roots, engine)
        for outcome in missing:
            if on_outcome:
                on_outcome(outcome)
        self._tag_outcomes(report.outcomes, checked)
        self._mark_removed(
            [o.doc_id for o in report.outcomes if o.status == "removed" and o.doc_id]
        )
        return IngestReport(tuple(missing) + report.outcomes, report.seconds)

    def add_bytes(
        self, name: str, data: bytes, *, password: str | None = None, tags: Sequence[str] = ()
    ) -> FileOutcome:
        """Ingest an uploaded file. ``name`` is only a label, never a path."""
        checked = [valid_tag(t) for t in tags]
        safe = safe_upload_name(name)
        report = self._ingest([InputFile(f"upload:{safe}", data=data)], password, False, None, [])
        self._tag_outcomes(report.outcomes, checked)
        return report.outcomes[0]

    def add_texts(
        self, texts: Sequence[tuple[str, str]], *, scheme: str = "text", progress: bool = False
    ) -> IngestReport:
        """Ingest in-memory texts as ``(name, text)``; ``name`` should end in ``.txt`` or
        ``.md`` and becomes the source ``<scheme>:<name>``. Used by ``kbqa eval``."""
        files = [InputFile(f"{scheme}:{name}", data=text.encode()) for name, text in texts]
        return self._ingest(files, None, progress, None, [])

    def remove(self, document: str) -> DocumentRecord:
        """Remove one document, named by file name, source path or id prefix."""
        record = self.find_document(document)
        store = self._require_store()
        with store.writing():
            store.remove_document(record.doc_id)
        self._mark_removed([record.doc_id])
        return record

    def documents(self, tag: str | None = None) -> list[DocumentRecord]:
        """Every stored document, or those carrying ``tag`` (case-insensitive)."""
        records = self._store.documents() if self._store else []
        if tag is None:
            return records
        folded = valid_tag(tag).casefold()
        return [r for r in records if folded in {t.casefold() for t in r.tags}]

    def chunks(self, doc_id: str) -> list[Chunk]:
        """The stored passages of one document (by its full id), in reading order."""
        if self._store is None or self._store.document_by_id(doc_id) is None:
            return []
        return self._store.chunks_of(doc_id)

    def tag(self, document: str, tags: Sequence[str]) -> DocumentRecord:
        """Add tags to one document (named as for ``remove``); returns it as stored now."""
        return self._change_tags(document, add=[valid_tag(t) for t in tags])

    def untag(self, document: str, tags: Sequence[str]) -> DocumentRecord:
        return self._change_tags(document, remove=[valid_tag(t) for t in tags])

    def tags(self) -> dict[str, int]:
        """Each tag and how many documents carry it, by name."""
        counts: dict[str, int] = {}
        for record in self.documents():
            for tag in record.tags:
                counts[tag] = counts.get(tag, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: item[0].casefold()))

    def resolve_scope(self, scope: Scope | None) -> list[DocumentRecord]:
        """The documents a scope matches (ScopeError naming an entry that matches none)."""
        return resolve(scope or Scope(), self.documents())

    def find_document(self, document: str) -> DocumentRecord:
        records = self.documents()
        resolved = str(Path(document).expanduser().resolve()) if "/" in document else None
        matches = [
            r
            for r in records
            if document in (r.source, r.name, f"upload:{r.name}")
            or r.source == resolved
            or (len(document) >= 6 and r.doc_id.startswith(document))
        ]
        if not matches:
            raise KbqaError(f"no document matches {document!r} in {self.folder}")
        if len(matches) > 1:
            listed = ", ".join(f"{r.name} ({r.doc_id[:12]})" for r in matches)
            raise KbqaError(f"{document!r} matches several documents: {listed}; use the id")
        return matches[0]

    # -- retrieval and answers -------------------------------------------

    def search(self, query: str, k: int | None = None, *, scope: Scope | None = None) -> list[Hit]:
        return self.search_many([query], k, scope=scope)[0]

    def search_many(
        self, queries: Sequence[str], k: int | None = None, *, scope: Scope | None = None
    ) -> list[list[Hit]]:
        """The ``k`` best passages per query; with ``scope``, from its documents only."""
        within = None
        if scope is not None and not scope.is_everything():
            chosen = self.resolve_scope(scope)
            if self._store is not None:
                within = self._store.rows_of([r.doc_id for r in chosen])
        if self._store is None or self._store.vector_count() == 0:
            return [[] for _ in queries]
        retriever = make_retriever(self.answer_options.retrieval, self._store, self.embedder)
        return retriever.retrieve(list(queries), k or self.answer_options.top_k, within)

    def ask(
        self,
        question: str,
        k: int | None = None,
        *,
        style: Style | None = None,
        history: Sequence[Turn] = (),
        scope: Scope | None = None,
    ) -> Answer:
        """A cited answer, or a refusal saying the documents do not hold one."""
        return self.stream(question, k, style=style, history=history, scope=scope).answer

    def stream(
        self,
        question: str,
        k: int | None = None,
        *,
        style: Style | None = None,
        history: Sequence[Turn] = (),
        scope: Scope | None = None,
    ) -> AnswerStream:
        """Iterate for the answer's text as soon as it is known; then read ``.answer``.

        ``style``: ``evidence`` (the sentences that answer, verbatim), ``short`` or
        ``sentence`` (default: the settings'); ``history``: earlier turns, so that a
        follow-up question is read in context; ``scope``: the documents it may use
        (checked here, so a bad entry fails before the stream starts).
        """
        if scope is not None:
            self.resolve_scope(scope)
        return AnswerStream(self, question, k or self.answer_options.top_k, style, history, scope)

    def as_retriever(
        self, k: int | None = None, scope: Scope | None = None
    ) -> KnowledgeBaseRetriever:
        """A LangChain retriever over this knowledge base (``qa/langchain_retriever.py``)."""
        from .langchain_retriever import KnowledgeBaseRetriever

        return KnowledgeBaseRetriever(knowledge_base=self, k=k, scope=scope)

    @property
    def conversations(self) -> ConversationStore:
        """The conversations kept with this knowledge base (in its SQLite database)."""
        if self._conversations is None:
            self._conversations = ConversationStore(self._require_store().folder / DATABASE_NAME)
        return self._conversations

    def close(self) -> None:
        if self._conversations:
            self._conversations.close()
        if self._store:
            self._store.close()

    # -- internals -------------------------------------------------------

    def _change_tags(
        self, document: str, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> DocumentRecord:
        record = self.find_document(document)
        if len(set(record.tags) | set(add)) > MAX_TAGS_PER_DOCUMENT:
            raise ScopeError(f"{record.name}: at most {MAX_TAGS_PER_DOCUMENT} tags per document")
        store = self._require_store()
        with store.writing():
            store.change_tags(record.source, add, remove)
        return store.document_by_id(record.doc_id) or record

    def _mark_removed(self, doc_ids: Sequence[str]) -> None:
        """Old conversations show that these documents' citations point nowhere now."""
        for doc_id in doc_ids:
            marked = self.conversations.mark_document_removed(doc_id)
            if marked:
                log.info("%d citations of removed document %s marked", marked, doc_id[:12])

    def _tag_outcomes(self, outcomes: Sequence[FileOutcome], tags: Sequence[str]) -> None:
        if not tags or self._store is None:
            return
        store = self._store
        kept = ("added", "updated", "unchanged")
        # By id: a file whose content is stored under another name tags that document.
        records = [
            store.document_by_id(o.doc_id) for o in outcomes if o.doc_id and o.status in kept
        ]
        with store.writing():
            for source in {r.source for r in records if r is not None}:
                store.change_tags(source, tags)

    def _ingest(
        self,
        files: Sequence[InputFile],
        password: str | None,
        progress: bool,
        on_outcome: Callable[[FileOutcome], None] | None,
        sync_roots: Sequence[Path],
        engine: IngestEngine | None = None,
    ) -> IngestReport:
        store = self._store or self._create_store()
        options = IngestOptions(
            store.manifest.chunker,
            self._max_file_bytes,
            password,
            progress,
            on_outcome,
            limits=self.limits,
        )
        with store.writing():
            return (engine or ingest_files)(store, self.embedder, files, options, sync_roots)

    def _create_store(self) -> KnowledgeBaseStore:
        manifest = Manifest(
            embedding_model=self.embedder.name,
            embedding_dimension=self.embedder.dimension,
            chunker=self._chunker.fitted_to(self.embedder.max_tokens),
        )
        self._store = KnowledgeBaseStore.create(self.folder, manifest)
        self._check_embedder(self._store.manifest)
        return self._store

    def _require_store(self) -> KnowledgeBaseStore:
        if self._store is None:
            raise KnowledgeBaseError(f"{self.folder} holds no documents yet")
        return self._store

    def _check_embedder(self, manifest: Manifest) -> None:
        if manifest.embedding_model != self.embedder.name:
            raise KnowledgeBaseError(
                f"{self.folder} was built with the embedding model {manifest.embedding_model!r} "
                f"but kbqa is set to {self.embedder.name!r}: set "
                f"KBQA_EMBEDDING_MODEL={manifest.embedding_model}, use another --kb folder, or "
                f"move it to {self.embedder.name!r} with `kbqa ingest --reembed PATHS`"
            )


def load_models(settings: Settings) -> tuple[Embedder, Generator]:
    """The embedder and LLM that ``settings`` name (cheap: each loads on first use)."""
    embedder = SentenceTransformerEmbedder(
        settings.embedding_model,
        settings.cache_dir,
        settings.device,
        precision=settings.precision,
    )
    generator = TransformersGenerator(
        choose_generator(settings.llm_model, settings.device),
        settings.cache_dir,
        settings.device,
        settings.precision,
        int8_decode=settings.llm_int8_decode,
    )
    return embedder, generator


MAX_UPLOAD_NAME = 120


def safe_upload_name(name: str) -> str:
    """A display name for an upload: the last path part, harmless characters only.

    The name becomes the document's source (``upload:<name>``), so two different
    uploaded names must never map to one: a name that had to be changed (characters
    replaced, or cut to ``MAX_UPLOAD_NAME``) gets a short hash of the original, and
    the extension always survives the cut.
    """
    import hashlib
    import re
    import unicodedata

    base = unicodedata.normalize("NFC", re.split(r"[\\/]", name)[-1])
    safe = re.sub(r"[^\w.\- ()]+", "_", base).strip(" .") or "upload"
    stem, dot, suffix = safe.rpartition(".")
    if not dot or not stem or len(suffix) > 10:
        stem, suffix = safe, ""
    if safe != base or len(safe) > MAX_UPLOAD_NAME:
        tag = hashlib.sha256(base.encode()).hexdigest()[:8]
        stem = f"{stem[: MAX_UPLOAD_NAME - len(suffix) - 10]}-{tag}"
    return f"{stem}.{suffix}" if suffix else stem
