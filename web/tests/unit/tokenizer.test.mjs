// Tokenizer parity with Python `tokenizers`: FRUGAL_TOKENIZER_FIXTURES names JSON files written by
// tests/test_web.py ({tokenizer, encode: [{text, ids}], decode: [{ids, text}]}), one per
// tokenizer kind. Without it only the fixture-free tests run.
//   node --test web/tests/unit/
import assert from "node:assert/strict";
import {readFileSync} from "node:fs";
import {test} from "node:test";

import {StreamDecoder, Tokenizer, TokenizerError} from "../../js/tokenizer.js";

const fixtures = (process.env.FRUGAL_TOKENIZER_FIXTURES || "").split(",").filter(Boolean);

for (const path of fixtures) {
  const fixture = JSON.parse(readFileSync(path, "utf8"));
  const tokenizer = Tokenizer.fromJSON(JSON.parse(readFileSync(fixture.tokenizer, "utf8")));

  test(`${fixture.name}: encode equals Python tokenizers`, () => {
    for (const {text, ids} of fixture.encode) {
      assert.deepEqual(tokenizer.encode(text), ids, `encode(${JSON.stringify(text)})`);
    }
  });

  test(`${fixture.name}: decode equals Python tokenizers`, () => {
    for (const {ids, text} of fixture.decode) {
      assert.equal(tokenizer.decode(ids), text, `decode(${JSON.stringify(ids)})`);
    }
  });

  test(`${fixture.name}: streaming decode joins to the full decode, no half characters`, () => {
    for (const {text, ids} of fixture.encode) {
      const stream = new StreamDecoder(tokenizer);
      const pieces = ids.map((id) => stream.push(id));
      pieces.push(stream.flush());
      for (const piece of pieces) assert.ok(!piece.includes("\ufffd") || text.includes("\ufffd"), piece);
      assert.equal(pieces.join(""), tokenizer.decode(ids), `stream of ${JSON.stringify(text)}`);
    }
    for (const {ids, text} of fixture.decode) {  // cut and random sequences: invalid UTF-8 too
      const stream = new StreamDecoder(tokenizer);
      const pieces = ids.map((id) => stream.push(id));
      pieces.push(stream.flush());
      assert.equal(pieces.join(""), text, `stream of ${JSON.stringify(ids)}`);
    }
  });
}

// A minimal SentencePiece-style tokenizer.json, written by hand.
function tinySentencePiece() {
  const vocab = {"<unk>": 0, "▁": 1, "a": 2, "b": 3, "▁a": 4, "ab": 5};
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`] = 6 + b;
  return {
    added_tokens: [{id: 0, content: "<unk>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true}],
    normalizer: {type: "Replace", pattern: {String: " "}, content: "▁"},
    pre_tokenizer: null,
    decoder: {type: "Sequence", decoders: [
      {type: "Replace", pattern: {String: "▁"}, content: " "}, {type: "ByteFallback"}, {type: "Fuse"}]},
    model: {type: "BPE", dropout: null, unk_token: "<unk>", continuing_subword_prefix: null,
            end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false,
            vocab, merges: ["▁ a", ["a", "b"]]},
  };
}

test("byte fallback: unknown characters become byte pieces; invalid runs decode as one U+FFFD per byte", () => {
  const tok = Tokenizer.fromJSON(tinySentencePiece());
  assert.deepEqual(tok.encode(" ab"), [4, 3]);  // "▁ a" (rank 0) merges before "a b" (rank 1)
  assert.deepEqual(tok.encode("ab"), [5]);
  const e = tok.encode("é");  // U+00E9 = C3 A9
  assert.deepEqual(e, [6 + 0xc3, 6 + 0xa9]);
  assert.equal(tok.decode(e), "é");
  assert.equal(tok.decode([6 + 0xc3, 2]), "\ufffda");  // a lone lead byte, then a normal token
  assert.equal(tok.decode([6 + 0xe2, 6 + 0x82]), "\ufffd\ufffd");  // unfinished 3-byte character
  assert.equal(tok.decode([4, 1, 3]), " a b");
});

test("stream decoder holds a run of byte pieces back until the run ends", () => {
  const tok = Tokenizer.fromJSON(tinySentencePiece());
  const ids = tok.encode("a€b");  // € = E2 82 AC, three byte pieces
  const stream = new StreamDecoder(tok);
  const pieces = ids.map((id) => stream.push(id));
  assert.deepEqual(pieces, ["a", "", "", "", "€b"]);
  assert.equal(stream.flush(), "");
  // A run that turns out invalid decodes as one U+FFFD per byte, valid bytes included.
  const invalid = new StreamDecoder(tok);
  const shown = [6 + 0x61, 6 + 0xe2, 2].map((id) => invalid.push(id)).join("") + invalid.flush();
  assert.equal(shown, "\ufffd\ufffda");
  assert.equal(shown, tok.decode([6 + 0x61, 6 + 0xe2, 2]));
  const cut = new StreamDecoder(tok);
  cut.push(6 + 0xe2);
  assert.equal(cut.flush(), "\ufffd");  // the end: what is held back is final
});

test("unsupported components are refused with a message naming them", () => {
  const spec = tinySentencePiece();
  spec.normalizer = {type: "NFKC"};
  assert.throws(() => Tokenizer.fromJSON(spec), (e) => e instanceof TokenizerError && /normalizer.*NFKC/.test(e.message));
  const wordpiece = tinySentencePiece();
  wordpiece.model.type = "WordPiece";
  assert.throws(() => Tokenizer.fromJSON(wordpiece), /unsupported model.*WordPiece/);
  const regex = tinySentencePiece();
  regex.decoder = {type: "Replace", pattern: {Regex: "▁+"}, content: " "};
  assert.throws(() => Tokenizer.fromJSON(regex), /unsupported decoder/);
});
