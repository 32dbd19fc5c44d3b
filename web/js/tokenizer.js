// A Hugging Face tokenizer.json in the browser: encode and decode exactly as the Python
// `tokenizers` library does (encode with add_special_tokens=False, decode with
// skip_special_tokens=False), for the two kinds our exporter writes:
//   byte-level BPE  (SmolLM2, GPT-2 style): ByteLevel pre-tokenizer + BPE + ByteLevel decoder;
//   SentencePiece   (our own models): Replace(" " -> "▁") normalizer + BPE with byte_fallback +
//                   Replace/ByteFallback/Fuse decoders.
// Any other component is refused with an error naming it, rather than encoded differently.
//
//   const tok = Tokenizer.fromJSON(await (await fetch("tokenizer.json")).json());
//   tok.encode("Hello") -> [19556];  tok.decode([19556]) -> "Hello"
//   const stream = new StreamDecoder(tok);  stream.push(id) -> text settled so far ("" while a
//   character is still incomplete);  stream.flush() -> the rest.

// Unicode White_Space, which the Oniguruma regexes of `tokenizers` mean by \s (JS's \s differs:
// it has U+FEFF and lacks U+0085).
const WS = "\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
// GPT-2's split pattern, as the ByteLevel pre-tokenizer uses it (use_regex=true).
const GPT2_SPLIT = new RegExp(
    `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|[${WS}]+(?![^${WS}])|[${WS}]+`,
    "gu");

/** GPT-2's byte -> printable character table (and its inverse) used by byte-level vocabularies. */
function byteTables() {
  const printable = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const byteToChar = new Array(256);
  const charToByte = new Map();
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const code = printable.includes(b) ? b : 256 + extra++;
    byteToChar[b] = String.fromCodePoint(code);
    charToByte.set(byteToChar[b], b);
  }
  return {byteToChar, charToByte};
}

const {byteToChar: BYTE_TO_CHAR, charToByte: CHAR_TO_BYTE} = byteTables();
const UTF8 = new TextEncoder();

export class TokenizerError extends Error {}

function refuse(what, component) {
  throw new TokenizerError(
      `unsupported ${what} ${JSON.stringify(component).slice(0, 200)}; this page ` +
      "reads byte-level BPE (ByteLevel) and SentencePiece-style BPE (Replace + ByteFallback) only");
}

/** The literal string of a Replace pattern ({"String": s}); regex patterns are refused. */
function replacePattern(component, what) {
  if (!component.pattern || typeof component.pattern.String !== "string" || !component.pattern.String) {
    refuse(what, component);
  }
  return component.pattern.String;
}

/** normalizer JSON -> function(string) -> string. */
function buildNormalizer(spec) {
  if (spec === null || spec === undefined) return (s) => s;
  if (spec.type === "Sequence") {
    const parts = spec.normalizers.map(buildNormalizer);
    return (s) => parts.reduce((text, f) => f(text), s);
  }
  if (spec.type === "Replace") {
    const pattern = replacePattern(spec, "normalizer"), content = spec.content;
    return (s) => s.split(pattern).join(content);
  }
  return refuse("normalizer", spec);
}

/** pre_tokenizer JSON -> function(string) -> [string] (pieces the model sees separately). */
function buildPreTokenizer(spec) {
  if (spec === null || spec === undefined) return (s) => [s];
  if (spec.type === "ByteLevel") {
    const toChars = (s) => Array.from(UTF8.encode(s), (b) => BYTE_TO_CHAR[b]).join("");
    return (s) => {
      if (spec.add_prefix_space && !s.startsWith(" ")) s = " " + s;
      const pieces = spec.use_regex === false ? [s] : splitIsolated(s, GPT2_SPLIT);
      return pieces.map(toChars);
    };
  }
  if (spec.type === "Sequence" && spec.pretokenizers.length === 1) {
    return buildPreTokenizer(spec.pretokenizers[0]);
  }
  return refuse("pre_tokenizer", spec);
}

/** The matches of a global regex and the text between them, in order (empty pieces dropped). */
function splitIsolated(text, regex) {
  const pieces = [];
  let last = 0;
  for (const m of text.matchAll(regex)) {
    if (m.index > last) pieces.push(text.slice(last, m.index));
    if (m[0]) pieces.push(m[0]);
    last = m.index + m[0].length;
  }
  if (last < text.length) pieces.push(text.slice(last));
  return pieces;
}

/** decoder JSON -> function([token string]) -> [string] (a chain, as `tokenizers` decode_chain). */
function buildDecoder(spec) {
  if (spec === null || spec === undefined) return (tokens) => [tokens.join(" ")];
  switch (spec.type) {
    case "Sequence": {
      const parts = spec.decoders.map(buildDecoder);
      return (tokens) => parts.reduce((t, f) => f(t), tokens);
    }
    case "ByteLevel":
      return (tokens) => {
        const bytes = [];
        for (const token of tokens) {
          const chars = Array.from(token);
          if (chars.every((c) => CHAR_TO_BYTE.has(c))) {
            for (const c of chars) bytes.push(CHAR_TO_BYTE.get(c));
          } else {
            for (const b of UTF8.encode(token)) bytes.push(b);
          }
        }
        return [new TextDecoder().decode(new Uint8Array(bytes))];
      };
    case "Replace": {
      const pattern = replacePattern(spec, "decoder"), content = spec.content;
      return (tokens) => tokens.map((t) => t.split(pattern).join(content));
    }
    case "ByteFallback":
      return byteFallbackDecode;
    case "Fuse":
      return (tokens) => [tokens.join("")];
    default:
      return refuse("decoder", spec);
  }
}

const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;
const FATAL_UTF8 = new TextDecoder("utf-8", {fatal: true});

/** Runs of <0xAB> pieces become their UTF-8 text; a run that is not valid UTF-8 becomes one
 * U+FFFD per byte (what `tokenizers` does, unlike a lossy UTF-8 decoder). */
function byteFallbackDecode(tokens) {
  const out = [];
  let run = [];
  const flush = () => {
    if (!run.length) return;
    try {
      out.push(FATAL_UTF8.decode(new Uint8Array(run)));
    } catch {
      for (let i = 0; i < run.length; i++) out.push("\ufffd");
    }
    run = [];
  };
  for (const token of tokens) {
    const m = BYTE_PIECE.exec(token);
    if (m) {
      run.push(parseInt(m[1], 16));
    } else {
      flush();
      out.push(token);
    }
  }
  flush();
  return out;
}

function hasDecoder(spec, type) {
  if (!spec) return false;
  return spec.type === type || (spec.type === "Sequence" && spec.decoders.some((d) => hasDecoder(d, type)));
}

function escapeRegExp(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** A regex matching any of `tokens` (leftmost, then longest), or null when there are none. */
function alternation(tokens) {
  if (!tokens.length) return null;
  const sorted = [...tokens].sort((a, b) => b.length - a.length);
  return new RegExp(sorted.map(escapeRegExp).join("|"), "gu");
}

/** BPE as `tokenizers` runs it on one pre-token: characters (or their byte pieces) become
 * symbols, then the adjacent pair with the lowest merge rank (leftmost on ties) is merged until
 * no pair has a merge. */
class BPE {
  constructor(spec) {
    for (const field of ["dropout", "continuing_subword_prefix", "end_of_word_suffix"]) {
      if (spec[field] !== null && spec[field] !== undefined) {
        refuse(`BPE option ${field} in model`, spec[field]);
      }
    }
    this.vocab = new Map(Object.entries(spec.vocab));
    this.byteFallback = Boolean(spec.byte_fallback);
    this.ignoreMerges = Boolean(spec.ignore_merges);
    this.fuseUnk = Boolean(spec.fuse_unk);
    this.unkId = spec.unk_token === null || spec.unk_token === undefined ? null
                                                                         : this.vocab.get(spec.unk_token);
    if (spec.unk_token && this.unkId === undefined) {
      throw new TokenizerError(`unk_token ${spec.unk_token} is not in the vocabulary`);
    }
    this.merges = new Map();  // "idA idB" -> [rank, merged id]
    spec.merges.forEach((merge, rank) => {
      const [a, b] = typeof merge === "string" ? splitMerge(merge) : merge;
      const ida = this.vocab.get(a), idb = this.vocab.get(b), merged = this.vocab.get(a + b);
      if (ida === undefined || idb === undefined || merged === undefined) {
        throw new TokenizerError(`merge ${JSON.stringify(merge)} names a token not in the vocabulary`);
      }
      this.merges.set(`${ida} ${idb}`, [rank, merged]);
    });
    this.cache = new Map();
  }

  tokenize(word) {
    const cached = this.cache.get(word);
    if (cached) return cached;
    let ids;
    if (this.ignoreMerges && this.vocab.has(word)) {
      ids = [this.vocab.get(word)];
    } else {
      ids = this.merge(this.symbols(word));
    }
    if (this.cache.size > 50000) this.cache.clear();
    this.cache.set(word, ids);
    return ids;
  }

  symbols(word) {
    const ids = [];
    let lastWasUnk = false;
    for (const c of word) {
      const id = this.vocab.get(c);
      if (id !== undefined) {
        ids.push(id);
        lastWasUnk = false;
        continue;
      }
      if (this.byteFallback) {
        const pieces = Array.from(UTF8.encode(c), (b) => this.vocab.get(bytePiece(b)));
        if (pieces.every((p) => p !== undefined)) {
          ids.push(...pieces);
          lastWasUnk = false;
          continue;
        }
      }
      if (this.unkId !== null) {
        if (!(this.fuseUnk && lastWasUnk)) ids.push(this.unkId);
        lastWasUnk = true;
      }
    }
    return ids;
  }

  merge(ids) {
    while (ids.length > 1) {
      let best = null, bestAt = -1;
      for (let i = 0; i + 1 < ids.length; i++) {
        const merge = this.merges.get(`${ids[i]} ${ids[i + 1]}`);
        if (merge && (best === null || merge[0] < best[0])) {
          best = merge;
          bestAt = i;
        }
      }
      if (best === null) break;
      ids.splice(bestAt, 2, best[1]);
    }
    return ids;
  }
}

/** SentencePiece's name of a byte: <0x0A>. */
function bytePiece(b) {
  return `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`;
}

function splitMerge(merge) {
  const parts = merge.split(" ");
  if (parts.length !== 2) throw new TokenizerError(`merge ${JSON.stringify(merge)} is not "a b"`);
  return parts;
}

export class Tokenizer {
  /** spec: the parsed tokenizer.json. */
  constructor(spec) {
    if (!spec || !spec.model) throw new TokenizerError("no model in the tokenizer");
    if (spec.model.type !== "BPE") refuse("model", {type: spec.model.type});
    this.model = new BPE(spec.model);
    this.normalize = buildNormalizer(spec.normalizer);
    this.preTokenize = buildPreTokenizer(spec.pre_tokenizer);
    this.decodeChain = buildDecoder(spec.decoder);
    this.byteRuns = hasDecoder(spec.decoder, "ByteFallback");  // <0xAB> runs decode as a whole
    this.idToToken = new Map();
    for (const [token, id] of this.model.vocab) this.idToToken.set(id, token);
    this.added = new Map();  // content -> id
    const raw = [], normalized = [];
    for (const t of spec.added_tokens || []) {
      if (t.lstrip || t.rstrip || t.single_word) refuse("added token option (lstrip/rstrip/single_word)", t);
      this.added.set(t.content, t.id);
      this.idToToken.set(t.id, t.content);
      (t.normalized ? normalized : raw).push(t.content);
    }
    this.specialIds = new Set((spec.added_tokens || []).filter((t) => t.special).map((t) => t.id));
    this.rawAdded = alternation(raw);  // matched in the text as given
    this.normalizedAdded = alternation(normalized);  // matched after normalization
    this.vocabSize = Math.max(...this.idToToken.keys()) + 1;
  }

  static fromJSON(spec) {
    return new Tokenizer(spec);
  }

  /** text -> token ids (no BOS/EOS added). */
  encode(text) {
    const ids = [];
    for (const [piece, addedId] of splitOn(text, this.rawAdded, this.added)) {
      if (addedId !== undefined) {
        ids.push(addedId);
        continue;
      }
      for (const [part, id] of splitOn(this.normalize(piece), this.normalizedAdded, this.added)) {
        if (id !== undefined) {
          ids.push(id);
          continue;
        }
        for (const word of this.preTokenize(part)) ids.push(...this.model.tokenize(word));
      }
    }
    return ids;
  }

  /** Whether `id` is a byte piece (<0xAB>) whose run the ByteFallback decoder decodes as one. */
  isBytePiece(id) {
    return this.byteRuns && BYTE_PIECE.test(this.idToToken.get(Number(id)) || "");
  }

  /** token ids -> text (special tokens included); unknown ids are skipped, as in `tokenizers`. */
  decode(ids) {
    const tokens = [];
    for (const id of ids) {
      const token = this.idToToken.get(Number(id));
      if (token !== undefined) tokens.push(token);
    }
    return this.decodeChain(tokens).join("");
  }
}

/** [[piece, added id or undefined]]: text cut around the matches of `regex` (added tokens). */
function splitOn(text, regex, added) {
  if (!text) return [];
  if (!regex) return [[text, undefined]];
  const out = [];
  let last = 0;
  for (const m of text.matchAll(regex)) {
    if (m.index > last) out.push([text.slice(last, m.index), undefined]);
    out.push([m[0], added.get(m[0])]);
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push([text.slice(last), undefined]);
  return out;
}

/** Turns generated ids into text as they come, never emitting half a character, and joining to
 * exactly tokenizer.decode(all ids). Byte-level tokens may split a UTF-8 sequence: while the
 * decoded tail is U+FFFD it is held back. A run of byte-fallback pieces is held until it ends
 * (a run that is not valid UTF-8 as a whole decodes as one U+FFFD per byte, so its start is not
 * final before its end). Decodes only a short window (the tokens since the last settled point),
 * so each push costs O(window), not O(everything generated). */
export class StreamDecoder {
  constructor(tokenizer) {
    this.tokenizer = tokenizer;
    this.ids = [];
    this.start = 0;  // the window's first id: decoding from here is stable
    this.settled = 0;  // ids before this are already emitted
  }

  /** Adds one id; returns the newly settled text ("" if the window still ends mid-character). */
  push(id) {
    this.ids.push(id);
    if (this.tokenizer.isBytePiece(id)) return "";
    const before = this.tokenizer.decode(this.ids.slice(this.start, this.settled));
    const now = this.tokenizer.decode(this.ids.slice(this.start));
    if (now.length <= before.length || now.endsWith("\ufffd") || !now.startsWith(before)) return "";
    this.start = this.settled;
    this.settled = this.ids.length;
    return now.slice(before.length);
  }

  /** Whatever is held back (an unfinished character decodes as U+FFFD); the stream then ends. */
  flush() {
    const before = this.tokenizer.decode(this.ids.slice(this.start, this.settled));
    const now = this.tokenizer.decode(this.ids.slice(this.start));
    this.start = this.settled = this.ids.length;
    return now.length > before.length && now.startsWith(before) ? now.slice(before.length) : "";
  }
}
