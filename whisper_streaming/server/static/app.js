// Demo page: microphone or file -> 16-bit PCM -> /ws/transcribe; partial and final text back.
"use strict";

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"), mic: $("mic"), file: $("file"), clear: $("clear"), wave: $("wave"),
  final: $("final"), partial: $("partial"), words: $("m-words"), latency: $("m-latency"),
  segments: $("m-segments"), token: $("token"), speakers: $("speakers"),
};

// Speaker colours (Speaker 1 is the first), distinct for colour-blind readers (Okabe-Ito).
const SPEAKER_COLOURS = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9",
  "#7a5c00", "#444444"];

const state = {
  ws: null, ready: false, retries: 0, recording: null,
  words: 0, segments: 0, latencySum: 0, latencyCount: 0, lastChunk: null, drawPending: false,
};

function setStatus(text, isError = false) {
  ui.status.textContent = text;
  ui.status.classList.toggle("error", isError);
}

// A server started with --api-key needs a key; a browser sends it as ?token= (it cannot set
// headers on a WebSocket). It comes from the page's own ?token= or the field, and is kept.
ui.token.value = new URLSearchParams(location.search).get("token")
  || localStorage.getItem("whisper-streaming-token") || "";
ui.token.addEventListener("change", () => {
  localStorage.setItem("whisper-streaming-token", ui.token.value.trim());
  state.retries = 0;
  if (state.ws && state.ws.readyState <= WebSocket.OPEN) state.ws.close();
  else connect();
});

function wsUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const token = ui.token.value.trim();
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  return `${scheme}//${location.host}/ws/transcribe${query}`;
}

function connect() {
  const ws = new WebSocket(wsUrl());
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  ws.onopen = () => setStatus("Connected, waiting for the server…");
  ws.onmessage = (event) => handle(JSON.parse(event.data));
  ws.onclose = (event) => {
    state.ready = false;
    enableControls(false);
    if (state.recording) stopCapture();
    if (event.code === 1008 && /API key/.test(event.reason)) {
      // Refused for its key: wait for a new one instead of retrying the same.
      setStatus(`${event.reason}. Enter the API key above.`, true);
      ui.token.focus();
      return;
    }
    // Exponential backoff: 0.5 s, 1 s, 2 s, … up to 15 s.
    const delay = Math.min(15000, 500 * 2 ** state.retries++);
    setStatus(`Server unavailable; reconnecting in ${(delay / 1000).toFixed(1)} s…`, true);
    setTimeout(connect, delay);
  };
}

function enableControls(on) {
  ui.mic.disabled = !on;
  ui.file.disabled = !on;
  ui.file.parentElement.classList.toggle("disabled", !on);
}

function handle(msg) {
  switch (msg.type) {
    case "ready":
      state.ready = true;
      state.retries = 0;
      document.body.dataset.session = msg.session_id;
      enableControls(true);
      ui.speakers.disabled = !msg.diarization;
      if (!msg.diarization) ui.speakers.checked = false;
      else if (!state.speakersTouched) ui.speakers.checked = true;
      setStatus(`Ready: ${msg.backend} / ${msg.model}`);
      break;
    case "status":
      if (msg.status === "wait") {
        setStatus(`Server is full; try again in about ${msg.estimated_wait_minutes} min`, true);
      }
      break;
    case "partial":
      ui.partial.textContent = msg.text ? " " + msg.text : "";
      break;
    case "transcription":
      appendFinal(msg);
      state.segments += 1;
      state.words += msg.words ? msg.words.length : msg.text.split(/\s+/).length;
      if (state.recording && state.recording.startedAt) {
        const latency = (performance.now() - state.recording.startedAt) / 1000 - msg.end;
        state.latencySum += latency;
        state.latencyCount += 1;
      }
      showMetrics();
      break;
    case "language":
      setStatus(`Language: ${msg.language}`);
      break;
    case "stopped":
      ui.partial.textContent = "";
      setStatus("Stopped");
      document.body.dataset.stopped = "true";
      break;
    case "warning":
      setStatus(`Note: ${msg.message}`);
      break;
    case "error":
      setStatus(`Server error (${msg.code}): ${msg.message}`, true);
      break;
  }
}

// Final text is appended; with speakers, each change of speaker opens a labelled, coloured turn.
function appendFinal(msg) {
  const space = ui.final.textContent ? " " : "";
  if (msg.speaker === undefined || msg.speaker === null) {
    ui.final.append(space + msg.text);
    state.speaker = null;
    return;
  }
  const last = ui.final.lastElementChild;
  if (state.speaker === msg.speaker && last && last === ui.final.lastChild) {
    last.append(" " + msg.text);
    return;
  }
  const turn = document.createElement("span");
  turn.className = "turn";
  turn.dataset.speaker = `Speaker ${msg.speaker}`;
  turn.style.setProperty("--speaker", SPEAKER_COLOURS[(msg.speaker - 1) % SPEAKER_COLOURS.length]);
  turn.textContent = msg.text;  // its own line: no space before it
  ui.final.append(turn);
  state.speaker = msg.speaker;
}

ui.speakers.addEventListener("change", () => { state.speakersTouched = true; });

function showMetrics() {
  ui.words.textContent = String(state.words);
  ui.segments.textContent = String(state.segments);
  ui.latency.textContent = state.latencyCount
    ? `${(state.latencySum / state.latencyCount).toFixed(2)} s` : "–";
  window.demoMetrics = {
    words: state.words, segments: state.segments,
    averageLatencyS: state.latencyCount ? state.latencySum / state.latencyCount : null,
  };
}

function sendChunk(pcm) {
  state.lastChunk = new Int16Array(pcm);
  scheduleDraw();
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(pcm);
}

function startRecording(sampleRate) {
  delete document.body.dataset.stopped;
  state.ws.send(JSON.stringify({
    type: "start_recording",
    config: {
      sample_rate: sampleRate, encoding: "pcm_s16le", word_timestamps: true,
      diarization: ui.speakers.checked,
    },
  }));
}

async function startMicrophone() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus("This browser cannot capture audio (needs https or localhost).", true);
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      // Raw audio: echo cancellation, noise suppression and automatic gain control are tuned
      // for calls and cost the recogniser accuracy.
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
  } catch (err) {
    const denied = err.name === "NotAllowedError" || err.name === "SecurityError";
    const missing = err.name === "NotFoundError" || err.name === "OverconstrainedError";
    setStatus(denied ? "Microphone access was denied: allow it in the browser to transcribe."
      : missing ? "No microphone was found: connect one, or transcribe a file instead."
      : `Cannot open the microphone: ${err.message}`, true);
    return;
  }
  const context = new AudioContext();
  await context.audioWorklet.addModule("/static/pcm-worklet.js");
  const source = context.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(context, "pcm-worklet");
  node.port.onmessage = (event) => sendChunk(event.data);
  source.connect(node);
  startRecording(context.sampleRate);
  state.recording = { kind: "mic", context, stream, node, startedAt: performance.now() };
  ui.mic.textContent = "Stop";
  ui.mic.classList.add("recording");
  setStatus("Listening…");
}

function stopCapture() {
  const rec = state.recording;
  if (!rec) return;
  state.recording = null;
  scheduleDraw(); // back to a flat line
  if (rec.kind === "mic") {
    rec.node.disconnect();
    rec.stream.getTracks().forEach((t) => t.stop());
    rec.context.close();
  } else {
    rec.cancelled = true;
  }
  ui.mic.textContent = "Start microphone";
  ui.mic.classList.remove("recording");
  if (state.ws && state.ws.readyState === WebSocket.OPEN) {
    state.ws.send(JSON.stringify({ type: "stop_recording" }));
    setStatus("Finishing…");
  }
}

async function transcribeFile(file) {
  setStatus(`Decoding ${file.name}…`);
  let audio;
  try {
    const bytes = await file.arrayBuffer();
    const decoded = await new AudioContext().decodeAudioData(bytes);
    // Mix down and resample to 16 kHz in the browser.
    const frames = Math.ceil(decoded.duration * 16000);
    const offline = new OfflineAudioContext(1, frames, 16000);
    const src = offline.createBufferSource();
    src.buffer = decoded;
    src.connect(offline.destination);
    src.start();
    audio = (await offline.startRendering()).getChannelData(0);
  } catch (err) {
    setStatus(`Cannot decode ${file.name}: ${err.message || err}`, true);
    return;
  }
  startRecording(16000);
  const rec = { kind: "file", startedAt: performance.now(), cancelled: false };
  state.recording = rec;
  setStatus(`Streaming ${file.name}…`);
  const chunk = 1600;
  for (let i = 0; i < audio.length && !rec.cancelled; i += chunk) {
    const part = audio.subarray(i, i + chunk);
    const pcm = new Int16Array(part.length);
    for (let j = 0; j < part.length; j++) {
      const s = Math.max(-1, Math.min(1, part[j]));
      pcm[j] = s < 0 ? s * 0x8000 : s * 0x7fff;
    }
    sendChunk(pcm.buffer);
    // Real time, so partial text appears as it would for live speech.
    const due = rec.startedAt + ((i + chunk) / 16000) * 1000;
    await new Promise((r) => setTimeout(r, Math.max(0, due - performance.now())));
  }
  if (state.recording === rec) stopCapture();
}

function drawWave() {
  const c = ui.wave;
  const g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  g.strokeStyle = "#2f6fde";
  g.lineWidth = 2;
  g.beginPath();
  const data = state.recording ? state.lastChunk : null;
  const mid = c.height / 2;
  if (data && data.length) {
    const step = data.length / c.width;
    for (let x = 0; x < c.width; x++) {
      const y = mid - (data[Math.floor(x * step)] / 32768) * mid * 0.95;
      if (x === 0) g.moveTo(x, y); else g.lineTo(x, y);
    }
  } else {
    g.moveTo(0, mid);
    g.lineTo(c.width, mid);
  }
  g.stroke();
}

// Redraw on the next frame only when there is something new (a chunk every ~100 ms), instead of
// at the display's frame rate.
function scheduleDraw() {
  if (state.drawPending) return;
  state.drawPending = true;
  requestAnimationFrame(() => {
    state.drawPending = false;
    drawWave();
  });
}

ui.mic.addEventListener("click", () => (state.recording ? stopCapture() : startMicrophone()));
ui.file.addEventListener("change", () => {
  if (ui.file.files.length) transcribeFile(ui.file.files[0]);
  ui.file.value = "";
});
ui.clear.addEventListener("click", () => {
  ui.final.textContent = "";
  ui.partial.textContent = "";
  Object.assign(state, { words: 0, segments: 0, latencySum: 0, latencyCount: 0, speaker: null });
  showMetrics();
});

scheduleDraw();
connect();
