// lm.js's decoding loop against a stand-in model whose KV cache holds the token ids themselves:
// the next token depends on the whole sequence read back from the cache, so a cache cut or kept
// wrongly changes the text. Checks stop strings, held-back text, UTF-8, EOS, limits, prefix reuse.
import assert from "node:assert/strict";
import {test} from "node:test";

import {LM, firstStop, stopPrefixLength} from "../../js/lm.js";
import {Tokenizer} from "../../js/tokenizer.js";

const EOS = 256, HEADS = 2, DIM = 3, LAYERS = 2;

// Byte-level BPE without merges: one token per byte (GPT-2's byte characters), plus <eos>.
function byteTokenizer() {
  const printable = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const vocab = {};
  let extra = 0;
  for (let b = 0; b < 256; b++) vocab[String.fromCodePoint(printable.includes(b) ? b : 256 + extra++)] = b;
  return Tokenizer.fromJSON({
    added_tokens: [{id: EOS, content: "<eos>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true}],
    normalizer: null,
    pre_tokenizer: {type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true},
    decoder: {type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true},
    model: {type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
            fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: []},
  });
}

class FakeTensor {
  constructor(type, data, dims) {
    Object.assign(this, {type, data, dims});
    const size = dims.reduce((a, b) => a * b, 1);
    if (data.length !== size) throw new Error(`tensor data ${data.length} != dims ${dims}`);
  }
}

// After the last "A:" the model writes `reply` byte by byte, then <eos>.
function fakeSession(reply) {
  const replyBytes = typeof reply === "string" ? new TextEncoder().encode(reply) : Uint8Array.from(reply);
  const inputNames = ["input_ids"], outputNames = ["logits"];
  for (let i = 0; i < LAYERS; i++) {
    inputNames.push(`past_key_${i}`, `past_value_${i}`);
    outputNames.push(`present_key_${i}`, `present_value_${i}`);
  }
  const session = {inputNames, outputNames, calls: [], async run(feeds) {
    const ids = Array.from(feeds.input_ids.data, Number);
    session.calls.push(ids.length);
    const out = {};
    let sequence = null;
    for (let i = 0; i < LAYERS; i++) {
      for (const kind of ["key", "value"]) {
        const past = feeds[`past_${kind}_${i}`];
        const length = past.dims[2], total = length + ids.length;
        const data = new Float32Array(HEADS * total * DIM);
        for (let h = 0; h < HEADS; h++) {
          for (let p = 0; p < total; p++) {
            const v = p < length ? past.data[(h * length + p) * DIM] : ids[p - length] + 1000 * i + (kind === "value" ? 500 : 0);
            for (let d = 0; d < DIM; d++) {
              if (p < length && past.data[(h * length + p) * DIM + d] !== v) throw new Error("cache entries disagree");
              data[(h * total + p) * DIM + d] = v;
            }
          }
        }
        const seq = Array.from({length: total}, (_, p) => data[p * DIM] - 1000 * i - (kind === "value" ? 500 : 0));
        if (sequence && sequence.join() !== seq.join()) throw new Error("layers hold different sequences");
        sequence = seq;
        out[`present_${kind}_${i}`] = new FakeTensor("float32", data, [1, HEADS, total, DIM]);
      }
    }
    const bytes = sequence.filter((t) => t < 256);
    let marker = -1;
    for (let p = 0; p + 1 < bytes.length; p++) if (bytes[p] === 65 && bytes[p + 1] === 58) marker = p + 2;  // "A:"
    const tail = marker < 0 ? [] : bytes.slice(marker);
    const onScript = tail.length < replyBytes.length && tail.every((b, k) => b === replyBytes[k]);
    const logits = new Float32Array(EOS + 1);
    logits[onScript ? replyBytes[tail.length] : EOS] = 1;
    out.logits = new FakeTensor("float32", logits, [1, EOS + 1]);
    return out;
  }};
  return session;
}

function fakeLM(reply, maxSeqLen = 4096) {
  const manifest = {num_layers: LAYERS, num_kv_heads: HEADS, head_dim: DIM, vocab_size: EOS + 1,
                    max_seq_len: maxSeqLen, eos_ids: [EOS]};
  const lm = new LM({ort: {Tensor: FakeTensor}, session: fakeSession(reply), manifest,
                     tokenizer: byteTokenizer(), variant: "f32", device: "wasm"});
  lm.checkSignature();
  return lm;
}

async function complete(lm, text, options = {}) {
  const pieces = [];
  const result = await lm.complete(text, {...options, onText: (piece) => pieces.push(piece)});
  return {...result, pieces};
}

test("greedy reply until EOS; streamed pieces join to the text", async () => {
  const lm = fakeLM(" hello there");
  const r = await complete(lm, "Q: hi\nA:");
  assert.equal(r.text, " hello there");
  assert.equal(r.stopReason, "eos");
  assert.equal(r.newTokens, 12);
  assert.equal(r.pieces.join(""), r.text);
  assert.equal(r.promptTokens, 8);
  assert.equal(r.prefillTokens, 8);
});

test("a stop string ends the reply and is left out; its possible start is held back", async () => {
  const lm = fakeLM(" x\nObs y\nObservation: 391\nmore");
  const r = await complete(lm, "Q\nA:", {stop: ["\nObservation", "<|im_end|>"]});
  assert.equal(r.text, " x\nObs y");
  assert.equal(r.stopReason, "stop");
  assert.equal(r.pieces.join(""), r.text);  // "\nObservatio" was never shown
  const partial = [];
  let seen = "";
  for (const piece of r.pieces) partial.push(seen += piece);
  assert.ok(partial.includes(" x"), `" x" shown before "\\nObs" resolved: ${JSON.stringify(partial)}`);
  assert.ok(!partial.includes(" x\nOb"), "the start of a stop string was shown before it resolved");
});

test("multi-byte characters are never shown in halves", async () => {
  const lm = fakeLM(" café € 😀 你好");
  const r = await complete(lm, "A:");
  assert.equal(r.text, " café € 😀 你好");
  for (const piece of r.pieces) assert.ok(!piece.includes("\ufffd"), JSON.stringify(r.pieces));
  assert.ok(r.pieces.length < r.newTokens, "pieces were held back until characters completed");
});

test("maxNewTokens ends the reply", async () => {
  const lm = fakeLM(" a long reply");
  const r = await complete(lm, "A:", {maxNewTokens: 4});
  assert.equal(r.text, " a l");
  assert.equal(r.stopReason, "length");
  assert.equal(r.newTokens, 4);
});

test("the cache is reused across calls: only the new tokens are prefilled", async () => {
  const lm = fakeLM(" 17 * 23\nObservation");
  const first = await complete(lm, "Q: what is 17 * 23?\nA:", {stop: ["\nObservation"]});
  assert.equal(first.text, " 17 * 23");
  const context = "Q: what is 17 * 23?\nA:" + first.text + "\nObservation: 391\nA:";
  const second = await complete(lm, context, {stop: ["\nObservation"]});
  assert.equal(second.text, " 17 * 23");  // read from a cache that must hold the whole context
  const added = context.length - ("Q: what is 17 * 23?\nA:" + first.text).length;
  assert.ok(second.prefillTokens <= added + 1, `prefilled ${second.prefillTokens}, new text ${added}`);
  // The cache holds the context and what was generated, stop string included, but the last token.
  assert.equal(lm.cachedIds.length, lm.tokenizer.encode(context + " 17 * 23\nObservation").length - 1);
});

test("a diverging prompt cuts the cache where it differs", async () => {
  const lm = fakeLM(" ok");
  await complete(lm, "Q: one two three\nA:");
  const r = await complete(lm, "Q: one two four\nA:");
  assert.equal(r.text, " ok");
  assert.equal(r.prefillTokens, "four\nA:".length);
  const same = await complete(lm, "Q: one two four\nA:");  // identical prompt: one token reruns
  assert.equal(same.prefillTokens, 1);
  assert.equal(same.text, " ok");
});

test("generateIds starts from an empty cache and ignores EOS", async () => {
  const lm = fakeLM("ab");
  await complete(lm, "xyz A:");
  const ids = lm.tokenizer.encode("A:");
  const r = await lm.generateIds(ids, 4);
  assert.deepEqual(r.ids, [97, 98, EOS, EOS]);
  assert.equal(r.decodeSteps, 3);
  assert.deepEqual(await lm.greedyIds(ids, 2), [97, 98]);
});

test("a prompt that fills the context gets no reply; generation stops at the context's end", async () => {
  const lm = fakeLM("x", 16);
  const full = await lm.complete("A:" + "y".repeat(20));
  assert.equal(full.stopReason, "context_full");
  assert.equal(full.text, "");
  assert.equal(lm.session.calls.length, 0);  // nothing ran
  const r = await complete(fakeLM("0123456789abcdef", 16), "A:");
  assert.equal(r.stopReason, "context_full");
  assert.equal(r.text, "0123456789abcde");  // 16 positions run; the 17th token is only sampled
});

test("stop string helpers", () => {
  assert.equal(firstStop("abc\nObs\nObservation", ["\nObservation", "bc"]), 1);
  assert.equal(firstStop("abc", ["x"]), -1);
  assert.equal(stopPrefixLength("abc\nObs", ["\nObservation"]), 4);
  assert.equal(stopPrefixLength("abc\n", ["\nObservation", "c\nX"]), 2);
  assert.equal(stopPrefixLength("abc", ["\nObservation"]), 0);
});

test("a reply's generated ids are kept across calls, not re-encoded from its text", async () => {
  // The model writes an invalid byte (0xE2): its text is U+FFFD, which would re-encode as EF BF BD.
  const reply = [0x20, 0xe2, 0x78, 0x0a, ...new TextEncoder().encode("Observation")];
  const lm = fakeLM(reply);
  const first = await complete(lm, "Q\nA:", {stop: ["\nObservation"]});
  assert.equal(first.text, " \ufffdx");
  const context = "Q\nA:" + first.text + "\nObservation: ok\nA:";
  const second = await complete(lm, context, {stop: ["\nObservation"]});
  assert.equal(second.text, " \ufffdx");  // the model saw its own bytes: the context still matches
  const expectedIds = [...lm.tokenizer.encode("Q\nA:"), 0x20, 0xe2, 0x78, ...lm.tokenizer.encode("\nObservation: ok\nA:")];
  assert.deepEqual(lm.cachedIds.slice(0, expectedIds.length), expectedIds);
  // The cache already holds "\nObservatio" (generated before the stop string completed).
  assert.equal(second.prefillTokens, "n: ok\nA:".length);
  const other = await complete(lm, "Q\nA: \ufffdx");  // a new text: encoded, U+FFFD as EF BF BD
  assert.deepEqual(lm.cachedIds.slice(0, 8), [...lm.tokenizer.encode("Q\nA: "), 0xef, 0xbf, 0xbd, 0x78].slice(0, 8));
  assert.equal(other.stopReason, "eos");
});
