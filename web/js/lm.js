// An exported model in the browser: load a verified bundle (bundle.js), run it with
// onnxruntime-web (WASM, or WebGPU where asked for and available) and decode greedily with the
// KV cache kept between calls.
//
//   const lm = await LM.load("/model/manifest.json", {variant: "int8", onProgress: console.log});
//   const r = await lm.complete(prompt, {stop: ["\nObservation"], maxNewTokens: 128, onText});
//   r -> {text, stopReason, promptTokens, prefillTokens, prefillMs, newTokens, decodeSteps, decodeMs}
//   stopReason: "eos", "stop" (a stop string), "length" (maxNewTokens), "context_full" (the
//   model's max_seq_len; a prompt that fills it gets no reply at all) or "aborted" (signal).
//
// The cache and the ids it holds survive between calls: complete() prefills only the tokens
// after the longest common prefix of the cached ids and the new prompt's ids (a ReAct step, the
// next chat turn), and cuts the cache back where they diverge. When the new prompt continues the
// previous prompt and reply, the reply's generated ids are kept as they were (not re-encoded from
// its text) and only the new text is encoded, as models/engine.py does for ReAct turns: so the
// page's episodes see the token sequence Python's agent sees.
// Every way loading can fail (HTTP error, truncated or altered file, a file onnxruntime refuses)
// rejects with a LoadError whose message says what to do; nothing waits forever.

import {LoadError, fetchChecked, fetchManifest, manifestFile} from "./bundle.js";
import {StreamDecoder, Tokenizer} from "./tokenizer.js";

export {LoadError};

/** WebGPU is used when asked for ("webgpu") or, with "auto", when the browser offers an adapter. */
async function chooseDevice(device) {
  if (!["wasm", "webgpu", "auto"].includes(device)) {
    throw new LoadError(`device ${JSON.stringify(device)} is not one of wasm, webgpu, auto`);
  }
  if (device === "wasm") return "wasm";
  let adapter = null;
  try {
    adapter = navigator.gpu ? await navigator.gpu.requestAdapter() : null;
  } catch {
    adapter = null;
  }
  if (adapter) return "webgpu";
  if (device === "webgpu") {
    throw new LoadError("WebGPU was asked for but this browser offers no WebGPU adapter; " +
                        "use device=wasm or auto");
  }
  return "wasm";
}

const ortModules = new Map();  // bundle URL -> module: onnxruntime is set up once per page

async function importOrt(ortBase, device, threads) {
  // The WASM-only build is smaller; the WebGPU build also runs the WASM provider.
  const url = new URL(device === "webgpu" ? "ort.webgpu.min.mjs" : "ort.wasm.min.mjs", ortBase).href;
  if (!ortModules.has(url)) {
    let ort;
    try {
      ort = await import(url);
    } catch (e) {
      throw new LoadError(`could not load onnxruntime-web from ${url}: ${e.message} ` +
                          "(run: cd web && npm ci --ignore-scripts)");
    }
    ort.env.wasm.wasmPaths = new URL(ortBase).href;  // the locally served .wasm files, never a CDN
    ort.env.wasm.numThreads = threads;
    ort.env.wasm.proxy = false;
    ortModules.set(url, ort);
  }
  return ortModules.get(url);
}

export class LM {
  /** Use LM.load; this wraps a ready session. ort: the onnxruntime-web module (or a stand-in). */
  constructor({ort, session, manifest, tokenizer, variant, device}) {
    Object.assign(this, {ort, session, manifest, tokenizer, variant, device});
    this.eosIds = new Set(manifest.eos_ids);
    this.cachedIds = [];  // the tokens whose keys and values `cache` holds
    this.known = null;  // {ids, text}: the last prompt and the reply ids kept, and their text
    this.cache = null;  // [{key, value}] per layer: Float32Array [1, kv_heads, cachedIds.length, head_dim]
  }

  /** manifestUrl: the bundle's manifest.json. Rejects with a LoadError for anything wrong. */
  static async load(manifestUrl, {variant = null, threads = 1, device = "wasm", onProgress = () => {},
                                  ortBase = "/ort/"} = {}) {
    if (!Number.isInteger(threads) || threads < 1) {
      throw new LoadError(`threads=${threads}: expected a positive integer (1 is the default)`);
    }
    const base = new URL(manifestUrl, globalThis.location ? location.href : undefined).href;
    onProgress({stage: "manifest"});
    const manifest = await fetchManifest(base);
    const entry = variant ? manifest.models.find((m) => m.name === variant) : manifest.models[0];
    if (!entry) {
      throw new LoadError(`model variant ${JSON.stringify(variant)} is not in manifest.json; it has ` +
                          manifest.models.map((m) => m.name).join(", "));
    }
    const tokenizerBytes = await fetchChecked(manifestFile(base, manifest.tokenizer), manifest.tokenizer,
                                              onProgress);
    let tokenizer;
    try {
      tokenizer = Tokenizer.fromJSON(JSON.parse(new TextDecoder().decode(tokenizerBytes)));
    } catch (e) {
      throw new LoadError(`${manifest.tokenizer.file}: ${e.message}`);
    }
    const chosen = await chooseDevice(device);
    const ort = await importOrt(new URL(ortBase, base).href, chosen, threads);
    const modelBytes = await fetchChecked(manifestFile(base, entry), entry, onProgress);
    onProgress({stage: "session", file: entry.file, device: chosen});
    let session;
    try {
      session = await ort.InferenceSession.create(modelBytes, {
        executionProviders: [chosen], graphOptimizationLevel: "all"});
    } catch (e) {
      throw new LoadError(`onnxruntime could not load ${entry.file} (${chosen}): ${e.message || e}; ` +
                          "the file is not a model this page can run: export the bundle again");
    }
    const lm = new LM({ort, session, manifest, tokenizer, variant: entry.name, device: chosen});
    lm.checkSignature();
    return lm;
  }

  /** The session must have the exporter's inputs and outputs (see export/onnx_graph.py). */
  checkSignature() {
    const inputs = ["input_ids"], outputs = ["logits"];
    for (let i = 0; i < this.manifest.num_layers; i++) {
      inputs.push(`past_key_${i}`, `past_value_${i}`);
      outputs.push(`present_key_${i}`, `present_value_${i}`);
    }
    const missing = [...inputs.filter((n) => !this.session.inputNames.includes(n)),
                     ...outputs.filter((n) => !this.session.outputNames.includes(n))];
    if (missing.length) {
      throw new LoadError(`the model has no ${missing.slice(0, 4).join(", ")}: it does not match manifest.json ` +
                          `(num_layers ${this.manifest.num_layers}); export the bundle again`);
    }
  }

  /** Forgets the cache (the next call prefills everything). */
  reset() {
    this.known = null;
    this.cachedIds = [];
    this.cache = null;
  }

  /** Keeps the first `keep` cached positions. */
  truncateCache(keep) {
    if (keep >= this.cachedIds.length) return;
    if (keep === 0) {
      this.reset();
      return;
    }
    const {num_kv_heads: heads, head_dim: dim} = this.manifest;
    const length = this.cachedIds.length;
    const cut = (data) => {
      const out = new Float32Array(heads * keep * dim);
      for (let h = 0; h < heads; h++) {
        out.set(data.subarray(h * length * dim, (h * length + keep) * dim), h * keep * dim);
      }
      return out;
    };
    this.cache = this.cache.map(({key, value}) => ({key: cut(key), value: cut(value)}));
    this.cachedIds = this.cachedIds.slice(0, keep);
  }

  /** Runs `ids` after the cached positions; returns the last position's logits [vocab]. */
  async forward(ids) {
    const {ort, manifest} = this;
    const {num_layers: layers, num_kv_heads: heads, head_dim: dim} = manifest;
    const past = this.cachedIds.length;
    if (past + ids.length > manifest.max_seq_len) {
      throw new Error(`context full: ${past + ids.length} tokens, the model holds ${manifest.max_seq_len}`);
    }
    const tokens = BigInt64Array.from(ids, (i) => BigInt(i));
    const feeds = {input_ids: new ort.Tensor("int64", tokens, [1, ids.length])};
    const empty = new Float32Array(0);
    for (let i = 0; i < layers; i++) {
      const {key, value} = this.cache ? this.cache[i] : {key: empty, value: empty};
      feeds[`past_key_${i}`] = new ort.Tensor("float32", key, [1, heads, past, dim]);
      feeds[`past_value_${i}`] = new ort.Tensor("float32", value, [1, heads, past, dim]);
    }
    const out = await this.session.run(feeds);
    const cache = [];
    for (let i = 0; i < layers; i++) {
      cache.push({key: await tensorData(out[`present_key_${i}`]),
                  value: await tensorData(out[`present_value_${i}`])});
    }
    this.cache = cache;
    this.cachedIds = this.cachedIds.concat(ids);
    return tensorData(out.logits);
  }

  /** Prefills `ids` (reusing the cache's common prefix) and returns the logits after them. */
  async prefill(ids) {
    let keep = 0;
    while (keep < ids.length && keep < this.cachedIds.length && this.cachedIds[keep] === ids[keep]) keep++;
    keep = Math.min(keep, ids.length - 1);  // at least one token runs, for its logits
    this.truncateCache(keep);
    return {logits: await this.forward(ids.slice(keep)), prefillTokens: ids.length - keep};
  }

  /** Greedy continuation of `text`. stop: strings that end it (left out of the text); onText
   * receives the text as it settles (never half a character, never the start of a stop string
   * that may yet complete). signal: an AbortSignal that ends it early. */
  async complete(text, {stop = [], maxNewTokens = 256, onText = () => {}, signal = null} = {}) {
    const ids = this.promptIds(text);
    if (!ids.length) throw new Error("complete: the prompt encodes to no tokens");
    if (ids.length >= this.manifest.max_seq_len) {  // no room for a reply (the engine's abort)
      return {text: "", stopReason: "context_full", promptTokens: ids.length, prefillTokens: 0,
              prefillMs: 0, newTokens: 0, decodeSteps: 0, decodeMs: 0};
    }
    let start = performance.now();
    let {logits, prefillTokens} = await this.prefill(ids);
    const prefillMs = performance.now() - start;
    const stream = new StreamDecoder(this.tokenizer);
    const generated = [];
    let out = "", shown = 0, newTokens = 0, decodeSteps = 0, stopReason = "length";
    start = performance.now();
    const show = (final) => {
      const safe = final ? out.length : out.length - stopPrefixLength(out, stop);
      if (safe > shown) {
        onText(out.slice(shown, safe));
        shown = safe;
      }
    };
    const cutAtStop = () => {
      const at = firstStop(out, stop);
      if (at < 0) return false;
      out = out.slice(0, at);
      return true;
    };
    for (;;) {
      if (newTokens >= maxNewTokens) break;
      if (signal && signal.aborted) {
        stopReason = "aborted";
        break;
      }
      const next = argmax(logits);
      if (this.eosIds.has(next)) {
        stopReason = "eos";
        break;
      }
      newTokens++;
      generated.push(next);
      out += stream.push(next);
      if (cutAtStop()) {
        stopReason = "stop";
        break;
      }
      show(false);
      if (newTokens >= maxNewTokens) break;
      if (this.cachedIds.length >= this.manifest.max_seq_len) {
        stopReason = "context_full";
        break;
      }
      logits = await this.forward([next]);
      decodeSteps++;
    }
    if (stopReason !== "stop") {
      out += stream.flush();
      if (cutAtStop()) stopReason = "stop";
    }
    show(true);
    this.keep(ids, text, generated, out);
    return {text: out, stopReason, promptTokens: ids.length, prefillTokens, prefillMs, newTokens,
            decodeSteps, decodeMs: performance.now() - start};
  }

  /** The ids of a prompt: when it continues the last prompt and reply, their ids and the rest
   * encoded; otherwise the whole text encoded. */
  promptIds(text) {
    if (this.known && text.startsWith(this.known.text)) {
      const rest = text.slice(this.known.text.length);
      return this.known.ids.concat(rest ? this.tokenizer.encode(rest) : []);
    }
    return this.tokenizer.encode(text);
  }

  /** Remembers the prompt and the longest start of the generated ids whose text begins the
   * reply as returned (the stop string and what followed it are cut off). */
  keep(ids, text, generated, reply) {
    let k = generated.length, head = this.tokenizer.decode(generated);
    while (k > 0 && !reply.startsWith(head)) head = this.tokenizer.decode(generated.slice(0, --k));
    this.known = {ids: ids.concat(generated.slice(0, k)), text: text + (k ? head : "")};
  }

  /** n greedy ids after `ids`, from an empty cache, with the timings (parity tests, benchmarks).
   * EOS does not stop it. */
  async generateIds(ids, n) {
    this.reset();
    let start = performance.now();
    let logits = await this.forward(ids);
    const prefillMs = performance.now() - start;
    const out = [];
    start = performance.now();
    for (let i = 0; i < n; i++) {
      out.push(argmax(logits));
      if (i + 1 < n) logits = await this.forward([out[i]]);
    }
    return {ids: out, prefillTokens: ids.length, prefillMs, decodeSteps: Math.max(n - 1, 0),
            decodeMs: performance.now() - start};
  }

  async greedyIds(ids, n) {
    return (await this.generateIds(ids, n)).ids;
  }
}

/** A tensor's Float32Array, wherever the runtime left it (WebGPU outputs may live on the GPU). */
async function tensorData(tensor) {
  return tensor.location && tensor.location !== "cpu" ? tensor.getData(true) : tensor.data;
}

/** The first index of the largest value (as jnp.argmax breaks ties). */
export function argmax(values) {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** Where the first of the stop strings starts in `text`, -1 if none does. */
export function firstStop(text, stop) {
  let first = -1;
  for (const s of stop) {
    const at = text.indexOf(s);
    if (at >= 0 && (first < 0 || at < first)) first = at;
  }
  return first;
}

/** Length of the longest end of `text` that is the start of a stop string (held back). */
export function stopPrefixLength(text, stop) {
  let longest = 0;
  for (const s of stop) {
    for (let k = Math.min(s.length - 1, text.length); k > longest; k--) {
      if (text.endsWith(s.slice(0, k))) {
        longest = k;
        break;
      }
    }
  }
  return longest;
}
