"""Document text is data: sentences that address the model are never evidence.

The first line of defence is structural (``qa/evidence.py``): the model reads only
the evidence sentences, so an instruction elsewhere in a document cannot reach it,
and an instruction that is itself the best answer to the question is shown as a
quote, not obeyed. This module is the second line: sentences that read as
instructions to an AI (override phrases, role markers of chat templates, orders
about what to answer) are not candidates for evidence while the instruction filter
is on (``KBQA_INSTRUCTION_FILTER``), and chat-template control tokens are broken up
in whatever the model reads. ``bench/injection.py --undefended`` measures the
structure alone.

The cost: a genuine document *about* prompt injection cannot be quoted where it
phrases such an order (the passage itself is still retrieved and shown).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ..text import fold_accents

REMOVED = "[…]"

# Matched on lower-cased, accent-folded text, one sentence or line at a time. Each
# pattern wants a form that addresses a model; plain statements ("the model should
# predict the next token", "the answer is just 42") stay: see tests/test_injection.py
# and the false-positive count over the shared corpora in docs/security.md.
_INSTRUCTION_PATTERNS = [
    # Overrides: "ignore all previous instructions", "olvida las indicaciones anteriores".
    r"\b(ignore|disregard|forget|override|bypass|ignora|ignoren|ignorad|olvida|olvide|"
    r"olviden|descarta|omite|desobedece|haz caso omiso)\b[^.!?\n]{0,60}\b(instructions?|"
    r"prompts?|rules|directions|guidelines|context|passages?|everything|instrucciones|"
    r"indicaciones|ordenes|reglas|pasajes|contexto|todo lo anterior)\b",
    # Orders about the reply, at the start of a sentence or after "you"/"please".
    r"(^\W*|\b(you|please|must|por favor)\s+)(respond|reply|answer|say)\b[^.!?\n]{0,30}"
    r"\b(only|just|exactly|solely|nothing but|with the (word|text|phrase))\b",
    r"(^\W*|\b(por favor|debes|tienes que)\s+)(responde|responda|contesta|conteste|di|diga)"
    r"\b[^.!?\n]{0,30}\b(solo|solamente|unicamente|exactamente|con la (palabra|frase))\b",
    r"(^\W*|\b(you|please|must)\s+)(answer|reply|respond)\s+(to\s+)?(every|all|any|each)\s+"
    r"(questions?|quer(y|ies)|requests?|prompts?)\b",
    r"(^\W*|\b(por favor|debes|tienes que)\s+)(responde|contesta)\s+(a\s+)?(cada|todas las|"
    r"cualquier)\s+(pregunta|consulta)",
    # "All answers must be 'ACCESS DENIED'": an order followed by the text to give.
    r"\b(answers?|responses?|replies|respuestas?)\b[^.!?\n]{0,60}\b(must|should|shall|"
    r"debe|deben|tiene que|tienen que|debera|deberan)\s+(be|say|read|contain|ser|decir|"
    r"contener)\b\s*[:\"'\u201c\u201d\u00ab\u2018]",
    r"\bwhen (you are |you're )?(asked|questioned)\b[^.!?\n]{0,80}\b(answer|reply|respond|"
    r"say)\b",
    r"\bcuando (te |le |se )?(pregunten|pregunte|consulten)\b[^.!?\n]{0,80}\b(responde|"
    r"responda|contesta|conteste|di|diga)\b",
    # Addressing the model.
    r"\b(if you are|if you're|you are now|si eres|ahora eres) (an? |una? )?(ai|llm|language "
    r"model|assistant|chatbot|ia|inteligencia artificial|modelo|asistente)\b",
    r"\b(dear|note to|attention|message to|nota para|atencion|mensaje para) (the |el |la )?"
    r"(ai|llm|assistant|chatbot|language model|ia|asistente|modelo)\b",
    r"\b(act as|behave as|pretend to be|actua como|actue como|finge ser) (an? |the |una? |el )?"
    r"(ai|assistant|chatbot|model|ia|asistente|modelo)\b",
    r"\b(from now on|a partir de ahora)\b[^.!?\n]{0,30}\b(you|your|eres|actua|responde|"
    r"contesta|di)\b",
    r"\b(the |el |al )?(assistant|chatbot|ai assistant|asistente)\b[^.!?\n]{0,20}\b(must|"
    r"should|shall|is instructed|debe|tiene que|debera)\b",
    r"\b(new|system|admin|administrator|developer)\s+(instructions?|directives?|override)\b",
    r"\b(nuevas?|del sistema|del administrador)\s+(instrucciones|indicaciones|directivas?)\b",
    r"\binstrucciones (nuevas|del sistema)\b",
    r"\bsystem (notice|prompt|override)\b|\baviso del sistema\b",
    # Chat-template and role markers.
    r"^\W*(system|assistant|sistema|asistente)\s*:",
    r"<\|?(im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id)\|?>",
    r"\[/?inst\]|<</?sys>>|#{2,}\s*(instruction|system|response|respuesta|instruccion)",
]
_INSTRUCTION = re.compile("|".join(f"(?:{p})" for p in _INSTRUCTION_PATTERNS), re.MULTILINE)

# Control tokens of chat templates (Qwen's <|im_start|>, Llama's <|eot_id|>, [INST]):
# tokenizers turn them into real special tokens even inside a passage, so they are
# broken up always, whatever the sentence around them says.
_SPECIAL_TOKEN = re.compile(r"<\|([^|<>\s]{1,40})\|>|\[(/?INST)\]|<<(/?SYS)>>", re.IGNORECASE)

# Sentences and lines: an instruction is removed with its whole sentence.
SENTENCE_PIECE = re.compile(r"(?:[^.!?\n]|[.!?](?![\s\"')\]]|$))*(?:[.!?]+|\n|$)")


@dataclass(frozen=True)
class CleanedPassage:
    text: str
    removed: tuple[str, ...]  # the sentences taken out, as they were

    @property
    def only_instructions(self) -> bool:
        return bool(self.removed) and not self.text.replace(REMOVED, "").strip()


def is_instruction(sentence: str) -> bool:
    """True when the sentence reads as an order to an AI model rather than content."""
    return bool(_INSTRUCTION.search(fold_accents(sentence.lower())))


def defuse_special_tokens(text: str) -> str:
    """``<|im_start|>`` → ``< |im_start| >``: the same characters to read, no control token."""
    return _SPECIAL_TOKEN.sub(
        lambda m: f"{m.group(0)[0]} {m.group(0)[1:-1]} {m.group(0)[-1]}", text
    )


@lru_cache(maxsize=512)
def clean_passage(text: str) -> CleanedPassage:
    """The passage with its instruction-like sentences replaced by ``[…]``.

    Cached: packing a prompt rebuilds it once per candidate passage, and the
    grounding and quote steps read the same passages again.
    """
    kept: list[str] = []
    removed: list[str] = []
    for match in SENTENCE_PIECE.finditer(text):
        piece = match.group(0)
        if piece.strip() and is_instruction(piece):
            removed.append(piece.strip())
            if not kept or kept[-1].strip() != REMOVED:
                leading = piece[: len(piece) - len(piece.lstrip())]
                kept.append(leading + REMOVED + ("\n" if piece.endswith("\n") else ""))
        else:
            kept.append(piece)
    cleaned = "".join(kept).strip() if removed else text
    return CleanedPassage(defuse_special_tokens(cleaned), tuple(removed))
