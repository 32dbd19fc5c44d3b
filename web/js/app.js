// The page: loads the bundle named by ?manifest= (default model/manifest.json, what web/serve.py
// serves), then chats with the model or runs ReAct episodes with in-browser tools.
// URL parameters: variant (a manifest.models name), device (wasm | webgpu | auto), threads (WASM
// threads, default 1), max_new_tokens (per reply, default 256).
// Tests and benchmarks drive it through window.frugal (see the end of this file).

import {Conversation, replyStops} from "./chat.js";
import {fetchChecked} from "./bundle.js";
import {LM} from "./lm.js";

const params = new URLSearchParams(location.search);
const settings = {
  manifest: params.get("manifest") || "model/manifest.json",
  variant: params.get("variant") || null,
  device: params.get("device") || "auto",
  threads: Number(params.get("threads") || 1),
  maxNewTokens: Number(params.get("max_new_tokens") || 256),
};

const $ = (id) => document.getElementById(id);
const ui = {
  error: $("error"), messages: $("messages"), prompt: $("prompt"), send: $("send"), stop: $("stop"),
  reset: $("reset"), variant: $("variant"), status: $("status"), progress: $("progress"),
  modelName: $("model-name"), composer: $("composer"),
};

const state = {lm: null, conversation: null, busy: false, abort: null, lastStats: null, react: null};

function showError(error) {
  const message = error && error.message ? error.message : String(error);
  ui.error.textContent = `error: ${message}`;
  ui.error.hidden = false;
  console.error(error);
}

function setBusy(busy) {
  state.busy = busy;
  ui.send.disabled = busy || !state.lm;
  ui.prompt.disabled = !state.lm;
  ui.stop.disabled = !busy;
  ui.reset.disabled = busy || !state.lm;
  ui.variant.disabled = busy || !state.lm;
}

function element(tag, className, text = "") {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.textContent = text;
  return node;
}

function addMessage(role, text = "") {
  const node = element("div", `message ${role}`);
  const body = element("span", "body", text);
  node.append(body);
  ui.messages.append(node);
  ui.messages.scrollTop = ui.messages.scrollHeight;
  return {node, body};
}

const perSecond = (tokens, ms) => (ms > 0 ? (1000 * tokens) / ms : 0);

/** Status line and data-* attributes (read by tests) for the totals of one reply. */
function showStats(stats) {
  state.lastStats = stats;
  const prefill = perSecond(stats.prefillTokens, stats.prefillMs);
  const decode = perSecond(stats.decodeSteps, stats.decodeMs);
  ui.status.dataset.prefillTokensPerSecond = prefill.toFixed(2);
  ui.status.dataset.decodeTokensPerSecond = decode.toFixed(2);
  const seconds = (ms) => (ms / 1000).toFixed(2);
  const threads = `${settings.threads} thread${settings.threads > 1 ? "s" : ""}`;
  ui.status.textContent = [
    `${state.lm.variant} · ${state.lm.device} · ${threads}`,
    `prefill ${stats.prefillTokens} tok in ${seconds(stats.prefillMs)} s (${prefill.toFixed(1)} tok/s)`,
    `decode ${stats.newTokens} tok in ${seconds(stats.decodeMs)} s (${decode.toFixed(1)} tok/s)`,
    `context ${state.lm.cachedIds.length}/${state.lm.manifest.max_seq_len}`,
  ].join(" · ");
}

/** Sums the figures of several complete() calls (the turns of a ReAct episode). */
function addStats(total, r) {
  for (const key of ["prefillTokens", "prefillMs", "newTokens", "decodeSteps", "decodeMs"]) {
    total[key] = (total[key] || 0) + r[key];
  }
  return total;
}

// ---- chat ------------------------------------------------------------------------------------

async function chat(text) {
  const {lm, conversation} = state;
  addMessage("user", text);
  const reply = addMessage("assistant");
  state.abort = new AbortController();
  const r = await lm.complete(conversation.prompt(text), {
    stop: replyStops(conversation.template), maxNewTokens: settings.maxNewTokens,
    signal: state.abort.signal, onText: (piece) => {
      reply.body.textContent += piece;
      ui.messages.scrollTop = ui.messages.scrollHeight;
    }});
  if (r.stopReason === "context_full" && !r.text) {
    throw new Error(`the conversation (${r.promptTokens} tokens) fills the model's context ` +
                    `(${lm.manifest.max_seq_len}): start a new conversation`);
  }
  reply.body.textContent = r.text;
  reply.node.append(element("span", "stats", `${r.newTokens} tokens, ${r.stopReason}`));
  if (r.text) conversation.add(text, r.text);
  showStats(addStats({}, r));
  return r;
}

// ---- ReAct -----------------------------------------------------------------------------------

/** react.js and the document index, loaded the first time ReAct mode is used. */
async function reactSetup() {
  if (state.react) return state.react;
  const manifest = state.lm.manifest;
  if (!manifest.react) throw new Error("this bundle has no react section in manifest.json: export it again");
  let react;
  try {
    react = await import("./react.js");
  } catch (e) {
    throw new Error(`js/react.js did not load: ${e.message}`);
  }
  let docs = null;
  if (manifest.docs) {
    const bytes = await fetchChecked(new URL(manifest.docs.file, state.baseUrl).href, manifest.docs);
    docs = JSON.parse(new TextDecoder().decode(bytes));
  }
  state.react = {react, docs};
  return state.react;
}

/** Renders the episode's events as they come: a step's text streams in as the model writes it
 * and, once its action is parsed, gives way to the step's thought, action and observation;
 * then the answer. */
function trajectoryView(container) {
  const list = element("ol", "trajectory");
  container.append(list);
  let step = null;  // the <li> of the step being written; done once its action is parsed
  return (event) => {
    switch (event.type) {
      case "turn":
        if (!step || step.done) {
          step = element("li", "step");
          step.generated = element("div", "generated");
          step.append(step.generated);
          list.append(step);
        } else {
          step.generated.textContent += event.text;  // e.g. "\nAction 1:" asked for separately
        }
        break;
      case "text":
        if (step && !step.done) step.generated.textContent += event.text;
        break;
      case "action":
        if (!step) break;
        step.generated.remove();
        if (event.thought) step.append(element("div", "thought", `Thought: ${event.thought}`));
        step.append(element("div", "action", `Action: ${event.action}`));
        step.done = true;
        break;
      case "observation":
        if (step) step.append(element("div", "observation", `Observation: ${event.observation}`));
        break;
      case "finish":
        if (step && !step.done) step.generated.remove();
        container.append(element("div", "answer", event.answer ? `Answer: ${event.answer}` :
                                                                  `(no answer: ${event.reason})`));
        break;
      default:
        break;
    }
    ui.messages.scrollTop = ui.messages.scrollHeight;
  };
}

async function runReAct(question) {
  const {react, docs} = await reactSetup();
  addMessage("user", question);
  const reply = addMessage("assistant react");
  const render = trajectoryView(reply.node);
  const events = [];
  const stats = {};
  state.abort = new AbortController();
  const signal = state.abort.signal;
  // What the agent sees of the model: complete() with this page's stop button and statistics.
  const lm = {
    complete: async (text, options = {}) => {
      if (signal.aborted) throw new Error("stopped");
      const r = await state.lm.complete(text, {...options, signal});
      addStats(stats, r);
      return r;
    },
  };
  const episode = react.makeEpisode(question, state.lm.manifest.react, docs);
  const trajectory = await react.runEpisode(lm, episode, {onEvent: (event) => {
    events.push(event);
    render(event);
  }});
  if (stats.prefillMs !== undefined) showStats(stats);
  return {trajectory, events};
}

// ---- loading and wiring ----------------------------------------------------------------------

async function load() {
  const onProgress = (p) => {
    if (p.stage === "session") {
      ui.status.textContent = `starting onnxruntime (${p.device}) with ${p.file}...`;
      ui.progress.hidden = true;
    } else if (p.file) {
      ui.progress.hidden = false;
      ui.progress.value = p.total ? p.received / p.total : 0;
      ui.status.textContent = `downloading ${p.file}: ${(p.received / 1e6).toFixed(1)}` +
                              (p.total ? ` of ${(p.total / 1e6).toFixed(1)} MB` : " MB");
    } else {
      ui.status.textContent = `loading ${p.stage}...`;
    }
  };
  state.baseUrl = new URL(settings.manifest, location.href).href;
  if (!Number.isInteger(settings.maxNewTokens) || settings.maxNewTokens < 1) {
    throw new Error(`max_new_tokens=${params.get("max_new_tokens")}: expected a positive integer`);
  }
  const start = performance.now();
  const lm = await LM.load(state.baseUrl, {variant: settings.variant, device: settings.device,
                                           threads: settings.threads, onProgress});
  state.lm = lm;
  state.conversation = new Conversation(lm.manifest.chat_template || "plain");
  ui.modelName.textContent = lm.manifest.name || "";
  ui.variant.replaceChildren(...lm.manifest.models.map((m) => {
    const option = element("option", "", `${m.name} (${(m.bytes / 1e6).toFixed(0)} MB)`);
    option.value = m.name;
    option.selected = m.name === lm.variant;
    return option;
  }));
  ui.progress.hidden = true;
  ui.prompt.placeholder = "Message (Enter sends, Shift+Enter is a new line)";
  ui.status.textContent = `${lm.manifest.name || "model"} ${lm.variant} ready on ${lm.device} ` +
                          `in ${((performance.now() - start) / 1000).toFixed(1)} s`;
  setBusy(false);
  return lm;
}

function mode() {
  return document.querySelector("input[name=mode]:checked").value;
}

/** Runs one message in the current mode; errors go to the error box, never left pending. */
async function submit(text) {
  if (!state.lm) throw new Error("the model is not loaded");
  if (state.busy) throw new Error("busy with the previous message");
  ui.error.hidden = true;
  setBusy(true);
  try {
    return mode() === "react" ? await runReAct(text) : await chat(text);
  } catch (e) {
    showError(e);
    throw e;
  } finally {
    state.abort = null;
    setBusy(false);
  }
}

ui.composer.addEventListener("submit", (e) => {
  e.preventDefault();
  const text = ui.prompt.value.trim();
  if (!text) return;
  ui.prompt.value = "";
  submit(text).catch(() => {});
});
ui.prompt.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    ui.composer.requestSubmit();
  }
});
ui.stop.addEventListener("click", () => state.abort && state.abort.abort());
ui.reset.addEventListener("click", () => {
  state.conversation.reset();
  state.lm.reset();
  ui.messages.replaceChildren();
});
ui.variant.addEventListener("change", () => {
  const next = new URLSearchParams(location.search);
  next.set("variant", ui.variant.value);
  location.search = next.toString();  // a fresh page: onnxruntime is set up once per page
});
window.addEventListener("unhandledrejection", (e) => showError(e.reason));

const ready = load().catch((e) => {
  showError(e);
  ui.status.textContent = "not loaded";
  ui.progress.hidden = true;
  throw e;
});
ready.catch(() => {});  // reported above; the promise stays rejected for window.frugal.ready

function setMode(name) {
  document.querySelector(`input[name=mode][value=${name}]`).checked = true;
}

// The hook tests and benchmarks use (the same paths as typing into the page).
window.frugal = {
  settings,
  ready,
  get lm() { return state.lm; },
  get lastStats() { return state.lastStats; },
  encode: (text) => state.lm.tokenizer.encode(text),
  decode: (ids) => state.lm.tokenizer.decode(ids),
  greedyIds: (ids, n) => state.lm.greedyIds(ids, n),
  generateIds: (ids, n) => state.lm.generateIds(ids, n),
  chat: (text) => { setMode("chat"); return submit(text); },
  runReAct: (question) => { setMode("react"); return submit(question); },
};
