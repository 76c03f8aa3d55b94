"""Split sections into overlapping chunks measured in the embedder's own tokens."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from .types import Chunk, ParsedDocument

# Room for the [CLS]/[SEP]-style tokens the embedder adds around every input.
SPECIAL_TOKENS_MARGIN = 2
# No chunk is longer than this many characters per token of its budget (prose
# has 4 to 6): WordPiece counts any word over 100 characters as one [UNK] token,
# so without it a megabyte of base64 could be "one token".
MAX_CHARS_PER_TOKEN = 16
# The splitter's own last resort, splitting by single characters, measured each
# character with the tokenizer and copied lists as it went (about 100 s per MB
# of text without spaces); text it cannot split at a newline or space comes out
# whole and is cut by ``_cut`` instead, in time linear in its length.
SEPARATORS = ["\n\n", "\n", " "]
_MAX_CANDIDATES = 4096  # places a chunk of repetitive text is looked for, at most
# The splitter measures every word two or three times: short strings' counts are
# kept (text repeats its words), up to this many of them.
_CACHED_LENGTH = 48
_CACHE_ENTRIES = 200_000
_CLOCK_EVERY = 256  # tokenizer calls between looks at the clock


class ChunkingTimeout(Exception):
    """Chunking one document took longer than the time it was given."""


@dataclass(frozen=True)
class ChunkerSettings:
    """Stored in each knowledge base's manifest: a KB keeps the chunking it was built with."""

    chunk_tokens: int = 200
    overlap_tokens: int = 32
    splitter: str = "langchain RecursiveCharacterTextSplitter"

    def fitted_to(self, max_tokens: int) -> ChunkerSettings:
        """The same settings, shrunk so that no chunk exceeds the embedder's limit."""
        limit = max_tokens - SPECIAL_TOKENS_MARGIN
        if self.chunk_tokens <= limit:
            return self
        return ChunkerSettings(limit, min(self.overlap_tokens, limit // 4), self.splitter)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def chunk_document(
    doc_id: str,
    document: ParsedDocument,
    count_tokens: Callable[[str], int],
    settings: ChunkerSettings,
    seconds: float | None = None,
) -> list[Chunk]:
    """Chunks for every section, with page, heading and character span kept.

    ``chunk.text == section.text[start - section.offset : end - section.offset]``.
    Time is linear in the text's length, whitespace or not.

    Raises:
        ChunkingTimeout: it took more than ``seconds``.
    """
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    count_tokens = _measured(count_tokens, settings, seconds)

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=settings.chunk_tokens,
        chunk_overlap=settings.overlap_tokens,
        length_function=count_tokens,
        separators=SEPARATORS,
    )
    max_chars = settings.chunk_tokens * MAX_CHARS_PER_TOKEN
    bound = settings.overlap_tokens  # what the splitter carries from a chunk to the next
    chunks: list[Chunk] = []
    for section in document.sections:
        # Spans are found here, not by the splitter's add_start_index: that one
        # mixes token lengths with character offsets and loses chunks' positions.
        search_from, previous_start, previous_end = 0, 0, 0
        for text in splitter.split_text(section.text):
            found = _locate(section.text, text, search_from, previous_end, count_tokens, bound)
            if found < 0 and text in section.text[previous_start:previous_end]:
                # The splitter sometimes emits a piece of the overlap alone: it adds nothing.
                continue
            if found < 0:  # cannot happen for a splitter that only cuts and strips
                raise ValueError(f"{document.source}: chunk not found in its section")
            search_from, previous_start, previous_end = found + 1, found, found + len(text)
            if len(text) > max_chars or (
                " " not in text and "\n" not in text and count_tokens(text) > settings.chunk_tokens
            ):
                pieces = _cut(text, count_tokens, settings, max_chars)
            else:
                pieces = [(0, text)]
            for offset, piece in pieces:
                start = section.offset + found + offset
                ordinal = len(chunks)
                chunks.append(
                    Chunk(
                        id=Chunk.make_id(doc_id, ordinal, piece),
                        doc_id=doc_id,
                        text=piece,
                        source=document.source,
                        page=section.page,
                        start=start,
                        end=start + len(piece),
                        heading=section.heading,
                        ordinal=ordinal,
                        text_source=section.text_source,
                    )
                )
    return chunks


def _measured(
    count_tokens: Callable[[str], int], settings: ChunkerSettings, seconds: float | None
) -> Callable[[str], int]:
    """``count_tokens`` remembering short strings, and raising past the deadline.

    Text longer than a chunk may be in characters is never given to the
    tokenizer (a 5 MB line made 4 M tokens at once, 350 MB): it is over the
    budget whatever its count, so the splitter only needs a number above it;
    ``_cut`` then cuts it.
    """
    deadline = None if seconds is None else time.monotonic() + seconds
    known: dict[str, int] = {}
    calls = 0
    too_long = settings.chunk_tokens * MAX_CHARS_PER_TOKEN

    def count(text: str) -> int:
        nonlocal calls
        if len(text) > too_long:
            return settings.chunk_tokens + len(text) // MAX_CHARS_PER_TOKEN
        if len(text) <= _CACHED_LENGTH:
            cached = known.get(text)
            if cached is not None:
                return cached
        calls += 1
        if deadline is not None and calls % _CLOCK_EVERY == 0 and time.monotonic() > deadline:
            raise ChunkingTimeout(f"chunking took over {seconds:g} s")
        tokens = count_tokens(text)
        if len(text) <= _CACHED_LENGTH:
            if len(known) >= _CACHE_ENTRIES:
                known.clear()
            known[text] = tokens
        return tokens

    return count


def _locate(
    section: str,
    text: str,
    search_from: int,
    previous_end: int,
    count_tokens: Callable[[str], int],
    bound: int,
) -> int:
    """Where the splitter's next chunk ``text`` starts in ``section``, or -1.

    Each chunk reaches past the previous one, so copies of its text ending
    inside the previous chunk are skipped. In repetitive text it also matches
    at several places overlapping the previous chunk: the splitter only
    carries over ``bound`` tokens, so the earliest match whose overlap with the
    previous chunk is that small is the one (found by bisection: overlaps
    shrink as the start moves right).
    """
    found = section.find(text, max(search_from, previous_end - len(text) + 1))
    if found < 0 or found >= previous_end:
        return found
    candidates = [found]
    while len(candidates) < _MAX_CANDIDATES:
        later = section.find(text, candidates[-1] + 1, previous_end + len(text))
        if later < 0 or later >= previous_end:
            break
        candidates.append(later)
    if len(candidates) == 1:
        return found

    def carried(overlap: str) -> int:
        """Tokens as the splitter counts them: word by word, each with its leading space."""
        words = overlap.split(" ")
        pieces = [words[0]] + [" " + word for word in words[1:]]
        return (len(pieces) - 1) * count_tokens("") + sum(map(count_tokens, pieces))

    low, high = 0, len(candidates)  # the answer is in candidates[low:high], or none fits
    while low < high:
        middle = (low + high) // 2
        if carried(section[candidates[middle] : previous_end]) <= bound:
            high = middle
        else:
            low = middle + 1
    if low < len(candidates):
        return candidates[low]
    after = section.find(text, previous_end)
    return after if after >= 0 else candidates[-1]


def _cut(
    text: str, count_tokens: Callable[[str], int], settings: ChunkerSettings, max_chars: int
) -> list[tuple[int, str]]:
    """``text`` cut into (offset, piece) within the token and character budgets, with
    about the configured overlap; a few tokenizer calls per piece."""
    limit = settings.chunk_tokens
    pieces: list[tuple[int, str]] = []
    start, guess = 0, min(max_chars, 4 * limit)
    while start < len(text):
        end = _fit(text, start, count_tokens, limit, min(len(text), start + max_chars), guess)
        pieces.append((start, text[start:end]))
        if end >= len(text):
            break
        guess = end - start
        start = max(start + 1, end - guess * settings.overlap_tokens // max(1, limit))
    return pieces


def _fit(
    text: str, start: int, count_tokens: Callable[[str], int], limit: int, cap: int, guess: int
) -> int:
    """An end in (start, cap] with ``count_tokens(text[start:end]) <= limit``, near the
    largest: a few secant steps from ``start + guess`` on the characters-per-token
    rate (usually two calls), then bisection to within 1/32 of the piece."""
    fits, over = start + 1, cap + 1  # a single character is taken even if over the limit
    probe = min(cap, start + max(1, guess))
    for _ in range(4):
        tokens = count_tokens(text[start:probe])
        if tokens <= limit:
            fits = probe
            if tokens >= 0.95 * limit or probe == cap:
                return fits
        else:
            over = probe
        target = start + int((probe - start) * 0.98 * limit / max(1, tokens))
        if not fits < target < over:
            target = (fits + over) // 2
        probe = min(cap, target)
        if probe <= fits:
            break
    tolerance = max(1, (fits - start) // 32)
    while over - fits > tolerance:
        middle = (fits + over) // 2
        if count_tokens(text[start:middle]) <= limit:
            fits = middle
        else:
            over = middle
    return fits
