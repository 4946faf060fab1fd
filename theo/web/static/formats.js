// The downloads, written from a verbose_json body exactly as the server writes
// response_format text, srt and vtt (theo/formats.py), so no second request is needed.

// Python's round(): halves go to the even neighbour.
function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function timestamp(seconds, decimalMarker) {
  let millis = Math.max(0, roundHalfEven(seconds * 1000));
  const hours = Math.floor(millis / 3_600_000);
  millis -= hours * 3_600_000;
  const minutes = Math.floor(millis / 60_000);
  millis -= minutes * 60_000;
  const secs = Math.floor(millis / 1000);
  millis -= secs * 1000;
  const pad = (n, width) => String(n).padStart(width, "0");
  return `${pad(hours, 2)}:${pad(minutes, 2)}:${pad(secs, 2)}${decimalMarker}${pad(millis, 3)}`;
}

function cues(segments, decimalMarker) {
  return segments.map(
    (s) => `${timestamp(s.start, decimalMarker)} --> ${timestamp(s.end, decimalMarker)}\n${s.text.trim()}\n`,
  );
}

export function toText(text) {
  return `${text}\n`;
}

export function toSrt(segments) {
  return cues(segments, ",").map((cue, i) => `${i + 1}\n${cue}`).join("\n");
}

export function toVtt(segments) {
  return `WEBVTT\n\n${cues(segments, ".").join("\n")}`;
}

export function toJson(body) {
  return `${JSON.stringify(body, null, 2)}\n`;
}

/** A time to read on screen: 0:07.4, 12:03.0, 1:02:03.0. */
export function clock(seconds) {
  const tenths = Math.max(0, Math.round(seconds * 10));
  const h = Math.floor(tenths / 36000);
  const m = Math.floor((tenths % 36000) / 600);
  const s = ((tenths % 600) / 10).toFixed(1).padStart(4, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

export function fileSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}
