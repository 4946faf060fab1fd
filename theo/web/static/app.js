// The page: options, a file (streamed transcript, then timed segments) and live captions.
// Everything goes through Theo's public API (api.js), as any OpenAI client would call it.

import { ApiError, apiKey, health, listModels, postAudio, setApiKey } from "./api.js";
import { clock, fileSize, toJson, toSrt, toText, toVtt } from "./formats.js";
import { LiveSession, microphoneProblem } from "./live.js";

const $ = (id) => document.getElementById(id);
const PREFS = "theo.prefs";
const languageNames = (() => {
  try {
    return new Intl.DisplayNames([navigator.language || "en", "en"], { type: "language" });
  } catch {
    return null;
  }
})();

const state = {
  models: new Map(), // id → card
  file: null,
  audioURL: null,
  job: null, // {controller}
  segments: [],
  live: null,
  captions: new Map(), // item id → <li>
  downloads: [],
};

// -- Messages ------------------------------------------------------------------------------

function showNotice(message) {
  $("notice-text").textContent = message;
  $("notice").hidden = false;
}

function hideNotice() {
  $("notice").hidden = true;
}

function messageOf(error) {
  if (error instanceof ApiError) return error.message;
  return "Something went wrong in this page. Reload it and try again.";
}

function reportError(error) {
  showNotice(messageOf(error));
  if (error instanceof ApiError && error.status === 401) openKeyPanel();
}

// -- API key -------------------------------------------------------------------------------

function openKeyPanel() {
  $("key-panel").hidden = false;
  $("key-toggle").setAttribute("aria-expanded", "true");
  $("api-key").focus();
}

function setUpKey() {
  $("api-key").value = apiKey();
  $("key-toggle").addEventListener("click", () => {
    if ($("key-panel").hidden) openKeyPanel();
    else {
      $("key-panel").hidden = true;
      $("key-toggle").setAttribute("aria-expanded", "false");
    }
  });
  $("key-panel").addEventListener("submit", (event) => {
    event.preventDefault();
    setApiKey($("api-key").value.trim());
    hideNotice();
    loadModels();
  });
  $("key-forget").addEventListener("click", () => {
    $("api-key").value = "";
    setApiKey("");
    loadModels();
  });
}

// -- Server and models -----------------------------------------------------------------------

async function watchHealth() {
  const status = $("server-status");
  const { ready, unreachable, models } = await health();
  const count = Object.keys(models).length;
  if (ready) {
    status.dataset.state = "ready";
    status.textContent = count === 1 ? "1 model ready" : `${count} models ready`;
    return;
  }
  status.dataset.state = unreachable ? "down" : "loading";
  status.textContent = unreachable ? "Server unreachable" : "Models loading…";
  setTimeout(watchHealth, 3000);
}

function prefs() {
  try {
    return JSON.parse(localStorage.getItem(PREFS) || "{}");
  } catch {
    return {};
  }
}

/** Remember choices for the next visit; the language only when a person picked it. */
function savePrefs(changes) {
  try {
    localStorage.setItem(PREFS, JSON.stringify({ ...prefs(), ...changes }));
  } catch {
    // no storage: nothing to remember
  }
}

function describeModel(card) {
  const caps = card.capabilities;
  if (!caps) return "";
  if (caps.translation) return "translates";
  return caps.languages.length > 1 ? "multilingual" : `${languageName(caps.languages[0])} only`;
}

function modelHint(caps) {
  if (!caps) return "";
  const count = caps.languages.length;
  const spoken = count === 1 ? `${languageName(caps.languages[0])} only` : `${count} languages`;
  return caps.translation ? `${spoken} · translates into English` : `${spoken} · does not translate`;
}

function languageName(code) {
  const name = languageNames && languageNames.of(code);
  return name && name !== code ? name : code;
}

async function loadModels() {
  const select = $("model");
  let cards;
  try {
    cards = await listModels();
  } catch (error) {
    reportError(error);
    select.replaceChildren(new Option("No models: see the message above", ""));
    select.disabled = true;
    return;
  }
  hideNotice();
  state.models = new Map(cards.map((card) => [card.id, card]));
  const wanted = prefs().model;
  select.replaceChildren(
    ...cards.map((card) => {
      const what = describeModel(card);
      return new Option(what ? `${card.id} (${what})` : card.id, card.id);
    }),
  );
  select.disabled = cards.length === 0;
  if (wanted && state.models.has(wanted)) select.value = wanted;
  if (prefs().task === "translate") $("task-translate").checked = true;
  updateOptions();
}

function task() {
  return $("task-translate").checked ? "translate" : "transcribe";
}

/** Offer what the chosen model can do: translation, its languages. */
function updateOptions() {
  const card = state.models.get($("model").value);
  const caps = card && card.capabilities;
  const translates = !caps || caps.translation;
  $("task-translate").disabled = !translates;
  if (!translates && task() === "translate") $("task-transcribe").checked = true;
  $("model-hint").textContent = modelHint(caps);

  const select = $("language");
  const wanted = prefs().language || "";
  const codes = caps ? [...caps.languages] : [];
  const options = codes
    .map((code) => [code, languageName(code)])
    .sort((a, b) => a[1].localeCompare(b[1]))
    .map(([code, name]) => new Option(name === code ? code : `${name} (${code})`, code));
  const detects = !caps || caps.language_detection || codes.length > 1;
  select.replaceChildren(...(detects ? [new Option("Detect automatically", "")] : []), ...options);
  if ([...select.options].some((o) => o.value === wanted)) select.value = wanted;
  const translating = task() === "translate";
  select.disabled = translating || select.options.length < 2;
  $("language-hint").textContent = translating
    ? "Detected automatically; the text comes out in English."
    : "";
  savePrefs({ model: $("model").value, task: task() });
  showExample();
}

function options() {
  return {
    model: $("model").value,
    task: task(),
    language: task() === "translate" ? "" : $("language").value,
    prompt: $("prompt").value.trim(),
  };
}

function showExample() {
  const { model, task: what, language, prompt } = options();
  const path = what === "translate" ? "translations" : "transcriptions";
  const name = state.file ? state.file.name.replace(/[^\w.-]/g, "_") : "audio.mp3";
  const lines = [`curl ${window.location.origin}/v1/audio/${path} \\`];
  if (apiKey()) lines.push('  -H "Authorization: Bearer $THEO_API_KEY" \\');
  lines.push(`  -F file=@${name} -F model=${model} \\`);
  if (language) lines.push(`  -F language=${language} \\`);
  if (prompt) lines.push(`  -F prompt=${JSON.stringify(prompt)} \\`);
  lines.push("  -F response_format=verbose_json     # or -F stream=true for the text as it comes");
  $("example").textContent = lines.join("\n");
}

// -- Tabs -----------------------------------------------------------------------------------

function setUpTabs() {
  const tabs = [$("tab-file"), $("tab-live")];
  const select = (tab) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute("aria-controls")).hidden = !on;
    }
  };
  for (const tab of tabs) {
    tab.addEventListener("click", () => select(tab));
    tab.addEventListener("keydown", (event) => {
      const i = tabs.indexOf(tab);
      const next = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (next === undefined) return;
      event.preventDefault();
      const target = tabs[(i + next + tabs.length) % tabs.length];
      select(target);
      target.focus();
    });
  }
}

// -- A file ---------------------------------------------------------------------------------

function setUpFile() {
  const drop = $("drop");
  const input = $("file");
  input.addEventListener("change", () => {
    if (input.files.length) startFile(input.files[0]);
    input.value = "";
  });
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add("dragging");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("dragging"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) startFile(file);
  });
  // A file dropped beside the zone must not make the browser leave the page.
  for (const type of ["dragover", "drop"]) window.addEventListener(type, (event) => event.preventDefault());

  $("rerun").addEventListener("click", () => state.file && startFile(state.file));
  $("cancel").addEventListener("click", () => state.job && state.job.controller.abort());
  $("copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($("transcript").textContent);
      $("copy").textContent = "Copied";
      setTimeout(() => ($("copy").textContent = "Copy"), 1500);
    } catch {
      window.getSelection().selectAllChildren($("transcript"));
    }
  });
  const player = $("player");
  player.addEventListener("timeupdate", () => highlightSegment(player.currentTime));
  player.addEventListener("error", () => {
    if (player.getAttribute("src")) $("job-meta").textContent += " · this browser cannot play it";
  });
  player.addEventListener("loadedmetadata", () => {
    if (Number.isFinite(player.duration)) $("job-meta").textContent += ` · ${clock(player.duration)}`;
  });
}

function setProgress(fraction, text) {
  const bar = $("progress-bar");
  if (fraction === null) {
    bar.classList.add("indeterminate");
    bar.removeAttribute("aria-valuenow");
    bar.style.width = "";
  } else {
    bar.classList.remove("indeterminate");
    bar.setAttribute("aria-valuenow", String(Math.round(fraction * 100)));
    bar.style.width = `${fraction * 100}%`;
  }
  $("progress").hidden = false;
  $("job-status").textContent = text;
}

function resetDownloads() {
  for (const url of state.downloads) URL.revokeObjectURL(url);
  state.downloads = [];
  for (const id of ["download-txt", "download-srt", "download-vtt", "download-json"]) {
    const link = $(id);
    link.removeAttribute("href");
    link.setAttribute("aria-disabled", "true");
  }
}

function offerDownload(id, name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  state.downloads.push(url);
  const link = $(id);
  link.href = url;
  link.download = name;
  link.removeAttribute("aria-disabled");
}

function baseName(file) {
  return (file.name || "audio").replace(/\.[^.]+$/, "") || "audio";
}

async function startFile(file) {
  if (state.job) state.job.controller.abort();
  hideNotice();
  const model = $("model").value;
  if (!model) {
    showNotice("No model to use: the server lists none, or the API key is missing.");
    return;
  }
  state.file = file;
  const controller = new AbortController();
  const job = { controller, started: performance.now() };
  state.job = job;

  $("job").hidden = false;
  $("drop").classList.add("compact");
  $("job-name").textContent = file.name || "recording";
  $("job-meta").textContent = fileSize(file.size);
  if (state.audioURL) URL.revokeObjectURL(state.audioURL);
  state.audioURL = URL.createObjectURL(file);
  $("player").src = state.audioURL;
  $("transcript").replaceChildren();
  $("transcript").classList.remove("failed");
  $("segments").replaceChildren();
  $("segments-status").textContent = "They follow the transcript.";
  $("detected-language").hidden = true;
  $("copy").disabled = true;
  $("rerun").hidden = true;
  $("cancel").hidden = false;
  state.segments = [];
  resetDownloads();
  showExample();

  const opts = options();
  const path = opts.task === "translate" ? "/v1/audio/translations" : "/v1/audio/transcriptions";
  const fields = { model: opts.model, language: opts.language, prompt: opts.prompt };
  const transcript = $("transcript");
  let timer = null;
  const transcribing = () => {
    const seconds = Math.round((performance.now() - job.started) / 1000);
    setProgress(null, `${opts.task === "translate" ? "Translating" : "Transcribing"}… ${seconds} s`);
  };

  try {
    setProgress(0, "Uploading…");
    transcript.setAttribute("aria-busy", "true");
    let done;
    try {
      done = await postAudio(path, file, { ...fields, stream: "true" }, {
        signal: controller.signal,
        onUploadProgress: (f) => setProgress(f, `Uploading… ${Math.round(f * 100)}%`),
        onUploaded: () => {
          transcribing();
          timer = setInterval(transcribing, 1000);
        },
        onEvent: (event) => {
          if (event.type !== "transcript.text.delta" || state.job !== job) return;
          const span = document.createElement("span");
          span.className = "arrived";
          span.textContent = event.delta;
          transcript.append(span);
        },
      });
    } catch (error) {
      // A server without streaming: the same request, answered in one piece below.
      if (!(error instanceof ApiError && error.status === 400 && error.param === "stream")) throw error;
      done = null;
    }
    if (state.job !== job) return;
    if (done) {
      transcript.textContent = done.text;
      offerDownload("download-txt", `${baseName(file)}.txt`, toText(done.text), "text/plain");
      $("copy").disabled = false;
      $("segments-status").textContent = "Adding timestamps…";
    }
    transcript.setAttribute("aria-busy", "false");

    const verbose = await postAudio(path, file, { ...fields, response_format: "verbose_json" }, {
      signal: controller.signal,
      onUploaded: () => {
        if (!done && !timer) {
          transcribing();
          timer = setInterval(transcribing, 1000);
        } else if (done) {
          setProgress(null, "Adding timestamps…");
        }
      },
    });
    if (state.job !== job) return;
    showVerbose(file, verbose);
    const took = ((performance.now() - job.started) / 1000).toFixed(1);
    setProgress(1, `Done: ${clock(verbose.duration || 0)} of audio in ${took} s.`);
  } catch (error) {
    if (state.job !== job) return;
    transcript.setAttribute("aria-busy", "false");
    if (error instanceof ApiError && error.code === "aborted") {
      setProgress(0, "Stopped.");
    } else {
      reportError(error);
      setProgress(0, `Failed: ${messageOf(error)}`);
      if (!transcript.textContent) transcript.classList.add("failed");
    }
    $("segments-status").textContent = "";
  } finally {
    if (timer) clearInterval(timer);
    if (state.job === job) {
      state.job = null;
      $("cancel").hidden = true;
      $("rerun").hidden = false;
    }
  }
}

function showVerbose(file, body) {
  const base = baseName(file);
  const segments = body.segments || [];
  state.segments = segments;
  $("transcript").textContent = body.text;
  $("copy").disabled = false;
  if (body.language) {
    const chip = $("detected-language");
    chip.textContent = body.task === "translate" ? "Translated into English" : `Language: ${capitalize(body.language)}`;
    // verbose_json names the language at the start; each part of a long file is detected anew.
    chip.title = body.task === "translate" ? "" : "Detected at the start; each part of a long recording is detected on its own.";
    chip.hidden = false;
  }
  offerDownload("download-txt", `${base}.txt`, toText(body.text), "text/plain");
  offerDownload("download-srt", `${base}.srt`, toSrt(segments), "application/x-subrip");
  offerDownload("download-vtt", `${base}.vtt`, toVtt(segments), "text/vtt");
  offerDownload("download-json", `${base}.json`, toJson(body), "application/json");
  $("segments-status").textContent = segments.length
    ? "Click a line to hear it."
    : "No speech found.";
  $("segments").replaceChildren(
    ...segments.map((segment, index) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "segment";
      button.dataset.index = String(index);
      const time = document.createElement("span");
      time.className = "time";
      time.textContent = `${clock(segment.start)}–${clock(segment.end)}`;
      const text = document.createElement("span");
      text.className = "text";
      text.textContent = segment.text.trim();
      button.append(time, text);
      button.setAttribute("aria-label", `Play from ${clock(segment.start)}: ${segment.text.trim()}`);
      button.addEventListener("click", () => playFrom(segment.start));
      item.append(button);
      return item;
    }),
  );
}

function capitalize(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function playFrom(seconds) {
  const player = $("player");
  player.currentTime = seconds;
  const playing = player.play();
  if (playing) playing.catch(() => {}); // unplayable here: the time is still set
  highlightSegment(seconds);
}

function highlightSegment(time) {
  const buttons = $("segments").querySelectorAll(".segment");
  let current = -1;
  state.segments.forEach((s, i) => {
    if (time >= s.start && time < s.end) current = i;
  });
  buttons.forEach((button, i) => button.classList.toggle("playing", i === current));
}

// -- Live captions ---------------------------------------------------------------------------

function setUpLive() {
  const problem = microphoneProblem();
  if (problem) $("live-hint").textContent = problem;
  $("record").addEventListener("click", () => (state.live ? stopLive() : startLive()));
  $("clear-captions").addEventListener("click", () => {
    $("captions").replaceChildren();
    state.captions.clear();
    updateLiveDownload();
  });
}

function setRecording(on) {
  const button = $("record");
  button.setAttribute("aria-pressed", String(on));
  button.classList.toggle("on", on);
  $("record-label").textContent = on ? "Stop" : "Start recording";
  for (const id of ["model", "language", "prompt", "task-transcribe", "task-translate"]) {
    const control = $(id);
    if (on) {
      control.dataset.wasDisabled = String(control.disabled);
      control.disabled = true;
    } else if (control.dataset.wasDisabled !== undefined) {
      control.disabled = control.dataset.wasDisabled === "true";
      delete control.dataset.wasDisabled;
    }
  }
}

async function startLive() {
  hideNotice();
  const opts = options();
  if (!opts.model) {
    showNotice("No model to use: the server lists none, or the API key is missing.");
    return;
  }
  const language = task() === "translate" ? "" : opts.language;
  $("live-hint").textContent =
    task() === "translate" ? "Live captions are in the spoken language; translation works on files." : "";
  const session = new LiveSession(
    { model: opts.model, language, prompt: opts.prompt },
    {
      onState: (_, text) => ($("live-status").textContent = text),
      onLevel: showLevel,
      onUtterance: showCaption,
      onError: (message) => {
        showNotice(message);
        if (state.live === session && !session.opened) endLive(session);
      },
    },
  );
  state.live = session;
  setRecording(true);
  try {
    await session.start();
  } catch (error) {
    session.release();
    endLive(session);
    reportError(error);
    $("live-status").textContent = "Not recording.";
  }
}

function endLive(session) {
  if (state.live !== session) return;
  state.live = null;
  setRecording(false);
  showLevel(0);
}

function showLevel(level) {
  // Uncover the meter's gradient up to the level: green for speech, red near clipping.
  $("level-bar").style.clipPath = `inset(0 ${(100 - level * 100).toFixed(1)}% 0 0)`;
}

async function stopLive() {
  const session = state.live;
  if (!session) return;
  $("record").disabled = true;
  try {
    await session.stop();
  } finally {
    $("record").disabled = false;
    endLive(session);
  }
}

function showCaption(id, utterance) {
  const list = $("captions");
  let item = state.captions.get(id);
  if (!item) {
    item = document.createElement("li");
    const time = document.createElement("span");
    time.className = "time";
    const text = document.createElement("span");
    text.className = "text";
    item.append(time, text);
    state.captions.set(id, item);
    list.append(item);
  }
  const [time, text] = item.children;
  time.textContent = utterance.startMs === null ? "" : clock(utterance.startMs / 1000);
  text.textContent = utterance.text || (utterance.final ? "" : "…");
  item.classList.toggle("partial", !utterance.final);
  item.classList.toggle("failed", utterance.failed);
  if (utterance.final && !utterance.text.trim()) {
    item.remove(); // noise, not speech
    state.captions.delete(id);
  }
  list.scrollTop = list.scrollHeight;
  updateLiveDownload();
}

function updateLiveDownload() {
  const lines = [...$("captions").querySelectorAll("li:not(.partial):not(.failed) .text")].map((t) => t.textContent);
  const link = $("download-live");
  if (link.href) URL.revokeObjectURL(link.href);
  if (!lines.length) {
    link.removeAttribute("href");
    link.setAttribute("aria-disabled", "true");
    return;
  }
  link.href = URL.createObjectURL(new Blob([`${lines.join("\n")}\n`], { type: "text/plain" }));
  link.download = "live-captions.txt";
  link.removeAttribute("aria-disabled");
}

// -- Start ----------------------------------------------------------------------------------

function main() {
  setUpKey();
  setUpTabs();
  setUpFile();
  setUpLive();
  $("notice-close").addEventListener("click", hideNotice);
  $("model").addEventListener("change", () => updateOptions());
  for (const id of ["task-transcribe", "task-translate"]) {
    $(id).addEventListener("change", () => updateOptions());
  }
  $("language").addEventListener("change", () => {
    savePrefs({ language: $("language").value });
    showExample();
  });
  $("prompt").addEventListener("input", showExample);
  $("options").addEventListener("submit", (event) => event.preventDefault());
  watchHealth();
  loadModels();
}

main();
