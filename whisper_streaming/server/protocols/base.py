"""What a wire protocol is to the connection driver: a sans-I/O adapter.

An adapter never touches a socket, a clock or a thread. The driver (``server/driver.py``) hands
it what the client sent and what the session produced; it answers with :data:`Action` values
(messages to send, a stream to begin, audio, the end of a stream) and typed server messages,
which the driver carries out. So every protocol rule is unit-tested with plain values.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ...audio import SAMPLE_RATE, Float32Array
from ...config import ProcessorOptions
from ..session import SessionEvent

__all__ = [
    "Action",
    "Audio",
    "Begin",
    "EndReason",
    "Finish",
    "Send",
    "ServerInfo",
    "ServerMessage",
    "WireAdapter",
]


class EndReason(enum.Enum):
    """Why a connection's session ended."""

    END_OF_AUDIO = "end_of_audio"
    CLOSED = "closed"
    TIME_LIMIT = "time_limit"
    IDLE = "idle"
    SHUTDOWN = "shutdown"
    PROTOCOL = "protocol"  # too many bad frames
    SLOW_READER = "slow_reader"
    ERROR = "error"  # a task of the connection failed


class ServerMessage(Protocol):
    """A typed server message; ``serialize()`` gives its text frame."""

    def serialize(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Send:
    """Send this message to the client."""

    message: ServerMessage


@dataclass(frozen=True, slots=True)
class Begin:
    """Start a stream (a new processor) with these options; audio comes at ``sample_rate``."""

    options: ProcessorOptions
    sample_rate: int = SAMPLE_RATE
    name: str = ""  # appended to the session id to name the stream (logs, --save-audio)
    diarize: bool = False  # label the words with speakers


@dataclass(frozen=True, slots=True)
class Audio:
    """Samples for the current stream (float32, mono, at the stream's sample rate)."""

    samples: Float32Array


@dataclass(frozen=True, slots=True)
class Finish:
    """The current stream's audio is over: its final decodes follow. With ``last``, the
    connection ends once the final transcript is sent (the end of the session's audio)."""

    last: bool = False


Action = Send | Begin | Audio | Finish


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What an adapter may know of the server when a session opens."""

    session_id: str
    backend: str
    model: str
    multilingual: bool
    options: ProcessorOptions  # the server's default processor options
    diarization: bool = False  # the server can label speakers (and does unless asked not to)


class WireAdapter(Protocol):
    """One connection's protocol state, without I/O.

    Methods that read client input raise :class:`~whisper_streaming.exceptions.ProtocolError`
    (with a ``code``) for input that is wrong; the driver sends :meth:`error` and counts it
    against the connection's bad-frame budget.
    """

    name: str  # the protocol's name (metrics label, session id prefix)
    expects_config: bool  # a configuration message comes before admission

    def configure(self, raw: str | bytes) -> None:
        """Take the configuration message (only when ``expects_config``)."""

    def session_name(self) -> str:
        """A prefix for the session id."""

    def opened(self, info: ServerInfo) -> list[Action]:
        """The session was admitted: what to send and begin."""

    def receive(self, message: str | bytes, now: float) -> list[Action]:
        """A client message (``now``: monotonic seconds) -> actions."""

    def event(self, event: SessionEvent) -> Sequence[ServerMessage]:
        """A session event (transcript update or error) -> messages to send."""

    def error(self, code: str, message: str) -> ServerMessage:
        """An error message (the code is a stable identifier, the message says what to do)."""

    def wait(self, minutes: float) -> ServerMessage:
        """The server is full; try again in about ``minutes``."""

    def farewell(self, reason: EndReason) -> ServerMessage | None:
        """The last message before a normal close for ``reason``, if the protocol has one."""
