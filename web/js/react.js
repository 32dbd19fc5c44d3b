// The ReAct agent in the browser: eval/react/agent.py's Episode, the same state machine turn for
// turn, and runEpisode, which plays the engine's part (models/engine.py) with the page's model.
//
// An Episode is pure: start() -> Turn {text, stop, maxNewTokens}; step(completion) -> the next
// Turn or null when it ends; `trajectory` then holds the record Python's Episode writes (same
// field names). Modes standard, cot, act, react and fireact (chatml) are all ported; the turns'
// stop strings and token budgets come from the bundle's react section (export/search_index.py reads them
// off the Python Episode), the few-shot prompt too, so no prompt text lives here.
//
// runEpisode keeps one context string as the engine does: the few-shot prefix, then each turn's
// text and each completion as the model wrote it up to (not including) the stop string; EOS adds
// nothing. lm.complete(context, {stop, maxNewTokens, onText}) -> {text, stopReason}; a
// stopReason "context_full" ends the episode as the engine's abort does.

import {calculate} from "./tools/calculator.js";
import {Browser, DocStore} from "./tools/docstore.js";
import {PY_SPACE_CLASS, pyStrip} from "./tools/python.js";

export const MODES = ["standard", "cot", "act", "react", "fireact"];
const ARGUMENT_NAMES = {search: "entity", lookup: "keyword", calculate: "expression"};
const ACTION_LINE = /(?:^|\n)[ \t]*Action(?:[ \t]*\p{Nd}+)?[ \t]*:/u;
const ACTION = /^([A-Za-z_]+)[ \t]*\[([\s\S]*)\]$/;
const ANSWER_LINE = /Answer[ \t]*:([^\n]*)/g;
const THOUGHT_HEAD = new RegExp(`^${PY_SPACE_CLASS}*Thought(?:[ \\t]*\\p{Nd}+)?[ \\t]*:`, "u");

/** [tool name lower-cased, argument stripped] from "Search[Milhouse]", or null. */
export function parseAction(text) {
  const match = pyStrip(text).match(ACTION);
  return match ? [match[1].toLowerCase(), pyStrip(match[2])] : null;
}

/** A question, its tools and (optionally) its score; see eval/react/agent.py. */
export class Episode {
  /**
   * settings: {mode, tools: {name: fn(argument) -> observation}, maxSteps, turns (the react
   * section's), label = "Question", score = () => ({}), exampleId = null, template, chatMarkers
   * ({start, end}, fireact), history ([[role, content]] before the question, fireact)}.
   */
  constructor(question, gold, {mode, tools, maxSteps, turns, label = "Question", score = () => ({}),
                               exampleId = null, template = null, chatMarkers = null, history = []}) {
    if (!MODES.includes(mode)) throw new Error(`mode ${JSON.stringify(mode)} is not one of ${MODES.join(", ")}`);
    if (mode === "fireact" && (template !== "chatml" || !chatMarkers)) {
      throw new Error("the FireAct chat format needs the chatml template and its markers");
    }
    Object.assign(this, {question, gold, mode, tools, maxSteps, turns, label, score, exampleId,
                         template, chatMarkers});
    this.messages = history.map(([role, content]) => [role, content]);
    this.text = "";
    this.thoughts = [];
    this.actions = [];
    this.observations = [];
    this.badCalls = 0;
    this.trajectory = null;
    this.waiting = null;  // "answer", "thought" or "action"
    this.thought = "";
  }

  start() {
    if (this.waiting !== null || this.trajectory !== null) throw new Error("Episode.start() called twice");
    const head = `${this.label}: ${this.question}\n`;
    if (this.mode === "standard") return this.turn("answer", head + "Answer:", "answer");
    if (this.mode === "cot") return this.turn("answer", head + "Thought:", "answer");
    if (this.mode === "act") return this.turn("action", head + "Action 1:", "action");
    if (this.mode === "fireact") return this.chatTurn(["user", this.question]);
    return this.turn("thought", head + "Thought 1:", "thought");
  }

  step(completion) {
    if (this.waiting === null || this.trajectory !== null) {
      throw new Error("Episode.step() called before start() or after the episode ended");
    }
    this.text += completion;
    if (this.waiting === "answer") return this.finish(this.answer(completion), "finish");
    if (this.mode === "fireact") {
      this.messages.push(["assistant", completion]);
      const match = completion.match(ACTION_LINE);
      if (match === null) this.badCalls += 1;
      const head = match ? completion.slice(0, match.index) : completion;
      this.thought = pyStrip(head.replace(THOUGHT_HEAD, ""));
      completion = match ? completion.slice(match.index + match[0].length) : "";
    } else if (this.waiting === "thought") {
      const match = completion.match(ACTION_LINE);
      if (match === null) {  // a thought only: ask for the action, as the ReAct notebook does
        this.badCalls += 1;
        this.thought = pyStrip(pyStrip(completion).split("\n")[0]);
        return this.turn("action", `\nAction ${this.stepNumber}:`, "action");
      }
      this.thought = pyStrip(completion.slice(0, match.index));
      completion = completion.slice(match.index + match[0].length);
    }
    const lines = completion.split("\n").map(pyStrip).filter((line) => line);
    return this.act(lines.length ? lines[0] : "");
  }

  abort(reason) {
    if (this.trajectory !== null) throw new Error("Episode.abort() called after the episode ended");
    this.finish("", "context_full", "", reason);
  }

  get stepNumber() {
    return this.actions.length + 1;
  }

  turn(waiting, text, kind) {
    this.waiting = waiting;
    this.text += text;
    const {stop, max_new_tokens: maxNewTokens} = this.turns[kind];
    return {text, stop: [...stop], maxNewTokens};
  }

  /** fireact: `message` joins the conversation; the turn's text is what the context lacks of
   * the template's rendering (the conversation, then the assistant's opening). */
  chatTurn(message) {
    this.messages.push(message);
    const rendered = this.render(this.messages) + `${this.chatMarkers.start}assistant\n`;
    if (!rendered.startsWith(this.text)) throw new Error("the chat template does not render by appending");
    return this.turn("thought", rendered.slice(this.text.length), "thought");
  }

  render(messages) {
    const {start, end} = this.chatMarkers;
    return messages.map(([role, content]) => `${start}${role}\n${content}${end}\n`).join("");
  }

  act(action) {
    if (this.mode === "react" || this.mode === "fireact") this.thoughts.push(this.thought);
    this.actions.push(action);
    const parsed = parseAction(action);
    if (parsed !== null && parsed[0] === "finish") {
      this.observations.push("");
      return this.finish(parsed[1], "finish");
    }
    let observation;
    if (parsed !== null && Object.hasOwn(this.tools, parsed[0])) {
      observation = this.tools[parsed[0]](parsed[1]);
    } else {
      const names = Object.keys(this.tools).map((n) => `${n}[${ARGUMENT_NAMES[n] || "argument"}]`);
      observation = `Invalid action: ${action}. Valid actions are ${names.join(", ")}, finish[answer].`;
    }
    observation = pyStrip(observation.split("\n").join(" "));  // one line, as the format needs
    this.observations.push(observation);
    const i = this.actions.length;
    if (this.mode === "fireact") {
      if (i < this.maxSteps) return this.chatTurn(["user", `Observation: ${observation}`]);
      this.messages.push(["user", `Observation: ${observation}`]);
      return this.finish("", "step_limit", this.render(this.messages).slice(this.text.length));
    }
    if (i >= this.maxSteps) return this.finish("", "step_limit", `\nObservation ${i}: ${observation}`);
    if (this.mode === "react") return this.turn("thought", `\nObservation ${i}: ${observation}\nThought ${i + 1}:`, "thought");
    return this.turn("action", `\nObservation ${i}: ${observation}\nAction ${i + 1}:`, "action");
  }

  /** standard: the first line; cot: what follows the last "Answer:" (empty when none). */
  answer(completion) {
    if (this.mode === "standard") return pyStrip(pyStrip(completion).split("\n")[0]);
    const answers = [...completion.matchAll(ANSWER_LINE)];
    return answers.length ? pyStrip(answers[answers.length - 1][1]) : "";
  }

  finish(prediction, reason, closing = "", abortReason = null) {
    this.text += closing;
    if (reason === "finish" && this.waiting === "answer" && !prediction) reason = "no_answer";
    this.trajectory = {
      id: this.exampleId, mode: this.mode, question: this.question, gold: this.gold, prediction,
      ...this.score(prediction, this.gold), steps: this.actions.length, finish_reason: reason,
      abort_reason: abortReason, bad_calls: this.badCalls, thoughts: this.thoughts,
      actions: this.actions, observations: this.observations, text: this.text,
    };
    return null;
  }
}

/** {name: tool} for the react section's tool names; search and lookup share one Browser. */
export function makeTools(names, docs) {
  const tools = {};
  let browser = null;
  for (const name of names) {
    if (name === "calculate") {
      tools.calculate = calculate;
    } else if (name === "search" || name === "lookup") {
      if (!docs) throw new Error(`the ${name} tool needs the bundle's document index (docs.json)`);
      browser = browser || new Browser(docs instanceof DocStore ? docs : new DocStore(docs));
      tools[name] = (argument) => browser[name](argument);
    } else {
      throw new Error(`unknown tool ${JSON.stringify(name)} in the react section`);
    }
  }
  return tools;
}

/** An Episode for `question` as the bundle's react section describes it. docs: the parsed
 * docs.json (or a DocStore), needed when the section's tools include search / lookup. */
export function makeEpisode(question, section, docs = null, {gold = null, score} = {}) {
  const episode = new Episode(question, gold, {
    mode: section.mode, tools: makeTools(section.tools, docs), maxSteps: section.max_steps,
    turns: section.turns, label: section.label, score, template: section.template,
    chatMarkers: section.chat_markers, history: section.history || []});
  episode.prompt = section.prompt || "";  // the few-shot prefix the context starts with
  return episode;
}

/**
 * Runs `episode` to its end with `lm` and returns its trajectory. onEvent receives, in order:
 * {type: "turn", text, stop, maxNewTokens} before each completion, {type: "text", text} as it
 * streams, {type: "action", step, thought, action} and {type: "observation", step, observation}
 * after each action (no observation for finish), and {type: "finish", answer, reason, trajectory}.
 */
export async function runEpisode(lm, episode, {onEvent = () => {}} = {}) {
  let context = episode.prompt || "";
  let turn = episode.start();
  while (turn !== null) {
    context += turn.text;
    onEvent({type: "turn", text: turn.text, stop: turn.stop, maxNewTokens: turn.maxNewTokens});
    const result = await lm.complete(context, {stop: turn.stop, maxNewTokens: turn.maxNewTokens,
                                               onText: (text) => onEvent({type: "text", text})});
    if (result.stopReason === "context_full") {
      episode.abort("context full");
      break;
    }
    context += result.text;
    const taken = episode.actions.length;
    turn = episode.step(result.text);
    if (episode.actions.length > taken) {
      const step = episode.actions.length;
      onEvent({type: "action", step, thought: episode.thoughts[step - 1] ?? null,
               action: episode.actions[step - 1]});
      const finished = episode.trajectory !== null && episode.trajectory.finish_reason === "finish";
      if (!finished) onEvent({type: "observation", step, observation: episode.observations[step - 1]});
    }
  }
  const trajectory = episode.trajectory;
  onEvent({type: "finish", answer: trajectory.prediction, reason: trajectory.finish_reason, trajectory});
  return trajectory;
}
