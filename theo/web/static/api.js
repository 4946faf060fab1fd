// Calls to Theo's public API, exactly as any OpenAI client makes them, and its errors in
// plain words: OpenAI's {"error": {"message": ...}} body when there is one.

const KEY_STORAGE = "theo.apiKey";

export function apiKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

export function setApiKey(key) {
  try {
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // Storage disabled: the key lasts until the page is closed.
  }
}

function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** An error to show as is: `message` is the server's (or a plain description). */
export class ApiError extends Error {
  constructor(message, { status = 0, code = null, param = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.param = param;
  }
}

/** The error a response body describes: OpenAI's shape, else the status line. */
export function errorFromBody(status, statusText, body) {
  try {
    const parsed = typeof body === "string" ? JSON.parse(body) : body;
    const error = parsed && parsed.error;
    if (error && typeof error.message === "string") {
      return new ApiError(error.message, { status, code: error.code, param: error.param });
    }
  } catch {
    // not JSON: fall through
  }
  const what = statusText ? `${status} ${statusText}` : `status ${status}`;
  return new ApiError(`The server answered ${what}.`, { status });
}

const UNREACHABLE = "The server did not answer. Is Theo still running?";

export async function getJSON(path) {
  let response;
  try {
    response = await fetch(path, { headers: authHeaders(), cache: "no-store" });
  } catch {
    throw new ApiError(UNREACHABLE);
  }
  const text = await response.text();
  if (!response.ok) throw errorFromBody(response.status, response.statusText, text);
  return JSON.parse(text);
}

/** `/v1/models`: each card, with Theo's `capabilities` when the server sends them. */
export async function listModels() {
  const body = await getJSON("/v1/models");
  return body.data;
}

/** `/health`: {ready, models}; never throws for a 503 (models still loading). */
export async function health() {
  try {
    const response = await fetch("/health", { cache: "no-store" });
    const body = await response.json();
    return { ready: response.ok, models: body.models || {} };
  } catch {
    return { ready: false, unreachable: true, models: {} };
  }
}

function formData(file, fields) {
  const form = new FormData();
  form.append("file", file, file.name || "audio");
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined || value === null || value === "") continue;
    for (const item of Array.isArray(value) ? value : [value]) form.append(name, String(item));
  }
  return form;
}

/**
 * POST an audio file; the upload's progress and the stream's events as they come.
 *
 * `fields.stream` true: the body is server-sent events, each passed to `onEvent`; resolves
 * with the `transcript.text.done` event. Otherwise resolves with the JSON body. Rejects
 * with an ApiError (an `error` event included); `signal` aborts.
 */
export function postAudio(path, file, fields, { onUploadProgress, onUploaded, onEvent, signal } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    let parsedUpTo = 0;
    let done = null;
    let failure = null;

    // Server-sent events: blocks separated by a blank line, `data:` lines in each.
    const readEvents = (final) => {
      const text = xhr.responseText;
      let end;
      while ((end = nextBlockEnd(text, parsedUpTo)) !== -1) {
        const block = text.slice(parsedUpTo, end.start);
        parsedUpTo = end.next;
        handleBlock(block);
      }
      if (final && parsedUpTo < text.length) handleBlock(text.slice(parsedUpTo));
    };
    const handleBlock = (block) => {
      const data = block
        .split(/\r?\n/)
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      if (!data || failure) return;
      let event;
      try {
        event = JSON.parse(data);
      } catch {
        return;
      }
      if (event.type === "error") {
        failure = errorFromBody(500, "", event);
        return;
      }
      if (event.type === "transcript.text.done") done = event;
      if (onEvent) onEvent(event);
    };
    const streaming = () =>
      xhr.status >= 200 && xhr.status < 300 &&
      (xhr.getResponseHeader("content-type") || "").startsWith("text/event-stream");

    xhr.upload.onprogress = (event) => {
      if (onUploadProgress && event.lengthComputable) onUploadProgress(event.loaded / event.total);
    };
    xhr.upload.onload = () => onUploaded && onUploaded();
    xhr.onprogress = () => {
      if (streaming()) readEvents(false);
    };
    xhr.onload = () => {
      if (xhr.status < 200 || xhr.status >= 300) {
        reject(errorFromBody(xhr.status, xhr.statusText, xhr.responseText));
        return;
      }
      if (!streaming()) {
        try {
          resolve(JSON.parse(xhr.responseText));
        } catch {
          resolve({ text: xhr.responseText });
        }
        return;
      }
      readEvents(true);
      if (failure) reject(failure);
      else if (done) resolve(done);
      else reject(new ApiError("The transcript stream ended before it was done. Try again."));
    };
    xhr.onerror = () => reject(new ApiError(UNREACHABLE));
    xhr.onabort = () => reject(new ApiError("Stopped.", { code: "aborted" }));
    if (signal) signal.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(formData(file, fields));
  });
}

function nextBlockEnd(text, from) {
  const match = /\r?\n\r?\n/.exec(text.slice(from));
  if (!match) return -1;
  return { start: from + match.index, next: from + match.index + match[0].length };
}

/** The WebSocket URL of a path on this server. */
export function socketURL(path) {
  const url = new URL(path, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

/** Subprotocols for /v1/realtime: browsers cannot set headers, so the key travels here. */
export function realtimeProtocols() {
  const key = apiKey();
  return key ? ["realtime", `openai-insecure-api-key.${key}`] : ["realtime"];
}
