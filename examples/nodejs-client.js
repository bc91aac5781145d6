#!/usr/bin/env node
// Stream a 16-bit PCM wav file (or the microphone) to whisper_streaming's JSON protocol and print
// partial and final text.
//
//   node nodejs-client.js speech.wav [--url ws://localhost:9090/ws/transcribe] [--duration 30]
//   node nodejs-client.js --mic [--duration 10]        (needs sox's `rec` or ALSA's `arecord`)
"use strict";

const fs = require("fs");
const { spawn, spawnSync } = require("child_process");
const WebSocket = require("ws");

function parseArgs(argv) {
  const args = { url: "ws://localhost:9090/ws/transcribe", duration: null, mic: false,
    file: null, fast: false, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--url") args.url = argv[++i];
    else if (a === "--duration") args.duration = Number(argv[++i]);
    else if (a === "--mic") args.mic = true;
    else if (a === "--fast") args.fast = true;
    else if (a === "--json") args.json = true;
    else if (a === "-h" || a === "--help") args.help = true;
    else if (!a.startsWith("--")) args.file = a;
    else throw new Error(`unknown option ${a}`);
  }
  if (args.duration !== null && !(args.duration > 0)) throw new Error("--duration must be > 0");
  return args;
}

// Minimal RIFF/WAVE reader: 16-bit PCM, any rate, mono or stereo (the first channel is used).
function readWav(path) {
  const buf = fs.readFileSync(path);
  if (buf.toString("ascii", 0, 4) !== "RIFF" || buf.toString("ascii", 8, 12) !== "WAVE") {
    throw new Error(`${path} is not a WAV file`);
  }
  let offset = 12;
  let fmt = null;
  while (offset + 8 <= buf.length) {
    const id = buf.toString("ascii", offset, offset + 4);
    const size = buf.readUInt32LE(offset + 4);
    const body = offset + 8;
    if (id === "fmt ") {
      fmt = { format: buf.readUInt16LE(body), channels: buf.readUInt16LE(body + 2),
        rate: buf.readUInt32LE(body + 4), bits: buf.readUInt16LE(body + 14) };
    } else if (id === "data") {
      if (!fmt) throw new Error("WAV data before its fmt chunk");
      if (fmt.format !== 1 || fmt.bits !== 16) throw new Error("only 16-bit PCM WAV files are supported");
      const data = buf.subarray(body, Math.min(buf.length, body + size));
      if (fmt.channels === 1) return { rate: fmt.rate, pcm: Buffer.from(data) };
      const frames = Math.floor(data.length / (2 * fmt.channels));
      const mono = Buffer.alloc(frames * 2);
      for (let f = 0; f < frames; f++) mono.writeInt16LE(data.readInt16LE(f * 2 * fmt.channels), f * 2);
      return { rate: fmt.rate, pcm: mono };
    }
    offset = body + size + (size % 2);
  }
  throw new Error("WAV file has no data chunk");
}

function micProcess(rate) {
  const have = (cmd) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
  if (have("rec")) {
    return spawn("rec", ["-q", "-t", "raw", "-b", "16", "-e", "signed-integer", "-c", "1",
      "-r", String(rate), "-"], { stdio: ["ignore", "pipe", "inherit"] });
  }
  if (have("arecord")) {
    return spawn("arecord", ["-q", "-f", "S16_LE", "-c", "1", "-r", String(rate), "-t", "raw"],
      { stdio: ["ignore", "pipe", "inherit"] });
  }
  throw new Error("--mic needs sox (`rec`) or ALSA (`arecord`): apt-get install sox (or alsa-utils)");
}

function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`error: ${err.message}`);
    process.exit(2);
  }
  if (args.help || (!args.file && !args.mic)) {
    console.log("usage: node nodejs-client.js FILE.wav | --mic [--url URL] [--duration S] [--fast]");
    process.exit(args.help ? 0 : 2);
  }
  let source;
  try {
    source = args.mic ? { rate: 16000, pcm: null } : readWav(args.file);
  } catch (err) {
    console.error(`error: ${err.message}`);
    process.exit(2);
  }

  const finals = [];
  const ws = new WebSocket(args.url);
  let mic = null;
  let timer = null;
  const stop = () => {
    if (timer) clearTimeout(timer);
    if (mic) mic.kill();
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "stop_recording" }));
  };

  ws.on("open", () => {});
  ws.on("error", (err) => {
    console.error(`error: cannot reach ${args.url}: ${err.message}`);
    process.exit(1);
  });
  ws.on("message", (raw) => {
    const msg = JSON.parse(raw.toString());
    if (args.json) console.log(JSON.stringify(msg));
    if (msg.type === "ready") {
      ws.send(JSON.stringify({ type: "start_recording",
        config: { sample_rate: source.rate, encoding: "pcm_s16le" } }));
      if (args.mic) {
        try {
          mic = micProcess(source.rate);
        } catch (err) {
          console.error(`error: ${err.message}`);
          process.exit(1);
        }
        mic.stdout.on("data", (chunk) => ws.send(chunk));
        if (args.duration) timer = setTimeout(stop, args.duration * 1000);
        process.on("SIGINT", stop);
      } else {
        streamFile(ws, source, args, stop);
      }
    } else if (msg.type === "partial") {
      if (!args.json && msg.text) process.stderr.write(`\r\x1b[K… ${msg.text.slice(-100)}`);
    } else if (msg.type === "transcription") {
      finals.push(msg.text);
      if (!args.json) process.stderr.write(`\r\x1b[K[${msg.start.toFixed(2)}-${msg.end.toFixed(2)}] ${msg.text}\n`);
    } else if (msg.type === "status" && msg.status === "wait") {
      console.error(`error: server is full; try again in ~${msg.estimated_wait_minutes} min`);
      process.exit(1);
    } else if (msg.type === "error") {
      console.error(`server error (${msg.code}): ${msg.message}`);
    } else if (msg.type === "stopped") {
      if (!args.json) console.log(finals.join(" "));
      ws.close();
    }
  });
  ws.on("close", () => process.exit(0));
}

function streamFile(ws, source, args, stop) {
  const bytesPerChunk = Math.round(source.rate / 10) * 2; // 100 ms
  const limit = args.duration ? Math.min(source.pcm.length, Math.round(args.duration * source.rate) * 2)
    : source.pcm.length;
  const started = Date.now();
  let offset = 0;
  const next = () => {
    if (offset >= limit) return stop();
    ws.send(source.pcm.subarray(offset, Math.min(limit, offset + bytesPerChunk)));
    offset += bytesPerChunk;
    const due = started + (offset / 2 / source.rate) * 1000;
    setTimeout(next, args.fast ? 0 : Math.max(0, due - Date.now()));
  };
  next();
}

main();
