"""The answer-writing LLM: a transformers causal LM, streamed token by token.

Packaged models ship as GGUF files inside PyPI wheels; the registry verifies
and converts them once (``registry.local_folder``), so later loads take seconds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from ..errors import ModelError
from .device import MODEL_LOADING, pick_device, pick_precision, torch_dtype
from .model_thread import MODEL_THREAD
from .registry import local_folder

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]


class Generator(Protocol):
    """What QA needs from an LLM."""

    name: str

    def count_tokens(self, messages: Messages) -> int: ...

    def stream(self, messages: Messages, max_new_tokens: int) -> Iterator[str]: ...


class TransformersGenerator:
    """Greedy decoding by default, so the same question gets the same answer.

    A consumer that stops reading the stream (a closed web request) stops the
    generation too, at the next token.
    """

    def __init__(
        self,
        name: str,
        cache_dir: Path,
        device: str = "auto",
        precision: str = "auto",
        int8_decode: bool = True,
    ) -> None:
        self.name = name
        self._cache_dir = Path(cache_dir)
        self._device = device
        self._precision = precision
        self._int8_decode = int8_decode  # on a CPU only (models/int8_decode.py)
        self._model: Any = None
        self._tokenizer: Any = None

    def load(self) -> None:
        if self._model is None:  # loaded: answering takes no lock
            MODEL_THREAD.call(self._load)

    def _load(self) -> None:
        with MODEL_LOADING:
            if self._model is not None:
                return
            from transformers import AutoModelForCausalLM, AutoTokenizer

            where = str(local_folder(self.name, "generator", self._cache_dir))
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
            model = model.to(device).eval()  # type: ignore[arg-type]
            decode = "its own weights"
            if self._int8_decode and device == "cpu":
                from .int8_decode import add_int8_decode_weights, int8_decode_supported

                if int8_decode_supported():
                    added = add_int8_decode_weights(model)
                    decode = f"an int8 copy of its weights (+{added / 2**20:.0f} MiB)"
            self._model = model
            log.info(
                "LLM %s loaded from %s on %s in %s; one-token steps read %s",
                self.name, where, device, precision, decode,
            )  # fmt: skip

    @property
    def tokenizer(self) -> Any:
        self.load()
        return self._tokenizer

    def _encode(self, messages: Messages) -> Any:
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )

    def count_tokens(self, messages: Messages) -> int:
        return int(self._encode(messages)["input_ids"].shape[-1])

    def stream(self, messages: Messages, max_new_tokens: int) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        self.load()
        inputs = self._encode(messages).to(self._model.device)
        streamer = TextIteratorStreamer(
            self._tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600
        )
        failure: list[BaseException] = []
        abandoned = threading.Event()

        class StopWhenAbandoned(StoppingCriteria):
            """Checked after each token, on the model thread: also lets a question
            waiting to be embedded go first instead of after the whole answer."""

            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                MODEL_THREAD.run_short_tasks()
                return torch.full((input_ids.shape[0],), abandoned.is_set(), dtype=torch.bool)

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
                        stopping_criteria=StoppingCriteriaList([StopWhenAbandoned()]),
                        pad_token_id=self._tokenizer.pad_token_id or self._tokenizer.eos_token_id,
                    )
            except BaseException as error:  # noqa: BLE001 - re-raised in the caller
                failure.append(error)
                streamer.end()

        generation = MODEL_THREAD.start_long(generate)
        finished = False
        try:
            for piece in streamer:
                if piece:
                    yield piece
            finished = True
        finally:
            if not finished and not generation.cancel():  # cancelled: it never started
                # Closed early (GeneratorExit): stop decoding instead of finishing unseen,
                # and drain what was already queued until the generation signals its end.
                abandoned.set()
                for _ in streamer:
                    pass
            if not generation.cancelled():
                generation.result()
        if failure:
            raise ModelError(f"generation failed: {failure[0]}") from failure[0]
