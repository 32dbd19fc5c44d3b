// search[entity] and lookup[keyword] in the browser: eval/react/docstore.py (DocStore) and
// eval/react/tools.py (Browser) over the index export/search_index.py writes (docs.json).
//
// The index carries what Python computed so the observations are the same: the pages in the
// store's order, the normalised title keys, and the BM25 index bm25s built (vocabulary, float32
// scores, CSC layout), with its stop words. "Similar:" titles are ranked as
// bm25s ranks them: each query token's precomputed scores are added in float32 in query order,
// the top k are taken by score with ties to the lower page index (jax.lax.top_k, which bm25s
// uses), and zero scores are left out.
//
// Query normalisation follows normalise_title (html.unescape, NFKC, casefold, "_" as space,
// whitespace runs collapsed) with two documented differences: named HTML entities are decoded
// only for the common ones shipped in the index (index.entities; others stay as written), and
// casefold is the browser's toLowerCase plus the index's table of characters where Python's
// casefold and lower differ (index.casefold).

import {pySplit, pyStrip, reprList} from "./python.js";

// html.unescape's numeric references: 0x80-0x9f read as Windows-1252, these as U+FFFD or "\r".
const CP1252 = {0x80: 0x20ac, 0x82: 0x201a, 0x83: 0x192, 0x84: 0x201e, 0x85: 0x2026, 0x86: 0x2020,
                0x87: 0x2021, 0x88: 0x2c6, 0x89: 0x2030, 0x8a: 0x160, 0x8b: 0x2039, 0x8c: 0x152,
                0x8e: 0x17d, 0x91: 0x2018, 0x92: 0x2019, 0x93: 0x201c, 0x94: 0x201d, 0x95: 0x2022,
                0x96: 0x2013, 0x97: 0x2014, 0x98: 0x2dc, 0x99: 0x2122, 0x9a: 0x161, 0x9b: 0x203a,
                0x9c: 0x153, 0x9e: 0x17e, 0x9f: 0x178, 0x81: 0x81, 0x8d: 0x8d, 0x8f: 0x8f,
                0x90: 0x90, 0x9d: 0x9d, 0x00: 0xfffd, 0x0d: 0x0d};
const CHARREF = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/g;
const WORD_RUN = /[\p{L}\p{N}_]{2,}/gu;  // bm25s's (?u)\b\w\w+\b: runs of 2+ word characters

/** Code points html.unescape drops: C0/C1 controls but \t \n \f \r space, noncharacters. */
function invalidCodepoint(n) {
  return (n >= 0x1 && n <= 0x8) || n === 0xb || (n >= 0xe && n <= 0x1f) || (n >= 0x7f && n <= 0x9f) ||
         (n >= 0xfdd0 && n <= 0xfdef) || (n & 0xfffe) === 0xfffe;
}

/** html.unescape(s), with the named entities in `entities` ({name with or without ";": text}). */
export function unescapeHtml(s, entities) {
  if (!s.includes("&")) return s;
  return s.replace(CHARREF, (whole, ref) => {
    if (ref[0] === "#") {
      const hexadecimal = ref[1] === "x" || ref[1] === "X";
      const digits = ref.slice(hexadecimal ? 2 : 1).replace(/;$/, "");
      const n = hexadecimal ? parseInt(digits, 16) : Number(digits);
      if (Object.hasOwn(CP1252, n)) return String.fromCodePoint(CP1252[n]);
      if ((n >= 0xd800 && n <= 0xdfff) || !(n <= 0x10ffff)) return "\ufffd";
      if (invalidCodepoint(n)) return "";
      return String.fromCodePoint(n);
    }
    if (Object.hasOwn(entities, ref)) return entities[ref];
    for (let x = ref.length - 1; x > 1; x--) {  // the longest known prefix (legacy names without ";")
      if (Object.hasOwn(entities, ref.slice(0, x))) return entities[ref.slice(0, x)] + ref.slice(x);
    }
    return "&" + ref;
  });
}

/** Float32Array of base64 little-endian float32 bytes (exactly the values bm25s stored). */
function float32Base64(text) {
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const view = new DataView(bytes.buffer);
  return Float32Array.from({length: bytes.length / 4}, (_, i) => view.getFloat32(4 * i, true));
}

/** A read-only page store (DocStore) over a docs.json index. */
export class DocStore {
  constructor(index) {
    if (!index || index.frugal_docs !== 1) {
      throw new Error("not a docs index from export/search_index.py (frugal_docs 1): export the bundle again");
    }
    this.index = index;
    this.titles = index.titles;
    this.byTitle = new Map(index.titles.map((t, i) => [t, i]));
    this.byKey = new Map(index.keys);
    this.stopwords = new Set(index.stopwords);
    this.casefoldTable = new Map(Object.entries(index.casefold));
    const bm25 = index.bm25;
    this.bm25 = bm25 && {
      vocab: new Map(bm25.vocab.map((token, id) => [token, id])),
      data: float32Base64(bm25.data_f32le),
      indices: bm25.indices,
      indptr: bm25.indptr,
    };
  }

  get length() {
    return this.titles.length;
  }

  /** normalise_title */
  normalise(title) {
    const unescaped = unescapeHtml(title, this.index.entities).normalize("NFKC").replace(/_/g, " ");
    let folded = "";
    for (const ch of unescaped) folded += this.casefoldTable.get(ch) ?? ch.toLowerCase();
    return pySplit(folded).join(" ");
  }

  /** [title, sentences] of the page titled exactly `title` (then normalised), else null. */
  find(title) {
    let i = this.byTitle.get(title);
    if (i === undefined) i = this.byKey.get(this.normalise(title));
    return i === undefined ? null : [this.titles[i], this.index.sentences[i]];
  }

  /** Up to k titles ranked by BM25 for `query`; zero scores left out. */
  similar(query, k = 5) {
    k = Math.min(k, this.titles.length);
    const tokens = (query.toLowerCase().match(WORD_RUN) || []).filter((t) => !this.stopwords.has(t));
    if (!this.bm25 || k === 0 || !tokens.length) return [];
    const {vocab, data, indices, indptr} = this.bm25;
    const scores = new Float32Array(this.titles.length);  // float32 sums, as numpy's add.at
    for (const token of tokens) {
      const id = vocab.get(token);
      if (id === undefined) continue;
      for (let j = indptr[id]; j < indptr[id + 1]; j++) scores[indices[j]] += data[j];
    }
    const order = Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a] || a - b);
    return order.slice(0, k).filter((i) => scores[i] > 0).map((i) => this.titles[i]);
  }
}

/** One episode's view of a DocStore: the current page and the lookup cursor (tools.Browser). */
export class Browser {
  constructor(store) {
    this.store = store;
    this.page = null;
    this.sentences = [];
    this.keyword = null;
    this.hits = [];
    this.next = 0;
  }

  search(entity) {
    entity = pyStrip(entity);
    const found = this.store.find(entity);
    if (found === null) {
      const similar = this.store.similar(entity, this.store.index.similar_shown);
      return `Could not find [${entity}]. Similar: ${reprList(similar)}.`;
    }
    [this.page, this.sentences] = found;
    this.keyword = null;
    this.hits = [];
    this.next = 0;
    return this.sentences.slice(0, this.store.index.sentences_shown).join(" ");
  }

  lookup(keyword) {
    if (keyword !== this.keyword) {
      this.keyword = keyword;
      this.next = 0;
      const lower = keyword.toLowerCase();
      this.hits = this.sentences.filter((s) => s.toLowerCase().includes(lower));
    }
    if (this.next >= this.hits.length) return "No more results.";
    this.next += 1;
    return `(Result ${this.next} / ${this.hits.length}) ${this.hits[this.next - 1]}`;
  }

  tools() {
    return {search: (entity) => this.search(entity), lookup: (keyword) => this.lookup(keyword)};
  }
}
