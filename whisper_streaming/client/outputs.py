"""Transcript writers: SRT, WebVTT, JSON and plain text, chosen by file extension."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

__all__ = ["FORMATS", "format_timestamp", "render", "write_transcript"]

FORMATS = ("srt", "vtt", "json", "txt")


def format_timestamp(seconds: float, *, decimal: str = ",") -> str:
    """``HH:MM:SS,mmm`` (SRT) or, with ``decimal="."``, ``HH:MM:SS.mmm`` (WebVTT)."""
    ms = max(0, int(round(seconds * 1000)))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{decimal}{ms:03d}"


def speaker_name(speaker: int) -> str:
    """How a speaker label reads: ``Speaker 1``."""
    return f"Speaker {speaker}"


def labelled(segment: dict[str, Any]) -> str:
    """A segment's text, after ``[Speaker N] `` when it has a speaker."""
    text = str(segment["text"]).strip()
    speaker = segment.get("speaker")
    return text if speaker is None else f"[{speaker_name(speaker)}] {text}"


def _vtt_cue(segment: dict[str, Any]) -> str:
    """A WebVTT cue's text; a speaker becomes a voice span (``<v Speaker 1>``)."""
    text = str(segment["text"]).strip().replace("&", "&amp;").replace("<", "&lt;")
    speaker = segment.get("speaker")
    return text if speaker is None else f"<v {speaker_name(speaker)}>{text}"


def render(segments: Sequence[dict[str, Any]], fmt: str) -> str:
    """Render segments (dicts with float ``start``, ``end``, ``text``, and ``speaker`` when
    diarized) in ``fmt``."""
    if fmt == "srt":
        blocks = [
            f"{i}\n{format_timestamp(s['start'])} --> {format_timestamp(s['end'])}\n{labelled(s)}\n"
            for i, s in enumerate(segments, 1)
        ]
        return "\n".join(blocks)
    if fmt == "vtt":
        blocks = [
            f"{format_timestamp(s['start'], decimal='.')} --> "
            f"{format_timestamp(s['end'], decimal='.')}\n{_vtt_cue(s)}\n"
            for s in segments
        ]
        return "WEBVTT\n\n" + "\n".join(blocks)
    if fmt == "json":
        text = " ".join(s["text"].strip() for s in segments)
        return json.dumps({"text": text, "segments": list(segments)}, indent=2, ensure_ascii=False)
    if fmt == "txt":
        return "".join(labelled(s) + "\n" for s in segments)
    raise ValueError(f"unknown output format {fmt!r}; choose one of {FORMATS}")


def write_transcript(path: str | os.PathLike[str], segments: Sequence[dict[str, Any]]) -> str:
    """Write segments to ``path`` in the format its extension names; return the format."""
    ext = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
    if ext not in FORMATS:
        raise ValueError(
            f"cannot tell the output format of {os.fspath(path)!r}: use .srt, .vtt, .json or .txt"
        )
    with open(path, "w", encoding="utf-8") as f:
        f.write(render(segments, ext))
    return ext
