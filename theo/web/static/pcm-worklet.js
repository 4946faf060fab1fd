// AudioWorklet: the microphone at the context's rate → 24 kHz mono pcm16, in 100 ms chunks,
// each with its RMS level (for the meter). The Realtime API's audio/pcm is 24 kHz.

const TARGET_RATE = 24000;
const CHUNK = TARGET_RATE / 10;

class PcmCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.ratio = sampleRate / TARGET_RATE; // input samples per output sample
    this.phase = 0; // downsampling: input samples taken into the current output sample
    this.sum = 0;
    this.count = 0;
    this.last = 0; // upsampling: the previous input sample, and where between it and the next
    this.at = 0;
    this.chunk = new Int16Array(CHUNK);
    this.filled = 0;
    this.energy = 0;
    this.port.onmessage = (event) => {
      if (event.data === "flush") this.flush();
    };
  }

  push(value) {
    const clipped = Math.max(-1, Math.min(1, value));
    this.chunk[this.filled++] = clipped < 0 ? clipped * 0x8000 : clipped * 0x7fff;
    this.energy += clipped * clipped;
    if (this.filled === CHUNK) this.flush();
  }

  flush() {
    if (this.filled === 0) {
      this.port.postMessage({ pcm: null, level: 0 });
      return;
    }
    const pcm = this.chunk.slice(0, this.filled);
    const level = Math.sqrt(this.energy / this.filled);
    this.port.postMessage({ pcm: pcm.buffer, level }, [pcm.buffer]);
    this.filled = 0;
    this.energy = 0;
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0) return true;
    const frames = input[0].length;
    for (let i = 0; i < frames; i++) {
      let x = 0;
      for (let c = 0; c < input.length; c++) x += input[c][i];
      x /= input.length;
      if (this.ratio >= 1) {
        // Average the input samples each output sample spans: a box filter against aliasing.
        this.sum += x;
        this.count += 1;
        this.phase += 1;
        if (this.phase >= this.ratio) {
          this.push(this.sum / this.count);
          this.phase -= this.ratio;
          this.sum = 0;
          this.count = 0;
        }
      } else {
        // A microphone below 24 kHz: linear interpolation.
        while (this.at <= 1) {
          this.push(this.last + (x - this.last) * this.at);
          this.at += this.ratio;
        }
        this.at -= 1;
        this.last = x;
      }
    }
    return true;
  }
}

registerProcessor("pcm-capture", PcmCapture);
