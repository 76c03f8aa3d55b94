"""Settings come from KBQA_* variables or a TOML file; nothing is hard-wired."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from kbqa.ingest.limits import MB, SETTING_NAMES, ParseLimits
from kbqa.qa.knowledge_base import KnowledgeBase
from kbqa.settings import ApiOptions, Settings, load_settings


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KBQA_HOME", str(tmp_path))
    monkeypatch.setenv("KBQA_LLM_MODEL", "smollm2-135m-instruct")
    monkeypatch.setenv("KBQA_TOP_K", "7")
    settings = load_settings()
    assert settings.embedding_model == "multilingual-e5-small"
    assert settings.llm_model == "smollm2-135m-instruct"
    assert settings.top_k == 7
    assert settings.default_kb == tmp_path / "default"


def test_toml_file_named_by_kbqa_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "kbqa.toml"
    config.write_text('embedding_model = "/models/my-embedder"\nmax_new_tokens = 90\n')
    monkeypatch.setenv("KBQA_CONFIG", str(config))
    settings = load_settings()
    assert settings.embedding_model == "/models/my-embedder"
    assert settings.max_new_tokens == 90
    monkeypatch.setenv("KBQA_MAX_NEW_TOKENS", "120")  # the environment wins over the file
    assert load_settings().max_new_tokens == 120


def test_invalid_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KBQA_TOP_K", "0")
    with pytest.raises(ValidationError):
        load_settings()


def test_open_uses_the_configured_models_without_loading_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KBQA_LLM_MODEL", "smollm2-135m-instruct")
    monkeypatch.setenv("KBQA_RETRIEVAL", "dense")
    kb = KnowledgeBase.open(tmp_path / "kb", settings=load_settings())
    assert kb.generator.name == "smollm2-135m-instruct"
    assert kb.embedder.name == "multilingual-e5-small"
    assert kb.answer_options.min_score == 0.79  # e5's own refusal floor
    assert kb.answer_options.retrieval == "dense"
    monkeypatch.setenv("KBQA_EMBEDDING_MODEL", "all-MiniLM-L6-v2")
    monkeypatch.setenv("KBQA_MIN_SCORE", "0.5")
    assert (
        KnowledgeBase.open(tmp_path / "kb", settings=load_settings()).answer_options.min_score
        == 0.5
    )
    assert not (tmp_path / "kb").exists()  # created on the first add, not on open


def test_the_library_never_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Only front doors call load_settings(); without settings, open() takes the defaults."""
    for name, value in (("KBQA_LLM_MODEL", "smollm2-135m-instruct"), ("KBQA_TOP_K", "9"),
                        ("KBQA_MAX_CHARS", "10"), ("KBQA_RETRIEVAL", "dense")):  # fmt: skip
        monkeypatch.setenv(name, value)
    config = tmp_path / "kbqa.toml"
    config.write_text("max_new_tokens = 90\n")
    monkeypatch.setenv("KBQA_CONFIG", str(config))
    kb = KnowledgeBase.open(tmp_path / "kb")
    defaults = Settings.defaults()
    assert kb.answer_options == defaults.answer_options(kb.embedder.name)
    assert kb.answer_options.top_k == 5 and kb.answer_options.retrieval == "hybrid"
    assert kb.answer_options.max_new_tokens == 256
    assert kb.limits == ParseLimits() and kb.embedder.name == "multilingual-e5-small"
    assert kb.generator.name != "smollm2-135m-instruct"


def test_each_default_is_declared_once_and_the_typed_views_agree() -> None:
    """The read limits' defaults live in ParseLimits, the API's in ApiOptions; Settings
    derives its own from them, and its views give them back unchanged."""
    defaults = Settings.defaults()
    assert defaults.parse_limits() == ParseLimits()
    assert defaults.api_options() == ApiOptions()
    assert Settings().parse_limits() == ParseLimits()  # validated the same way
    for field, variable in SETTING_NAMES.items():  # reasons name settings that exist
        assert field in ParseLimits.__dataclass_fields__
        assert variable.removeprefix("KBQA_").lower() in Settings.model_fields
    changed = Settings(max_decompressed_mb=1, parse_memory_mb=512, api_max_body_mb=2)
    assert changed.parse_limits().max_decompressed_bytes == MB
    assert changed.parse_limits().memory_bytes == 512 * MB
    assert changed.api_options().max_body_bytes == 2 * MB


def test_importing_the_api_does_not_import_torch_or_faiss() -> None:
    import subprocess
    import sys

    code = "import sys, kbqa; print('torch' in sys.modules, 'faiss' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_auto_llm_on_a_cpu_build_of_torch_is_chosen_without_importing_it() -> None:
    # With the 1.5B installed, `auto` asks for the device; a CPU build of torch answers
    # from its metadata, so opening a knowledge base (an unchanged re-ingest) stays fast.
    import subprocess
    import sys

    code = (
        "import sys, importlib.metadata as m\n"
        "real = m.version\n"
        "m.version = lambda name: '2.13.0+cpu' if name == 'torch' else real(name)\n"
        "from kbqa.models import registry\n"
        "registry.installed = lambda name: True\n"
        "print(registry.choose_generator('auto') == registry.DEFAULT_LLM, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]


def test_a_torch_build_with_cuda_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    from kbqa.models import device

    monkeypatch.setattr(importlib.metadata, "version", lambda name: "2.13.0")
    assert device.torch_build_is_cpu_only() is False
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "2.13.0+cpu")
    assert device.torch_build_is_cpu_only() is True


def test_precision_auto_takes_bfloat16_only_where_the_cpu_computes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kbqa.errors import ModelError
    from kbqa.models import device as runtime

    for has_bf16, expected in ((True, "bfloat16"), (False, "float32")):
        runtime.pick_precision.cache_clear()
        monkeypatch.setattr(runtime, "_cpu_has_bf16", lambda has=has_bf16: has)
        assert runtime.pick_precision("cpu") == expected
    runtime.pick_precision.cache_clear()
    assert runtime.pick_precision("cpu", "float32") == "float32"
    with pytest.raises(ModelError, match="unknown precision"):
        runtime.pick_precision("cpu", "int3")
    runtime.pick_precision.cache_clear()


def test_models_are_shared_only_between_equal_model_settings() -> None:
    base = Settings(precision="float32")
    assert base.models_key() == Settings(precision="float32", top_k=9).models_key()
    assert base.models_key() != Settings(precision="bfloat16").models_key()
    assert base.models_key() != Settings(precision="float32", device="cpu").models_key()
