"""The public Python API: one knowledge base, its documents, and cited answers.

kb = KnowledgeBase.open("my-kb")
kb.add(["docs/"])
answer = kb.ask("¿Cuántos parámetros tiene GPT-3?")
print(answer.text, [c.label() for c in answer.citations])
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from ..errors import KbqaError, KnowledgeBaseError
from ..index.manifest import Manifest
from ..index.store import Hit, KnowledgeBaseStore
from ..ingest.batch import (
    FileOutcome,
    IngestEngine,
    IngestOptions,
    IngestReport,
    InputFile,
    ingest_files,
    walk,
)
from ..ingest.chunking import ChunkerSettings
from ..ingest.limits import ParseLimits
from ..ingest.types import DocumentRecord
from ..models.embedder import Embedder, SentenceTransformerEmbedder
from ..models.generator import (
    FirstStepProbe,
    Generator,
    ProbingGenerator,
    TransformersGenerator,
    can_probe,
)
from ..models.registry import choose_generator, refusal_floor
from . import answerability, grounding
from .answer import Answer, Citation, Timings
from .prompting import (
    REFUSALS,
    PackedPrompt,
    detect_language,
    is_refusal,
    pack_prompt,
    parse_citations,
    passage_text,
)
from .quotes import quote_reply
from .retrieval import best_score, make_retriever, too_far
from .settings import Settings, load_settings

if TYPE_CHECKING:
    from .langchain_retriever import KnowledgeBaseRetriever

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnswerOptions:
    top_k: int = 5
    context_tokens: int = 1500
    max_new_tokens: int = 256
    min_score: float = 0.2
    retrieval: str = "hybrid"  # hybrid, dense or keyword
    answer_style: str = "sentence"  # sentence, or short (the answering words only)
    answerability: bool = True  # act on qa/answerability.py's verdict (False: only record it)


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

        Models come from ``settings`` (env ``KBQA_*``) unless given directly.
        """
        settings = settings or load_settings()
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
            AnswerOptions(
                settings.top_k,
                settings.context_tokens,
                settings.max_new_tokens,
                refusal_floor(embedder.name) if settings.min_score is None else settings.min_score,
                settings.retrieval,
                settings.answer_style,
                settings.answerability,
            ),
            ChunkerSettings(settings.chunk_tokens, settings.chunk_overlap),
            int(settings.max_file_mb * 1024 * 1024),
            ParseLimits.from_settings(settings),
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
    ) -> IngestReport:
        """Ingest files and folders; with ``sync``, drop documents whose files are gone.

        ``engine`` reads, chunks and embeds (default: here, ``ingest_files``; on a Ray
        cluster: ``kbqa.ingest.distributed.RayIngest``); this process stores.
        """
        files, missing = walk(paths)
        roots = [Path(p) for p in paths if Path(p).is_dir()] if sync else []
        report = self._ingest(files, password, progress, on_outcome, roots, engine)
        for outcome in missing:
            if on_outcome:
                on_outcome(outcome)
        return IngestReport(tuple(missing) + report.outcomes, report.seconds)

    def add_bytes(self, name: str, data: bytes, *, password: str | None = None) -> FileOutcome:
        """Ingest an uploaded file. ``name`` is only a label, never a path."""
        safe = safe_upload_name(name)
        report = self._ingest([InputFile(f"upload:{safe}", data=data)], password, False, None, [])
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
        return record

    def documents(self) -> list[DocumentRecord]:
        return self._store.documents() if self._store else []

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

    def search(self, query: str, k: int | None = None) -> list[Hit]:
        return self.search_many([query], k)[0]

    def search_many(self, queries: Sequence[str], k: int | None = None) -> list[list[Hit]]:
        if self._store is None or self._store.vector_count() == 0:
            return [[] for _ in queries]
        retriever = make_retriever(self.answer_options.retrieval, self._store, self.embedder)
        return retriever.retrieve(list(queries), k or self.answer_options.top_k)

    def ask(self, question: str, k: int | None = None) -> Answer:
        stream = self.stream(question, k)
        for _ in stream:
            pass
        return stream.answer

    def stream(self, question: str, k: int | None = None) -> AnswerStream:
        """Iterate for the answer's text as it is generated; then read ``.answer``."""
        return AnswerStream(self, question, k or self.answer_options.top_k)

    def as_retriever(self, k: int | None = None) -> KnowledgeBaseRetriever:
        """A LangChain retriever over this knowledge base (``qa/langchain_retriever.py``)."""
        from .langchain_retriever import KnowledgeBaseRetriever

        return KnowledgeBaseRetriever(knowledge_base=self, k=k)

    def close(self) -> None:
        if self._store:
            self._store.close()

    # -- internals -------------------------------------------------------

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
    )
    return embedder, generator


class AnswerStream:
    """Yields the answer text piece by piece; ``answer`` is the finished ``Answer``."""

    def __init__(self, kb: KnowledgeBase, question: str, k: int) -> None:
        self._kb = kb
        self.question = question
        self._k = k
        self._answer: Answer | None = None
        self._iterator = self._run()

    def __iter__(self) -> Iterator[str]:
        return self._iterator

    @property
    def answer(self) -> Answer:
        if self._answer is None:
            for _ in self._iterator:
                pass
        assert self._answer is not None
        return self._answer

    def _run(self) -> Iterator[str]:
        kb, options = self._kb, self._kb.answer_options
        started = time.perf_counter()
        hits = kb.search(self.question, self._k)
        retrieve_s = time.perf_counter() - started
        language = detect_language(self.question)
        closest = tuple(Citation.from_hit(n, h) for n, h in enumerate(hits, start=1))

        def refuse(assessment: answerability.Assessment | None = None) -> Iterator[str]:
            """Say "not in the documents" without asking the LLM."""
            text = REFUSALS[language]
            yield text
            total = time.perf_counter() - started
            self._answer = Answer(
                self.question,
                text,
                (),
                True,
                Timings(retrieve_s, 0, None, total),
                language,
                closest,
                reply=text,
                answerability=assessment,
            )

        if too_far(hits, options.min_score):
            # Nothing close enough. Hits are in the retriever's order (fusion order in
            # hybrid), so the best cosine decides.
            yield from refuse()
            return

        generator = kb.generator
        packed = pack_prompt(
            self.question,
            hits,
            language,
            generator.count_tokens,
            options.context_tokens,
            options.answer_style,
        )
        # Grounded only in what the model was shown: never in a removed instruction.
        texts = [passage_text(hit) for hit in packed.hits]
        assessment = answerability.before_answering(self.question, texts)
        if not assessment.answerable and options.answerability:
            log.info("refusing before generation: %s", assessment.reason)
            yield from refuse(assessment)
            return

        calibration = answerability.calibration_for(generator.name, kb.embedder.name)
        best = best_score(packed.hits) or 0.0
        overlap = max(answerability.question_overlap(self.question, t) for t in texts)
        if calibration is not None and "refusal_logit" not in calibration.weights:
            # A score on retrieval signals alone decides before the model runs.
            early = answerability.after_first_step(
                assessment, calibration, answerability.signals(best, overlap, None)
            )
            if assessment.answerable and not early.answerable and options.answerability:
                log.info("refusing before generation: %s", early.reason)
                yield from refuse(early)
                return

        probe = FirstStepProbe(REFUSALS[language]) if can_probe(generator) else None
        stream = (
            cast("ProbingGenerator", generator).stream(
                packed.messages, options.max_new_tokens, probe=probe
            )
            if probe is not None
            else generator.stream(packed.messages, options.max_new_tokens)
        )
        pieces: list[str] = []
        first_token_s = None
        for piece in stream:
            if first_token_s is None:
                first_token_s = time.perf_counter() - started
                # The first step has run: the calibrated score can decide now, before
                # anything is shown, and a refusal stops the generation early.
                signals = answerability.signals(
                    best, overlap, None if probe is None else probe.probability
                )
                scored = answerability.after_first_step(assessment, calibration, signals)
                refuse_now = assessment.answerable and not scored.answerable
                assessment = scored
                if refuse_now and options.answerability:
                    log.info("refusing at the first token: %s", scored.reason)
                    close = getattr(stream, "close", None)
                    if close is not None:
                        close()
                    pieces.append(piece)
                    yield from self._refused_after(
                        started, retrieve_s, language, packed, pieces, first_token_s, assessment
                    )
                    return
            pieces.append(piece)
            yield piece
        reply = "".join(pieces).strip()
        refused = is_refusal(reply, cites=False)
        if not refused and grounding.support(reply, self.question, texts) < grounding.MIN_SUPPORT:
            log.info("reply not supported by the passages, refusing: %r", reply)
            refused = True
        quoting = None if refused else quote_reply(reply, self.question, packed.hits)
        if quoting is not None and not quoting.grounded:
            # Its words are in the passages, but not together where a quote can show them.
            log.info("reply cannot be quoted from the passages, refusing: %r", reply)
            refused, quoting = True, None
        if quoting is not None:
            neighbourhoods = [
                answerability.quote_neighbourhood(
                    texts[q.number - 1], q.start, packed.hits[q.number - 1].chunk.heading
                )
                for q in quoting.quotes
            ]
            checked = answerability.after_quoting(assessment, neighbourhoods)
            if not checked.answerable and assessment.answerable and options.answerability:
                log.info("reply borrows another entity's facts, refusing: %r", reply)
                refused, quoting = True, None
            assessment = checked
        # Markers, citations and quotes agree: each sentence cites the passages it quotes.
        text = REFUSALS[language] if quoting is None else quoting.text
        citations = () if quoting is None else parse_citations(text, packed.hits)
        timings = Timings(
            retrieve_s,
            packed.prompt_tokens,
            first_token_s,
            time.perf_counter() - started,
            len(pieces),
        )
        used = tuple(Citation.from_hit(n, h) for n, h in enumerate(packed.hits, start=1))
        self._answer = Answer(
            self.question,
            text,
            citations,
            refused,
            timings,
            language,
            used,
            packed.context_tokens,
            packed.dropped,
            reply,
            () if quoting is None else quoting.quotes,
            assessment,
        )

    def _refused_after(
        self,
        started: float,
        retrieve_s: float,
        language: str,
        packed: PackedPrompt,
        pieces: list[str],
        first_token_s: float,
        assessment: answerability.Assessment,
    ) -> Iterator[str]:
        """The refusal once generation has begun (nothing of the reply was shown)."""
        text = REFUSALS[language]
        yield text
        self._answer = Answer(
            self.question,
            text,
            (),
            True,
            Timings(
                retrieve_s,
                packed.prompt_tokens,
                first_token_s,
                time.perf_counter() - started,
                len(pieces),
            ),
            language,
            tuple(Citation.from_hit(n, h) for n, h in enumerate(packed.hits, start=1)),
            packed.context_tokens,
            packed.dropped,
            "".join(pieces).strip(),
            (),
            assessment,
        )


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
