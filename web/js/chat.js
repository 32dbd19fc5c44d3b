// The conversation the page holds and the prompt text a model answers it from: ChatML for chat
// models (as input_pipeline/sft.py's prompt_text), plain continuation otherwise (as chat.py with
// template none: the turns are concatenated and the model continues them).

export const CHATML_START = "<|im_start|>", CHATML_END = "<|im_end|>";
export const TEMPLATES = ["chatml", "plain"];

/** messages: [[role, content]] -> the text up to where the assistant's reply starts. */
export function promptText(messages, template) {
  if (template === "chatml") {
    return messages.map(([role, content]) => `${CHATML_START}${role}\n${content}${CHATML_END}\n`).join("") +
           `${CHATML_START}assistant\n`;
  }
  if (template === "plain") return messages.map(([, content]) => content).join("");
  throw new Error(`chat_template ${JSON.stringify(template)} is not one of ${TEMPLATES.join(", ")}`);
}

/** Strings that end a reply besides EOS: the template's end of turn. */
export function replyStops(template) {
  return template === "chatml" ? [CHATML_END] : [];
}

export class Conversation {
  constructor(template, system = "") {
    promptText([], template);  // an unknown template fails here, not at the first message
    this.template = template;
    this.system = system;
    this.history = [];  // finished exchanges: [role, content]
  }

  /** The prompt whose continuation answers `text` after the conversation so far. */
  prompt(text) {
    const system = this.system ? [["system", this.system]] : [];
    return promptText([...system, ...this.history, ["user", text]], this.template);
  }

  add(text, reply) {
    this.history.push(["user", text], ["assistant", reply]);
  }

  reset() {
    this.history = [];
  }
}
