// Live captions: the microphone → /v1/realtime, OpenAI's Realtime API in a transcription
// session. The server finds where each sentence ends (server VAD), sends text while it is
// spoken (…transcription.delta) and the final text per sentence (…transcription.completed).

import { ApiError, getJSON, realtimeProtocols, socketURL } from "./api.js";

const RATE = 24000;
const FINISH_TIMEOUT_MS = 15000;

/** Why the microphone cannot be used here, or "" if it can. */
export function microphoneProblem() {
  if (!window.isSecureContext) {
    return (
      "Browsers allow the microphone only on a secure page: open Theo at http://localhost " +
      "on this machine, or serve it over HTTPS."
    );
  }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.AudioWorkletNode) {
    return "This browser cannot record audio for live captions.";
  }
  return "";
}

function base64(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

export class LiveSession {
  /**
   * `options`: model, language, prompt. Callbacks: onState(state, text), onLevel(0..1),
   * onUtterance(id, {text, final, failed, startMs}), onError(message).
   */
  constructor(options, callbacks) {
    this.options = options;
    this.cb = callbacks;
    this.socket = null;
    this.context = null;
    this.stream = null;
    this.queue = [];
    this.pending = new Set();
    this.utterances = new Map();
    this.speaking = false;
    this.awaitingCommit = false;
    this.stopping = false;
    this.opened = false;
    this.lastError = "";
    this.idle = null;
  }

  async start() {
    const problem = microphoneProblem();
    if (problem) throw new ApiError(problem);
    this.cb.onState("starting", "Asking for the microphone…");
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (error) {
      const denied = error && (error.name === "NotAllowedError" || error.name === "SecurityError");
      throw new ApiError(
        denied
          ? "The browser did not allow the microphone. Allow it for this page and try again."
          : "No microphone was found.",
      );
    }
    this.context = new AudioContext();
    await this.context.audioWorklet.addModule("/web/pcm-worklet.js");
    const source = this.context.createMediaStreamSource(this.stream);
    this.worklet = new AudioWorkletNode(this.context, "pcm-capture");
    this.worklet.port.onmessage = (event) => this.onAudio(event.data);
    source.connect(this.worklet);
    this.worklet.connect(this.context.destination); // silent: it writes no output
    this.cb.onState("starting", "Connecting…");
    await this.connect();
  }

  connect() {
    return new Promise((resolve, reject) => {
      const params = new URLSearchParams({ intent: "transcription", model: this.options.model });
      let socket;
      try {
        socket = new WebSocket(socketURL(`/v1/realtime?${params}`), realtimeProtocols());
      } catch {
        reject(new ApiError("This API key cannot be sent from a browser (it has characters a WebSocket protocol may not carry)."));
        return;
      }
      this.socket = socket;
      socket.onopen = () => {
        this.opened = true;
        this.send({ type: "session.update", session: this.sessionConfig() });
        for (const chunk of this.queue.splice(0)) this.sendAudio(chunk);
        resolve();
      };
      socket.onmessage = (message) => {
        try {
          this.onEvent(JSON.parse(message.data));
        } catch {
          // not an event: ignore
        }
      };
      socket.onclose = (event) => {
        const wasOpen = this.opened;
        this.opened = false;
        if (!wasOpen) {
          this.release();
          this.refusal().then((message) => reject(new ApiError(message)));
          return;
        }
        if (!this.stopping) {
          this.release();
          const why = this.lastError || event.reason || `The live session ended (code ${event.code}).`;
          this.cb.onError(why);
          this.cb.onState("stopped", "Stopped.");
        }
        if (this.idle) this.idle();
      };
    });
  }

  /** Why the server refused the WebSocket: browsers hide the handshake's answer, so ask. */
  async refusal() {
    try {
      await getJSON("/v1/models");
    } catch (error) {
      return error.message;
    }
    return "The server refused the live session. Is the API key right, and is the server up to date?";
  }

  sessionConfig() {
    const transcription = { model: this.options.model };
    if (this.options.language) transcription.language = this.options.language;
    if (this.options.prompt) transcription.prompt = this.options.prompt;
    return {
      type: "transcription",
      audio: {
        input: {
          format: { type: "audio/pcm", rate: RATE },
          transcription,
          turn_detection: { type: "server_vad" },
        },
      },
    };
  }

  send(event) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(event));
  }

  sendAudio(buffer) {
    this.send({ type: "input_audio_buffer.append", audio: base64(buffer) });
  }

  onAudio({ pcm, level }) {
    this.cb.onLevel(Math.min(1, Math.max(0, (20 * Math.log10(level + 1e-6) + 60) / 50)));
    if (!pcm || !this.stream) return; // released: the session is stopping
    if (this.opened) this.sendAudio(pcm);
    else this.queue.push(pcm);
  }

  utterance(id, startMs) {
    let u = this.utterances.get(id);
    if (!u) {
      u = { text: "", final: false, failed: false, startMs: startMs ?? null };
      this.utterances.set(id, u);
    }
    return u;
  }

  onEvent(event) {
    const id = event.item_id;
    switch (event.type) {
      case "session.updated":
        if (!this.stopping) this.cb.onState("listening", "Listening. Speak, and pause between sentences.");
        break;
      case "input_audio_buffer.speech_started":
        this.speaking = true;
        this.cb.onUtterance(id, this.utterance(id, event.audio_start_ms));
        break;
      case "input_audio_buffer.speech_stopped":
        this.speaking = false;
        break;
      case "input_audio_buffer.committed":
        this.speaking = false;
        this.awaitingCommit = false;
        this.pending.add(id);
        break;
      case "conversation.item.input_audio_transcription.delta": {
        const u = this.utterance(id);
        u.text += event.delta;
        this.cb.onUtterance(id, u);
        break;
      }
      case "conversation.item.input_audio_transcription.completed": {
        const u = this.utterance(id);
        u.text = event.transcript;
        u.final = true;
        this.pending.delete(id);
        this.cb.onUtterance(id, u);
        break;
      }
      case "conversation.item.input_audio_transcription.failed": {
        const u = this.utterance(id);
        u.failed = true;
        u.final = true;
        u.text = (event.error && event.error.message) || "This sentence could not be transcribed.";
        this.pending.delete(id);
        this.cb.onUtterance(id, u);
        break;
      }
      case "error": {
        const error = event.error || {};
        // Stopping right after a sentence ended commits nothing: not worth a message.
        if (error.code === "input_audio_buffer_commit_empty") {
          this.awaitingCommit = false;
          break;
        }
        this.lastError = error.message || "The server reported an error.";
        this.cb.onError(this.lastError);
        break;
      }
      default:
        break;
    }
    if (this.stopping && this.idle) this.idle();
  }

  /** Stop listening, let the server finish the last sentence, then close the session. */
  async stop() {
    if (this.stopping) return;
    this.stopping = true;
    if (this.worklet) this.worklet.port.postMessage("flush");
    await new Promise((resolve) => setTimeout(resolve, 60)); // the flushed chunk's message
    this.release();
    if (this.opened) {
      if (this.speaking) {
        this.cb.onState("finishing", "Finishing the last sentence…");
        this.awaitingCommit = true;
        this.send({ type: "input_audio_buffer.commit" });
      }
      if (this.pending.size) this.cb.onState("finishing", "Finishing the last sentence…");
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, FINISH_TIMEOUT_MS);
        this.idle = () => {
          if ((this.pending.size === 0 && !this.awaitingCommit) || !this.opened) {
            clearTimeout(timer);
            resolve();
          }
        };
        this.idle();
      });
      this.idle = null;
      if (this.socket && this.socket.readyState <= WebSocket.OPEN) this.socket.close(1000, "done");
    }
    this.cb.onLevel(0);
    this.cb.onState("stopped", "Stopped.");
  }

  /** Let go of the microphone and the audio graph. */
  release() {
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.stream = null;
    if (this.worklet) this.worklet.port.onmessage = null;
    if (this.context && this.context.state !== "closed") this.context.close();
    this.context = null;
  }
}
