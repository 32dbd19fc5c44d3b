import assert from "node:assert/strict";
import {test} from "node:test";

import {Conversation, promptText, replyStops} from "../../js/chat.js";

test("ChatML prompts match input_pipeline/sft.py's prompt_text and grow by appending", () => {
  const c = new Conversation("chatml", "Be brief.");
  const first = c.prompt("Hi");
  assert.equal(first, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  c.add("Hi", "Hello!");
  const second = c.prompt("2+2?");
  assert.ok(second.startsWith(first + "Hello!<|im_end|>\n"), second);  // the KV cache covers the old turns
  assert.deepEqual(replyStops("chatml"), ["<|im_end|>"]);
});

test("plain continuation concatenates the turns; unknown templates are refused", () => {
  const c = new Conversation("plain");
  c.add("The king", " was old.");
  assert.equal(c.prompt(" The queen"), "The king was old. The queen");
  assert.deepEqual(replyStops("plain"), []);
  assert.throws(() => new Conversation("alpaca"), /chat_template "alpaca" is not one of chatml, plain/);
  assert.throws(() => promptText([], undefined), /not one of/);
});
