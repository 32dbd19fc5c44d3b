// Fixtures that tests/test_web_tools.py generates from the Python implementations (the path is in
// $FRUGAL_WEB_FIXTURES); without it, the tests that compare with Python are skipped.
import fs from "node:fs";

const path = process.env.FRUGAL_WEB_FIXTURES;
export const fixtures = path ? JSON.parse(fs.readFileSync(path, "utf8")) : null;
export const skip = fixtures ? false : "no Python fixtures: run pytest tests/test_web_tools.py";
