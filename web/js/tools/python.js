// Python's string behaviour the ported tools need to match the Python agent character for
// character: str.strip() / str.split() whitespace, repr() of a str and of a list of str.

// str.isspace(): what strip() and split() treat as whitespace (JS's \s differs: it has \ufeff and
// lacks \x1c-\x1f and \x85).
export const PY_SPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003" +
                        "\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000";
export const PY_SPACE_CLASS = `[${PY_SPACE}]`;

/** s.strip() */
export function pyStrip(s) {
  let a = 0, b = s.length;
  while (a < b && PY_SPACE.includes(s[a])) a++;
  while (b > a && PY_SPACE.includes(s[b - 1])) b--;
  return s.slice(a, b);
}

/** s.split() (no separator): the runs between whitespace. */
export function pySplit(s) {
  return s.split(new RegExp(`${PY_SPACE_CLASS}+`, "u")).filter((part) => part.length > 0);
}

const NOT_PRINTABLE = /^[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]$/u;
const hex = (n, width) => n.toString(16).padStart(width, "0");

/** repr(s) for a str. */
export function reprStr(s) {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const code = ch.codePointAt(0);
    if (ch === quote || ch === "\\") out += "\\" + ch;
    else if (ch === "\t") out += "\\t";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (code < 0x20 || code === 0x7f) out += "\\x" + hex(code, 2);
    else if (code < 0x7f || !NOT_PRINTABLE.test(ch)) out += ch;
    else if (code <= 0xff) out += "\\x" + hex(code, 2);
    else if (code <= 0xffff) out += "\\u" + hex(code, 4);
    else out += "\\U" + hex(code, 8);
  }
  return out + quote;
}

/** repr(b) for bytes given as an array of 0..255. */
export function reprBytes(bytes) {
  const has = (c) => bytes.includes(c.charCodeAt(0));
  const quote = has("'") && !has('"') ? '"' : "'";
  let out = "b" + quote;
  for (const b of bytes) {
    const ch = String.fromCharCode(b);
    if (ch === quote || ch === "\\") out += "\\" + ch;
    else if (ch === "\t") out += "\\t";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (b < 0x20 || b >= 0x7f) out += "\\x" + hex(b, 2);
    else out += ch;
  }
  return out + quote;
}

/** repr(list_of_str): "['a', \"b's\"]" */
export function reprList(items) {
  return `[${items.map(reprStr).join(", ")}]`;
}
