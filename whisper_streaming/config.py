"""Frozen, validated option values. Units are part of every name (``_s``, ``_ms``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .exceptions import ConfigError

__all__ = ["COMMIT_POLICIES", "TASKS", "ProcessorOptions", "ServerOptions", "VadOptions"]

TASKS = ("transcribe", "translate")
COMMIT_POLICIES = ("segments", "agreement", "local_agreement")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True, slots=True, kw_only=True)
class VadOptions:
    """Streaming Silero VAD settings.

    Attributes:
        threshold: speech probability at or above which a window counts as speech.
        neg_threshold_offset: speech ends only below ``threshold - neg_threshold_offset``
            (hysteresis, as in Silero's reference iterator).
        min_silence_ms: silence that must follow speech before an end-of-speech event, which
            finalizes the utterance. Shorter pauses stay inside one utterance, so the final
            decode sees more context: on the six long-form files (sentences 0.5 s apart), with
            commits only at utterance ends, 1000 ms gave 12.9% WER against 14.1% and 14.5% for
            500 ms, for about 1.7 s more delay of final text (p50).
        speech_pad_ms: audio kept before a speech start and after a speech end.
    """

    threshold: float = 0.5
    neg_threshold_offset: float = 0.15
    min_silence_ms: int = 1000
    speech_pad_ms: int = 200

    def __post_init__(self) -> None:
        _require(0.0 < self.threshold < 1.0, f"threshold must be in (0, 1), got {self.threshold}")
        _require(
            0.0 <= self.neg_threshold_offset < self.threshold,
            f"neg_threshold_offset must be in [0, threshold), got {self.neg_threshold_offset}",
        )
        _require(self.min_silence_ms > 0, f"min_silence_ms must be > 0, got {self.min_silence_ms}")
        _require(self.speech_pad_ms >= 0, f"speech_pad_ms must be >= 0, got {self.speech_pad_ms}")
        _require(
            self.speech_pad_ms < self.min_silence_ms,
            "speech_pad_ms must be smaller than min_silence_ms",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessorOptions:
    """How the streaming processor turns audio into requests and commits words.

    Attributes:
        min_chunk_s: the margin kept before the end of a decoded window when text is cut there
            (and the step :func:`~whisper_streaming.simulate.simulate` feeds audio in).
        hypothesis_step_s: new (voiced) audio needed before the next hypothesis decode. A
            session asks for its next decode as soon as this much arrived and its previous decode
            returned, so the cadence follows the compute: partial text comes about one decode
            after the words at low load, later (with more audio per decode) under load.
        buffer_trimming_s: once the buffer is longer, cut it at a segment boundary inside
            committed text.
        max_buffer_s: hard cap on the audio sent in one request while the model keeps up; when
            agreement stalls, text is committed up to the last complete segment and the buffer cut.
        prompt_chars: characters of committed text (before the buffer) passed as the prompt.
        initial_prompt: text that comes before the stream (names, terms, style); the prompt is
            this followed by the committed text, cut to its last ``prompt_chars``.
        max_overlap_words: longest n-gram compared when removing words already committed.
        agreement_n: words are committed once this many consecutive hypotheses agree on them
            (LocalAgreement-n; 2 in the paper).
        commit_policy: when words become final. ``"segments"``: at the end of each utterance (a
            full-beam decode of the whole utterance), and in speech longer than
            ``commit_window_s``, up to the last complete segment of a full-beam decode.
            ``"local_agreement"``: as soon as ``agreement_n`` consecutive hypotheses agree
            (LocalAgreement, as whisper_streaming from UFAL does): earlier final text, more
            errors. Measured on the six long-form files in uneven 1-2.5 s chunks: see the README.
            ``"agreement"``: as ``"segments"``, and in between, the words that two consecutive
            hypotheses agree on (text, and word ends within ``agreement_shift_s``) once they end
            at least ``agreement_lead_s`` before the end of the decoded audio, so every committed
            word was heard with that much right context.
        agreement_lead_s: see ``"agreement"``.
        agreement_shift_s: see ``"agreement"``.
        commit_window_s: with ``"segments"``, uncommitted audio that triggers a commit (a
            buffer that reaches ``max_buffer_s`` first is cut as described there).
        language: language code, or None to auto-detect.
        task: "transcribe" or "translate".
        beam_size: beam width of final decodes (end of utterance, flush, finish).
        hypothesis_beam_size: beam width of the intermediate decodes that LocalAgreement
            compares. Greedy (1) halves their cost, which one real-time stream on one CPU core
            needs to keep up; the final decode of each utterance uses ``beam_size``.
        use_vad: gate the model with the streaming VAD and finalize at the end of each utterance.
        vad: VAD settings, used when ``use_vad`` is true.
        no_speech_threshold: a segment whose no-speech probability is above this and whose average
            log-probability is below ``logprob_threshold`` is treated as silence.
        logprob_threshold: see ``no_speech_threshold``.
        skipped_speech_s: a word longer than this, or a gap this long between words (or at the
            end of a final decode), means the model skipped speech in that decode; the words
            after it are not committed from that decode, and a final decode is run again from
            there.
    """

    min_chunk_s: float = 1.0
    hypothesis_step_s: float = 0.3
    buffer_trimming_s: float = 15.0
    max_buffer_s: float = 30.0
    prompt_chars: int = 200
    initial_prompt: str = ""
    max_overlap_words: int = 5
    agreement_n: int = 2
    commit_policy: str = "segments"
    agreement_lead_s: float = 1.5
    agreement_shift_s: float = 0.3
    commit_window_s: float = 10.0
    language: str | None = None
    task: str = "transcribe"
    beam_size: int = 5
    hypothesis_beam_size: int = 1
    use_vad: bool = True
    vad: VadOptions = field(default_factory=VadOptions)
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    skipped_speech_s: float = 2.0

    def __post_init__(self) -> None:
        _require(
            0.0 < self.min_chunk_s <= 10.0,
            f"min_chunk_s must be in (0, 10], got {self.min_chunk_s}",
        )
        _require(
            0.05 <= self.hypothesis_step_s <= 10.0,
            f"hypothesis_step_s must be in [0.05, 10], got {self.hypothesis_step_s}",
        )
        _require(
            self.buffer_trimming_s >= 2 * self.min_chunk_s,
            f"buffer_trimming_s must be at least 2 * min_chunk_s, got {self.buffer_trimming_s}",
        )
        _require(
            self.max_buffer_s >= self.buffer_trimming_s + self.min_chunk_s,
            "max_buffer_s must be at least buffer_trimming_s + min_chunk_s, "
            f"got {self.max_buffer_s}",
        )
        _require(self.prompt_chars >= 0, f"prompt_chars must be >= 0, got {self.prompt_chars}")
        _require(
            1 <= self.max_overlap_words <= 20,
            f"max_overlap_words must be in [1, 20], got {self.max_overlap_words}",
        )
        _require(
            2 <= self.agreement_n <= 100, f"agreement_n must be in [2, 100], got {self.agreement_n}"
        )
        _require(
            self.commit_policy in COMMIT_POLICIES,
            f"commit_policy must be one of {COMMIT_POLICIES}, got {self.commit_policy!r}",
        )
        _require(
            0.0 <= self.agreement_lead_s <= 10.0,
            f"agreement_lead_s must be in [0, 10], got {self.agreement_lead_s}",
        )
        _require(
            self.agreement_shift_s > 0.0,
            f"agreement_shift_s must be > 0, got {self.agreement_shift_s}",
        )
        _require(
            self.commit_window_s >= 2 * self.min_chunk_s,
            f"commit_window_s must be at least 2 * min_chunk_s, got {self.commit_window_s}",
        )
        _require(self.task in TASKS, f"task must be one of {TASKS}, got {self.task!r}")
        _require(1 <= self.beam_size <= 20, f"beam_size must be in [1, 20], got {self.beam_size}")
        _require(
            1 <= self.hypothesis_beam_size <= 20,
            f"hypothesis_beam_size must be in [1, 20], got {self.hypothesis_beam_size}",
        )
        _require(
            self.language is None
            or (isinstance(self.language, str) and 2 <= len(self.language) <= 8),
            f"language must be a language code or None, got {self.language!r}",
        )
        _require(
            0.0 <= self.no_speech_threshold <= 1.0,
            f"no_speech_threshold must be in [0, 1], got {self.no_speech_threshold}",
        )
        _require(
            self.skipped_speech_s >= 0.5,
            f"skipped_speech_s must be >= 0.5, got {self.skipped_speech_s}",
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerOptions:
    """Limits and timeouts of the WebSocket server.

    Attributes:
        max_clients: sessions served at once; the next client gets WAIT.
        max_connection_time_s: a session is ended (DISCONNECT) after this long.
        idle_timeout_s: a session that sends no audio for this long is ended.
        quiet_flush_s: when a client stops sending audio for this long without ending the
            stream, pending text is finalized.
        config_timeout_s: time allowed for the first (configuration) message.
        max_bad_frames: malformed frames tolerated before the connection is closed.
        max_message_bytes: largest WebSocket message accepted (larger: close 1009).
        shutdown_timeout_s: time allowed to flush sessions on shutdown (and after a time limit
            or idle timeout).
        max_backlog_s: audio (seconds) a session may hold undecoded; past it the server stops
            reading that client's socket until the model catches up, so TCP slows a client that
            sends faster than real time and the session's memory stays bounded. A real-time
            client never reaches it.
        final_stall_s: after the end of audio, the server waits for the final transcript as long
            as the session advances (within ``max_connection_time_s``), and gives up only when
            no decode was taken or delivered for this long; the client is then told what was not
            transcribed (an error, close code 1011).
        allowed_origins: browser origins (``"https://app.example.com"``) allowed to open
            WebSockets besides pages on localhost and the server's own pages reached by IP
            address (a page reached by host name must be listed: otherwise a DNS rebinding
            page could pass for it); ``"*"`` allows every origin. Clients that send no Origin
            header (not browsers) are always allowed.
        save_audio_dir: a folder where each session's audio is written as the model receives
            it (16 kHz mono float32 WAV, after resampling), named ``<time>-<session id>.wav``, to
            hear what the server heard; None saves nothing.
        max_upload_bytes: largest file the REST API accepts (larger: 413).
        max_upload_duration_s: longest audio the REST API transcribes (longer: 400).
        api_keys: keys a client must present (``Authorization: Bearer KEY``, or ``?token=KEY``
            on a WebSocket URL) to use the WebSocket protocols and the REST API; empty: no
            check. ``/health``, ``/metrics`` and the demo page's files stay open.
        refuse_when_full: answer a new WebSocket with HTTP 503 before the upgrade when every
            slot is taken (behind a load balancer, which then tries another instance), instead
            of accepting it and answering WAIT.
        max_load: a new WebSocket session is told to WAIT when one more real-time session
            would use more than this share of the model's capacity (measured: the model time
            the live sessions used over the last 20 s, per worker), so the running ones stay
            real time; ``max_clients`` stays the ceiling. Clients sending faster than real time
            (files) do not count: they use idle time and yield to live ones. 0 turns it off.
        diarization: label transcript words with speakers (Speaker 1, 2, ...) in every
            WebSocket session that does not opt out; needs the speaker encoder (the
            ``diarization`` extra), loaded at startup.
        max_speakers: most speakers one session's diarization tells apart.
        speaker_encoder: ``"resemblyzer"`` (default, works offline) or ``"pyannote"``.
        speaker_model: the pyannote encoder's model (a local path, or a hub name with
            ``hf_token``).
        hf_token: Hugging Face token for a gated pyannote model on the hub.
        open_whisperlive: with ``api_keys``, leave the WhisperLive path open to clients without
            a key (the stock WhisperLive client cannot send a header; it can send
            ``?token=KEY`` only through its port argument, ``port="9090/?token=KEY"``).
    """

    max_clients: int = 4
    max_connection_time_s: float = 600.0
    idle_timeout_s: float = 60.0
    quiet_flush_s: float = 1.5
    config_timeout_s: float = 10.0
    max_bad_frames: int = 10
    max_message_bytes: int = 4 * 2**20
    shutdown_timeout_s: float = 15.0
    final_stall_s: float = 60.0
    max_backlog_s: float = 120.0
    allowed_origins: tuple[str, ...] | None = None
    save_audio_dir: str | None = None
    max_upload_bytes: int = 100 * 2**20
    max_upload_duration_s: float = 4 * 3600.0
    api_keys: tuple[str, ...] = ()
    open_whisperlive: bool = False
    refuse_when_full: bool = False
    max_load: float = 0.9
    diarization: bool = False
    max_speakers: int = 8
    speaker_encoder: str = "resemblyzer"
    speaker_model: str | None = None
    hf_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _require(self.max_clients >= 1, f"max_clients must be >= 1, got {self.max_clients}")
        for name in (
            "max_connection_time_s",
            "idle_timeout_s",
            "quiet_flush_s",
            "config_timeout_s",
            "shutdown_timeout_s",
            "final_stall_s",
            "max_upload_bytes",
            "max_upload_duration_s",
        ):
            value = getattr(self, name)
            _require(value > 0, f"{name} must be > 0, got {value}")
        _require(
            self.max_backlog_s >= 35.0,
            f"max_backlog_s must be >= 35 (a 30 s window and more), got {self.max_backlog_s}",
        )
        _require(0.0 <= self.max_load <= 10.0, f"max_load must be 0..10, got {self.max_load}")
        _require(
            1 <= self.max_speakers <= 64, f"max_speakers must be 1..64, got {self.max_speakers}"
        )
        _require(
            self.max_bad_frames >= 1, f"max_bad_frames must be >= 1, got {self.max_bad_frames}"
        )
        _require(
            self.max_message_bytes >= 4096,
            f"max_message_bytes must be >= 4096, got {self.max_message_bytes}",
        )
