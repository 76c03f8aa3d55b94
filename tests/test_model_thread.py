"""Every model computation runs on one thread (models/model_thread.py), and the LLM's
one-token steps read an int8 copy of its weights on a CPU (models/int8_decode.py)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from torch import nn

from kbqa.models.int8_decode import MAX_INT8_ROWS, Int8DecodeLinear, add_int8_decode_weights
from kbqa.models.model_thread import THREAD_NAME, ModelThread

# -- the model thread ---------------------------------------------------------------


def test_calls_run_on_one_named_thread_whichever_thread_asks():
    worker = ModelThread()
    with ThreadPoolExecutor(4) as callers:
        names = set(callers.map(lambda _: worker.call(lambda: threading.current_thread().name),
                                range(12)))  # fmt: skip
    assert names == {THREAD_NAME}


def test_a_call_from_the_model_thread_runs_inline_instead_of_deadlocking():
    worker = ModelThread()
    assert worker.call(lambda: worker.call(lambda: 7) + 1) == 8
    assert worker.call(lambda: worker.start_long(lambda: 5).result()) == 5


def test_errors_reach_the_caller_and_the_thread_goes_on():
    worker = ModelThread()

    def fail() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        worker.call(fail)
    assert worker.call(lambda: 3) == 3


def test_a_short_task_runs_between_the_steps_of_a_long_one():
    """The long task cannot finish until the short one has run: without
    run_short_tasks between its steps this would wait forever (bounded here)."""
    worker = ModelThread()
    embedded = threading.Event()
    steps = []

    def generation() -> int:
        for step in range(2000):
            if embedded.is_set():
                return step
            steps.append(step)
            worker.run_short_tasks()
            threading.Event().wait(0.005)
        return -1

    long_task = worker.start_long(generation)
    while not steps:  # the generation has started
        threading.Event().wait(0.001)
    assert worker.call(lambda: embedded.set() or threading.current_thread().name) == THREAD_NAME
    assert long_task.result(timeout=30) > 0


def test_a_long_task_still_queued_can_be_cancelled():
    worker = ModelThread()
    release = threading.Event()
    first = worker.start_long(lambda: release.wait(30))
    second = worker.start_long(lambda: "ran")
    assert second.cancel()
    release.set()
    assert first.result(timeout=30) is True
    assert second.cancelled()
    assert worker.call(lambda: "still serving") == "still serving"


# -- int8 decode weights ------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_few_rows_use_the_int8_copy_and_many_rows_the_original(dtype):
    torch.manual_seed(0)
    original = nn.Linear(64, 48, bias=True).to(dtype)
    layer = Int8DecodeLinear(original)
    assert layer.int8_weight.dtype == torch.int8 and layer.weight is original.weight
    with torch.no_grad():
        few = torch.randn(1, MAX_INT8_ROWS, 64, dtype=dtype)
        exact, approximate = original(few), layer(few)
        assert not torch.equal(exact, approximate)  # really the int8 path
        relative = (approximate - exact).float().norm() / exact.float().norm()
        assert relative < 0.02
        many = torch.randn(2, MAX_INT8_ROWS, 64, dtype=dtype)
        assert torch.equal(layer(many), original(many))


def test_every_linear_layer_is_wrapped_and_the_copy_is_counted():
    model = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Sequential(nn.Linear(16, 8)))
    added = add_int8_decode_weights(model)
    wrapped = [m for m in model.modules() if isinstance(m, Int8DecodeLinear)]
    assert len(wrapped) == 2
    assert added == (32 * 16 + 16 * 4) + (16 * 8 + 8 * 4)  # int8 weights, float32 scales


@pytest.mark.slow
def test_the_real_llm_decodes_with_int8_steps_on_the_model_thread(small_llm):
    """smollm2-135m on CPU: its linear layers are wrapped, every forward pass runs on
    the model thread even when a request thread streams, and the int8 steps keep
    the model's greedy reply and next-token logits on a plain prompt."""
    from kbqa.models.generator import TransformersGenerator

    model = small_llm._model
    assert any(isinstance(m, Int8DecodeLinear) for m in model.modules())
    threads: set[str] = set()
    hook = model.register_forward_pre_hook(
        lambda module, args: threads.add(threading.current_thread().name)
    )
    messages = [{"role": "user", "content": "Name the capital of France in one word."}]
    try:
        with ThreadPoolExecutor(1) as request:
            with_int8 = request.submit(lambda: "".join(small_llm.stream(messages, 8))).result()
    finally:
        hook.remove()
    assert threads == {THREAD_NAME}

    plain = TransformersGenerator(small_llm.name, small_llm._cache_dir, int8_decode=False)
    plain.load()
    assert not any(isinstance(m, Int8DecodeLinear) for m in plain._model.modules())
    # Greedy replies may part after a few tokens (a 135M model: "L'Étoile." against
    # "L'Étoile Saint-D"); the 0.5B's answers are compared on XQuAD by bench/answer_styles.py.
    assert with_int8.split()[0].strip(".") == "".join(plain.stream(messages, 8)).split()[0]

    # A one-token step after the prompt: the int8 copy's logits against the model's own.
    ids = small_llm._encode(messages)["input_ids"]
    step_logits = []
    with torch.inference_mode():
        for generator in (small_llm, plain):
            prompt = generator._model(input_ids=ids[:, :-1], use_cache=True)
            step = generator._model(input_ids=ids[:, -1:], past_key_values=prompt.past_key_values)
            step_logits.append(step.logits[0, -1].float())
    int8_step, own_step = step_logits
    assert int8_step.argmax() == own_step.argmax()
    assert torch.cosine_similarity(int8_step, own_step, dim=0) > 0.99
