// Drives the page in headless Chromium (Debian's /usr/bin/chromium through playwright-core; no
// browser download) and writes what it saw as JSON. Run by tests/test_web.py and
// bench/web_speed.py, against a running web/serve.py:
//   node web/tests/page.mjs config.json
// config: {base_url, out, query?, chromium?, timeout_ms?, cases: {parity?, chat?, react?,
//          screenshot?, speed?, bad?, canary?}} (each case below says what it takes).
// Every request to a host other than 127.0.0.1/localhost is aborted and listed in "blocked".
import {readFileSync, writeFileSync} from "node:fs";

import {chromium} from "playwright-core";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const cases = config.cases || {};
const timeoutMs = config.timeout_ms || 120000;
const results = {blocked: [], console: [], errors: {}};
const LOCAL = new Set(["127.0.0.1", "localhost", "[::1]"]);

function pageUrl(query) {
  const url = new URL(config.base_url);
  url.search = [config.query, query].filter(Boolean).join("&");
  return url.href;
}

/** Rejects when `promise` takes longer than `ms` (a hung page fails the case, not the run). */
function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result in ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function newContext(browser, blocked) {
  const context = await browser.newContext({viewport: {width: 1100, height: 900}});
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (["http:", "https:", "ws:", "wss:"].includes(url.protocol) && !LOCAL.has(url.hostname)) {
      blocked.push(url.href);
      return route.abort("blockedbyclient");
    }
    return route.continue();
  });
  return context;
}

async function openPage(context, query) {
  const page = await context.newPage();
  page.on("console", (m) => results.console.push(`${m.type()}: ${m.text()}`.slice(0, 500)));
  page.on("pageerror", (e) => results.console.push(`pageerror: ${e.message}`.slice(0, 500)));
  await page.goto(pageUrl(query));
  return page;
}

/** Waits for the model to load; a load error becomes the exception's message. */
async function ready(page) {
  const start = Date.now();
  await within(timeoutMs, page.evaluate(async () => {
    await window.frugal.ready;
  }), "loading the model");
  return Date.now() - start;
}

async function run(name, body) {
  const start = Date.now();
  try {
    results[name] = await body();
  } catch (e) {
    results.errors[name] = e.message;
  }
  results.seconds = {...results.seconds, [name]: (Date.now() - start) / 1000};
}

const browser = await chromium.launch({
  executablePath: config.chromium || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic", "--disable-default-apps"],
});
try {
  const context = await newContext(browser, results.blocked);
  const needsModel = cases.parity || cases.chat || cases.react || cases.screenshot;
  if (needsModel) {
    const page = await openPage(context, "");
    await run("load_ms", () => ready(page));
    // parity: {prompts: [{ids or text, n}]} -> [{ids: the prompt's (text: as the page encodes
    // it), greedy: n greedy ids}], each from a fresh cache.
    if (cases.parity && !results.errors.load_ms) {
      await run("parity", () => within(timeoutMs, page.evaluate(async (prompts) => {
        const out = [];
        for (const {ids, text, n} of prompts) {
          const promptIds = ids || window.frugal.encode(text);
          out.push({ids: promptIds, greedy: await window.frugal.greedyIds(promptIds, n)});
        }
        return out;
      }, cases.parity.prompts), "greedy ids"));
    }
    // chat: {messages} -> per message the reply, its token counts and the tokens/s the status line shows.
    if (cases.chat && !results.errors.load_ms) {
      await run("chat", () => within(timeoutMs, page.evaluate(async (messages) => {
        const out = [];
        for (const message of messages) {
          const r = await window.frugal.chat(message);
          const status = document.getElementById("status");
          out.push({text: r.text, stopReason: r.stopReason, status: status.textContent,
                    prefill_tokens_per_second: Number(status.dataset.prefillTokensPerSecond),
                    decode_tokens_per_second: Number(status.dataset.decodeTokensPerSecond),
                    prompt_tokens: r.promptTokens, prefill_tokens: r.prefillTokens, decode_steps: r.decodeSteps});
        }
        return out;
      }, cases.chat.messages), "chat"));
    }
    // react: {question} -> the agent's events and what the page shows of the trajectory.
    if (cases.react && !results.errors.load_ms) {
      await run("react", () => within(timeoutMs, page.evaluate(async (question) => {
        const r = await window.frugal.runReAct(question);
        const shown = [...document.querySelectorAll(".message.react")].pop();
        return {events: r.events, trajectory: r.trajectory || null,
                page_text: shown ? shown.innerText : "",
                actions: shown ? [...shown.querySelectorAll(".action")].map((e) => e.textContent) : [],
                observations: shown ? [...shown.querySelectorAll(".observation")].map((e) => e.textContent) : [],
                answer: shown && shown.querySelector(".answer") ? shown.querySelector(".answer").textContent : null};
      }, cases.react.question), "ReAct episode"));
    }
    if (cases.screenshot) {
      await run("screenshot", async () => {
        await page.screenshot({path: cases.screenshot, fullPage: true});
        return cases.screenshot;
      });
    }
    await page.close();
  }
  // speed: {prompt_tokens, new_tokens, variants} -> per variant prefill and decode tokens/s.
  if (cases.speed) {
    await run("speed", async () => {
      const out = [];
      for (const variant of cases.speed.variants) {
        const page = await openPage(context, `variant=${encodeURIComponent(variant)}`);
        const loadMs = await ready(page);
        const r = await within(timeoutMs, page.evaluate(async ({promptTokens, newTokens}) => {
          const f = window.frugal;
          const text = "The history of the printing press begins in the fifteenth century, when " +
                       "movable type made books cheaper, faster to produce and easier to spread. ";
          let ids = [];
          while (ids.length < promptTokens) ids = ids.concat(f.encode(text));
          ids = ids.slice(0, promptTokens);
          await f.generateIds(ids.slice(0, 8), 2);  // warm-up: first-run allocations
          const r = await f.generateIds(ids, newTokens + 1);
          return {...r, ids: undefined, device: f.lm.device, threads: f.settings.threads};
        }, {promptTokens: cases.speed.prompt_tokens, newTokens: cases.speed.new_tokens}), `speed of ${variant}`);
        out.push({variant, device: r.device, threads: r.threads, load_s: loadMs / 1000,
                  prefill_tokens: r.prefillTokens, prefill_s: r.prefillMs / 1000,
                  prefill_tokens_per_second: (1000 * r.prefillTokens) / r.prefillMs,
                  decode_tokens: r.decodeSteps, decode_s: r.decodeMs / 1000,
                  decode_tokens_per_second: (1000 * r.decodeSteps) / r.decodeMs});
        await page.close();
      }
      return out;
    });
  }
  // bad: [{name, manifest, timeout_ms}] -> the message #error shows (or null) and how long it took.
  if (cases.bad) {
    await run("bad", async () => {
      const out = [];
      for (const bad of cases.bad) {
        const start = Date.now();
        const page = await openPage(context, `manifest=${encodeURIComponent(bad.manifest)}`);
        let error = null;
        try {
          await page.locator("#error").waitFor({state: "visible", timeout: bad.timeout_ms || 30000});
          error = await page.locator("#error").textContent();
        } catch {
          error = null;
        }
        const status = await page.locator("#status").textContent();
        out.push({name: bad.name, error, status, seconds: (Date.now() - start) / 1000});
        await page.close();
      }
      return out;
    });
  }
  await context.close();
  // canary: a page that asks for an outside URL must be blocked and counted (the guard works).
  if (cases.canary) {
    await run("canary", async () => {
      const blocked = [];
      const canary = await newContext(browser, blocked);
      const page = await canary.newPage();
      await page.goto(config.base_url + "style.css");
      await page.evaluate(() => fetch("http://example.com/frugal-canary").catch(() => null));
      await canary.close();
      return {blocked};
    });
  }
} finally {
  await browser.close();
  writeFileSync(config.out, JSON.stringify(results, null, 1));
}
