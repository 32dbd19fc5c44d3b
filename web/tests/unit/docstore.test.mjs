import assert from "node:assert/strict";
import {test} from "node:test";

import {Browser, DocStore} from "../../js/tools/docstore.js";
import {fixtures, skip} from "./fixtures.mjs";

test("title normalisation matches normalise_title", {skip}, () => {
  const {index, titles} = fixtures.docstore.normalise;
  const store = new DocStore(index);
  const differ = titles.map(([title, expected]) => ({title, expected, got: store.normalise(title)}))
    .filter((c) => c.got !== c.expected);
  assert.deepEqual(differ, []);
});

test("search / lookup observations match tools.Browser, query by query", {skip}, () => {
  for (const {spec, index, sessions} of fixtures.docstore.stores) {
    const store = new DocStore(index);
    for (const session of sessions) {
      const browser = new Browser(store);
      const got = session.map(([tool, argument]) => [tool, argument, browser[tool](argument)]);
      assert.deepEqual(got, session.map(([tool, argument, expected]) => [tool, argument, expected]), spec);
    }
  }
});

test("an index that is not from export/search_index.py is refused", () => {
  assert.throws(() => new DocStore({titles: []}), /frugal_docs/);
});
