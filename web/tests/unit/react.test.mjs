import assert from "node:assert/strict";
import {test} from "node:test";

import {makeEpisode, parseAction, runEpisode} from "../../js/react.js";
import {fixtures, skip} from "./fixtures.mjs";

/** A model that returns fixed completions and records the context of each call. */
function scriptedLM(completions, abortAt) {
  const calls = [];
  return {
    calls,
    async complete(text, {stop, maxNewTokens, onText}) {
      const i = calls.length;
      calls.push({text, stop, maxNewTokens});
      if (i === abortAt) return {text: "", stopReason: "context_full"};
      if (i >= completions.length) throw new Error(`the script has ${completions.length} completions`);
      onText(completions[i]);
      return {text: completions[i], stopReason: "stop"};
    },
  };
}

test("Episodes on scripted completions match the Python Episode turn for turn", {skip}, async () => {
  for (const c of fixtures.react) {
    const episode = makeEpisode(c.question, c.section, c.docs);
    const lm = scriptedLM(c.completions, c.abort_at);
    const events = [];
    const trajectory = await runEpisode(lm, episode, {onEvent: (e) => events.push(e)});
    assert.deepEqual(lm.calls.map((call) => call.text), c.expected.contexts, `${c.name}: contexts`);
    assert.deepEqual(lm.calls.map((call) => [call.stop, call.maxNewTokens]),
                     c.expected.turns.map((t) => [t.stop, t.maxNewTokens]), `${c.name}: stops`);
    assert.deepEqual(events.filter((e) => e.type === "turn").map((e) => e.text),
                     c.expected.turns.map((t) => t.text), `${c.name}: turn texts`);
    const expected = {...c.expected.trajectory};
    if (c.abort_at !== null) expected.abort_reason = "context full";
    assert.deepEqual(trajectory, expected, `${c.name}: trajectory`);
    // The page's events retell the trajectory: each action, its observation (none for finish).
    const actions = events.filter((e) => e.type === "action").map((e) => e.action);
    assert.deepEqual(actions, trajectory.actions, `${c.name}: action events`);
    const observations = events.filter((e) => e.type === "observation").map((e) => e.observation);
    const shown = trajectory.finish_reason === "finish" && trajectory.actions.length ?
      trajectory.observations.slice(0, -1) : trajectory.observations;
    assert.deepEqual(observations, shown, `${c.name}: observation events`);
    assert.deepEqual(events.at(-1), {type: "finish", answer: trajectory.prediction,
                                     reason: trajectory.finish_reason, trajectory}, c.name);
    const streamed = events.filter((e) => e.type === "text").map((e) => e.text).join("");
    assert.equal(streamed, c.completions.slice(0, c.abort_at ?? lm.calls.length).join(""), c.name);
  }
});

test("parseAction reads Tool[argument] and nothing else", () => {
  assert.deepEqual(parseAction(" Calculate[ 3 * 4 ] "), ["calculate", "3 * 4"]);
  assert.deepEqual(parseAction("Search[a [b] c]"), ["search", "a [b] c"]);
  assert.equal(parseAction("Calculate 3 * 4"), null);
  assert.equal(parseAction("Finish[1] more"), null);
});
