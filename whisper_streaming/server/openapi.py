"""The OpenAPI 3.1 description of the HTTP API, served at ``GET /openapi.json``.

Written out rather than generated: the API is small, and its form fields, formats and errors
are what a client needs to see exactly (they follow OpenAI's audio API).
"""

from __future__ import annotations

from typing import Any

from .rest import ALIASES, FORMATS, GRANULARITIES

__all__ = ["openapi"]

_ERROR = {
    "description": "OpenAI's error shape",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def _upload(task: str) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "file": {"type": "string", "format": "binary", "description": "any audio or video"},
        "model": {"type": "string", "description": "the served model, or an alias"},
        "prompt": {"type": "string", "description": "text that comes before the audio"},
        "response_format": {"type": "string", "enum": list(FORMATS), "default": "json"},
        "temperature": {"type": "number", "enum": [0], "default": 0},
    }
    if task == "transcribe":
        fields["language"] = {"type": "string", "description": "language code (default: detect)"}
        fields["timestamp_granularities[]"] = {
            "type": "array",
            "items": {"type": "string", "enum": list(GRANULARITIES)},
            "description": "'word' needs response_format verbose_json",
        }
        fields["stream"] = {
            "type": "boolean",
            "default": False,
            "description": "server-sent events: transcript.text.delta, then transcript.text.done",
        }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file", "model"],
                        "properties": fields,
                    }
                }
            },
        },
        "responses": {
            "200": {
                "description": "the transcript in the requested format",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Transcription"}},
                    "text/plain": {"schema": {"type": "string"}},
                    "text/event-stream": {"schema": {"type": "string"}},
                },
            },
            "400": _ERROR,
            "401": _ERROR,
            "403": _ERROR,
            "404": _ERROR,
            "413": _ERROR,
            "500": _ERROR,
        },
        "security": [{"bearer": []}, {}],
    }


def openapi(model_name: str, version: str) -> dict[str, Any]:
    """The description, naming the served model."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "whisper_streaming",
            "version": version,
            "description": (
                f"Speech to text with {model_name} (aliases: {', '.join(ALIASES)}). Live "
                "streaming is over WebSocket at / (WhisperLive protocol) and /ws/transcribe "
                "(JSON protocol); see docs in the project's README."
            ),
        },
        "paths": {
            "/v1/audio/transcriptions": {
                "post": {"summary": "Transcribe a file", **_upload("transcribe")}
            },
            "/v1/audio/translations": {
                "post": {
                    "summary": "Translate a file into English (needs a multilingual model: "
                    "an English-only one answers 400, code translation_unavailable)",
                    **_upload("translate"),
                }
            },
            "/v1/models": {
                "get": {
                    "summary": "The model served",
                    "responses": {"200": {"description": "an OpenAI model list"}},
                    "security": [{"bearer": []}, {}],
                }
            },
            "/health": {
                "get": {
                    "summary": "Health for load balancers (503 while no worker can decode)",
                    "responses": {"200": {"description": "ok"}, "503": {"description": "no"}},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "text exposition format"}},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "needed when the server runs with --api-key",
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "message": {"type": "string"},
                                "type": {"type": "string"},
                                "param": {"type": ["string", "null"]},
                                "code": {"type": ["string", "null"]},
                            },
                        }
                    },
                },
                "Transcription": {
                    "type": "object",
                    "required": ["text"],
                    "properties": {
                        "text": {"type": "string"},
                        "language": {"type": "string"},
                        "duration": {"type": "number"},
                        "segments": {"type": "array", "items": {"type": "object"}},
                        "words": {"type": "array", "items": {"type": "object"}},
                    },
                },
            },
        },
    }
