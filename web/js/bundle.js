// A web bundle (python -m export --format=web): manifest.json and the files it lists, each
// fetched whole and checked against the size and SHA-256 the manifest gives before anything
// parses it, so a truncated, altered or missing file is a LoadError saying what to do, never a
// hang (a download that stalls is abandoned).

export class LoadError extends Error {}

const STALL_MS = 30000;  // a download that delivers nothing for this long is abandoned

/** Downloads `url` into a Uint8Array, reporting progress; checks the size and SHA-256 the
 * manifest gives (`expect` = {bytes, sha256}; null: no check) before anyone parses the bytes. */
export async function fetchChecked(url, expect, onProgress = () => {}) {
  const name = url.split("/").pop();
  const abort = new AbortController();
  let timer = setTimeout(() => abort.abort(), STALL_MS);
  const alive = () => {
    clearTimeout(timer);
    timer = setTimeout(() => abort.abort(), STALL_MS);
  };
  let response;
  try {
    response = await fetch(url, {signal: abort.signal, cache: "no-store"});
  } catch (e) {
    clearTimeout(timer);
    const why = abort.signal.aborted ? `no answer in ${STALL_MS / 1000} s` : e.message;
    throw new LoadError(`could not fetch ${url}: ${why} (is web/serve.py still running?)`);
  }
  if (!response.ok) {
    clearTimeout(timer);
    const hint = response.status === 404 ? " (the file is missing from the bundle: export it again)" : "";
    throw new LoadError(`could not fetch ${url}: HTTP ${response.status} ${response.statusText}${hint}`);
  }
  const chunks = [];
  let received = 0;
  try {
    const reader = response.body.getReader();
    for (;;) {
      const {done, value} = await reader.read();
      if (done) break;
      alive();
      chunks.push(value);
      received += value.length;
      if (expect && received > expect.bytes) break;
      onProgress({file: name, received, total: expect ? expect.bytes : null});
    }
  } catch (e) {
    throw new LoadError(`download of ${url} failed after ${received} bytes: ` +
                        (abort.signal.aborted ? `nothing arrived for ${STALL_MS / 1000} s` : e.message));
  } finally {
    clearTimeout(timer);
  }
  if (expect && received !== expect.bytes) {
    throw new LoadError(`${name} is ${received < expect.bytes ? "truncated" : "too long"}: ` +
                        `${received < expect.bytes ? "" : "at least "}${received} bytes, but manifest.json says ` +
                        `${expect.bytes}; the file is damaged or from another export: export the bundle again`);
  }
  const bytes = new Uint8Array(received);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  if (expect && expect.sha256) {
    if (!globalThis.crypto || !crypto.subtle) {
      throw new LoadError("this page needs crypto.subtle to check the model files: open it at " +
                          "http://127.0.0.1:PORT/ or http://localhost:PORT/ (a secure context)");
    }
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
    if (hex !== expect.sha256.toLowerCase()) {
      throw new LoadError(`${name} is corrupt: its SHA-256 is ${hex.slice(0, 16)}..., but manifest.json ` +
                          `says ${expect.sha256.slice(0, 16)}...; export the bundle again`);
    }
  }
  return bytes;
}

/** The manifest's fields this page needs, checked; a LoadError naming the first bad one. */
export function checkManifest(manifest) {
  const need = (ok, field, expected) => {
    if (!ok) {
      throw new LoadError(`manifest.json: field ${field} is ${JSON.stringify(manifest[field])}; ` +
                          `expected ${expected} (is this a web bundle from python -m export --format=web?)`);
    }
  };
  if (!manifest || typeof manifest !== "object" || Array.isArray(manifest)) {
    throw new LoadError("manifest.json is not a JSON object (is this a web bundle from " +
                        "python -m export --format=web?)");
  }
  need(manifest.frugal_web === 1, "frugal_web", "1");
  need(Array.isArray(manifest.models) && manifest.models.length > 0, "models", "a non-empty list");
  for (const field of ["num_layers", "num_kv_heads", "head_dim", "vocab_size", "max_seq_len"]) {
    need(Number.isInteger(manifest[field]) && manifest[field] > 0, field, "a positive integer");
  }
  need(manifest.tokenizer && typeof manifest.tokenizer.file === "string", "tokenizer", "{file, bytes, sha256}");
  need(Array.isArray(manifest.eos_ids), "eos_ids", "a list of token ids");
  return manifest;
}

export function manifestFile(baseUrl, entry) {
  return new URL(entry.file, baseUrl).href;
}

export async function fetchManifest(manifestUrl) {
  let response;
  try {
    response = await fetch(manifestUrl, {cache: "no-store", signal: AbortSignal.timeout(STALL_MS)});
  } catch (e) {
    throw new LoadError(`could not fetch ${manifestUrl}: ${e.message} (is web/serve.py running?)`);
  }
  if (!response.ok) {
    throw new LoadError(`could not fetch ${manifestUrl}: HTTP ${response.status}; serve an exported ` +
                        "bundle: python web/serve.py --bundle=DIR/web " +
                        "(DIR from python -m export --format=web --out=DIR)");
  }
  let manifest;
  try {
    manifest = JSON.parse(await response.text());
  } catch (e) {
    throw new LoadError(`${manifestUrl} is not valid JSON (${e.message}); export the bundle again`);
  }
  return checkManifest(manifest);
}
