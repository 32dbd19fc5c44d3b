// Python 3.11's expression tokenizer and grammar, enough to tell what ast.parse(text, mode="eval")
// accepts and to build the node types calculator.js walks (the types `ast` names: BinOp,
// UnaryOp, Call, Constant, Name, and the rest by type only). parse() throws ParseError where
// ast.parse raises SyntaxError.
//
// Covered: numbers (underscores, 0x / 0o / 0b, floats, exponents, imaginary, the "1if" rule),
// strings with every prefix, escapes and implicit concatenation, comments, line continuations,
// brackets across lines, names (NFKC-normalised), calls with *, ** and keywords, subscripts and
// slices, tuples, lists, sets, dicts and their comprehensions, lambda parameter rules,
// comparisons, boolean operators, conditional expressions, walrus, await, yield.
// Known differences: \N{NAME} escapes are refused (Python accepts the valid names); f-strings are
// checked for their brace, conversion and format-spec structure and their expressions parsed,
// not every f-string rule; identifiers use the browser's Unicode tables (Python 3.11's are
// Unicode 14).

import {pyStrip} from "./python.js";

export class ParseError extends Error {}

// Binary operators -> ast's operator names.
const BINARY = {"+": "Add", "-": "Sub", "*": "Mult", "/": "Div", "//": "FloorDiv", "%": "Mod",
                "**": "Pow", "@": "MatMult", "<<": "LShift", ">>": "RShift", "|": "BitOr",
                "^": "BitXor", "&": "BitAnd"};

// ---- tokenizer (Python 3.11's, for one eval-mode input) --------------------------------------

const KEYWORDS = new Set(["False", "None", "True", "and", "as", "assert", "async", "await", "break",
                          "class", "continue", "def", "del", "elif", "else", "except", "finally",
                          "for", "from", "global", "if", "import", "in", "is", "lambda", "nonlocal",
                          "not", "or", "pass", "raise", "return", "try", "while", "with", "yield"]);
// Longest first, so "**=" is not read as "**" "=".
const OPERATORS = ["**=", "//=", ">>=", "<<=", "...", "!=", "%=", "&=", "**", "*=", "+=", "-=", "->",
                   "//", "/=", ":=", "<<", "<=", "<>", "==", ">=", ">>", "@=", "^=", "|=", "~", "(",
                   ")", "[", "]", "{", "}", ":", ",", ";", "+", "-", "*", "/", "|", "&", "<", ">",
                   "=", ".", "%", "^", "@"];
const OPENING = {"(": ")", "[": "]", "{": "}"};
const isDigit = (c) => c >= "0" && c <= "9";
const isHex = (c) => /^[0-9a-fA-F]$/.test(c || "");
const isIdentifierChar = (c) => c !== undefined && (/^[A-Za-z0-9_]$/.test(c) || c.codePointAt(0) >= 128);
const isIdentifierStart = (c) => c !== undefined && (/^[A-Za-z_]$/.test(c) || c.codePointAt(0) >= 128);
const KEYWORD_AFTER_NUMBER = ["and", "else", "for", "if", "in", "is", "or", "not"];

function fail() {
  throw new ParseError();
}

/** Tokens of `text`: {type: NUMBER|STRING|NAME|OP|NEWLINE|END, value, ...}. */
function tokenize(text) {
  const chars = Array.from(text.replace(/\r\n?/g, "\n"));
  const tokens = [];
  const brackets = [];
  let i = 0;
  while (true) {
    const c = chars[i];
    if (c === " " || c === "\t" || c === "\f") {
      i++;
      continue;
    }
    if (c === "#") {
      while (i < chars.length && chars[i] !== "\n") i++;
      continue;
    }
    if (c === "\\") {
      if (chars[i + 1] !== "\n") fail();
      i += 2;
      continue;
    }
    if (c === undefined) {
      if (brackets.length) fail();
      tokens.push({type: "END"});
      return tokens;
    }
    if (c === "\n") {
      i++;
      if (!brackets.length && tokens.length && tokens[tokens.length - 1].type !== "NEWLINE") {
        tokens.push({type: "NEWLINE"});
      }
      continue;
    }
    if (isDigit(c) || (c === "." && isDigit(chars[i + 1]))) {
      const [token, end] = scanNumber(chars, i);
      tokens.push(token);
      i = end;
      continue;
    }
    if (isIdentifierStart(c)) {
      const prefix = stringPrefix(chars, i);
      if (prefix !== null) {
        const [token, end] = scanString(chars, i + prefix.length, prefix.toLowerCase());
        tokens.push(token);
        i = end;
        continue;
      }
      let j = i;
      while (isIdentifierChar(chars[j])) j++;
      const word = chars.slice(i, j).join("");
      if (!/^[\p{XID_Start}_][\p{XID_Continue}]*$/u.test(word)) fail();
      tokens.push({type: "NAME", value: word});
      i = j;
      continue;
    }
    if (c === "'" || c === '"') {
      const [token, end] = scanString(chars, i, "");
      tokens.push(token);
      i = end;
      continue;
    }
    const op = OPERATORS.find((o) => chars.slice(i, i + o.length).join("") === o);
    if (!op) fail();
    if (OPENING[op]) brackets.push(OPENING[op]);
    if (op === ")" || op === "]" || op === "}") {
      if (brackets.pop() !== op) fail();
    }
    tokens.push({type: "OP", value: op});
    i += op.length;
  }
}

/** The string prefix ("", "r", "b", "rb", ...) when a string literal starts at i, else null. */
function stringPrefix(chars, i) {
  for (let n = 1; n <= 2; n++) {
    const prefix = chars.slice(i, i + n).join("");
    const quote = chars[i + n];
    if ((quote === "'" || quote === '"') && /^(?:[rubf]|br|rb|fr|rf)$/i.test(prefix)) return prefix;
  }
  return null;
}

function scanNumber(chars, start) {
  let i = start;
  const next = () => chars[i];
  const digitsTail = () => {  // tok_decimal_tail: digits with single underscores between them
    while (true) {
      while (isDigit(next())) i++;
      if (next() !== "_") return;
      i++;
      if (!isDigit(next())) fail();
    }
  };
  const endOfNumber = () => {  // verify_end_of_number
    const c = next();
    if (!isIdentifierChar(c)) return;
    const rest = chars.slice(i, i + 5).join("");
    if (!KEYWORD_AFTER_NUMBER.some((k) => rest.startsWith(k))) fail();
  };
  const finish = (kind) => {
    const text = chars.slice(start, i).join("").replace(/_/g, "");
    if (kind === "int") return [{type: "NUMBER", kind, value: BigInt(text)}, i];
    if (kind === "imag") return [{type: "NUMBER", kind, value: Number(text.slice(0, -1))}, i];
    return [{type: "NUMBER", kind, value: Number(text)}, i];
  };
  const based = (test, prefixChars) => {
    i += 2;
    do {
      if (next() === "_") i++;
      if (!test(next())) fail();
      while (test(next())) i++;
    } while (next() === "_");
    if (isDigit(next())) fail();
    endOfNumber();
    const body = chars.slice(start + 2, i).join("").replace(/_/g, "");
    return [{type: "NUMBER", kind: "int", value: BigInt(prefixChars + body)}, i];
  };
  // The shared tail of decimal numbers: fraction, exponent, imaginary suffix.
  const exponentPart = () => {  // at "e"; returns false when the "e" starts a keyword ("1else")
    const e = i;
    i++;
    if (next() === "+" || next() === "-") {
      i++;
      if (!isDigit(next())) fail();
    } else if (!isDigit(next())) {
      i = e;
      endOfNumber();
      return false;
    }
    digitsTail();
    return true;
  };
  const tail = (isFloat) => {
    if (next() === ".") {
      i++;
      isFloat = true;
      if (isDigit(next())) digitsTail();
    }
    if (next() === "e" || next() === "E") {
      if (!exponentPart()) return finish(isFloat ? "float" : "int");
      isFloat = true;
    }
    if (next() === "j" || next() === "J") {
      i++;
      endOfNumber();
      return finish("imag");
    }
    endOfNumber();
    return finish(isFloat ? "float" : "int");
  };
  if (chars[i] === ".") return tail(false);
  if (chars[i] === "0") {
    const c = chars[i + 1];
    if (c === "x" || c === "X") return based(isHex, "0x");
    if (c === "o" || c === "O") return based((d) => d >= "0" && d <= "7", "0o");
    if (c === "b" || c === "B") return based((d) => d === "0" || d === "1", "0b");
    i++;
    while (true) {  // zeros, maybe with underscores; other digits only before . e j
      if (next() === "_") {
        i++;
        if (!isDigit(next())) fail();
      }
      if (next() !== "0") break;
      i++;
    }
    let nonzero = false;
    if (isDigit(next())) {
      nonzero = true;
      digitsTail();
    }
    const c2 = next();
    if (c2 === "." || c2 === "e" || c2 === "E" || c2 === "j" || c2 === "J") return tail(false);
    if (nonzero) fail();
    endOfNumber();
    return finish("int");
  }
  digitsTail();
  return tail(false);
}

const SIMPLE_ESCAPES = {"\n": "", "\\": "\\", "'": "'", '"': '"', a: "\x07", b: "\b", f: "\f",
                        n: "\n", r: "\r", t: "\t", v: "\v"};

function scanString(chars, i, prefix) {
  const quote = chars[i];
  const triple = chars[i + 1] === quote && chars[i + 2] === quote;
  const size = triple ? 3 : 1;
  let j = i + size;
  const bodyStart = j;
  while (true) {
    const c = chars[j];
    if (c === undefined || (!triple && c === "\n")) fail();
    if (c === quote && (!triple || (chars[j + 1] === quote && chars[j + 2] === quote))) break;
    j += c === "\\" ? 2 : 1;
  }
  const body = chars.slice(bodyStart, j);
  const raw = prefix.includes("r"), bytes = prefix.includes("b"), format = prefix.includes("f");
  const token = {type: "STRING", bytes, format};
  if (format) {
    checkFString(body, raw, 0);
  } else if (bytes) {
    if (body.some((c) => c.codePointAt(0) >= 128)) fail();
    token.value = Array.from(raw ? body.join("") : decodeEscapes(body, true), (c) => c.codePointAt(0));
  } else {
    token.value = raw ? body.join("") : decodeEscapes(body, false);
  }
  return [token, j + size];
}

function decodeEscapes(body, bytes) {
  let out = "";
  for (let i = 0; i < body.length; i++) {
    if (body[i] !== "\\") {
      out += body[i];
      continue;
    }
    const c = body[++i];
    if (Object.hasOwn(SIMPLE_ESCAPES, c)) {
      out += SIMPLE_ESCAPES[c];
    } else if (c >= "0" && c <= "7") {
      let value = Number(c);
      for (let k = 0; k < 2 && body[i + 1] >= "0" && body[i + 1] <= "7"; k++) value = value * 8 + Number(body[++i]);
      out += String.fromCodePoint(bytes ? value & 0xff : value);
    } else if (c === "x" || (!bytes && (c === "u" || c === "U"))) {
      const width = {x: 2, u: 4, U: 8}[c];
      const digits = body.slice(i + 1, i + 1 + width);
      if (digits.length < width || !digits.every(isHex)) fail();
      const value = parseInt(digits.join(""), 16);
      if (value > 0x10ffff) fail();
      out += String.fromCodePoint(value);
      i += width;
    } else if (!bytes && c === "N") {
      fail();  // \N{NAME} needs Unicode's name table; refused (a documented difference)
    } else {
      out += "\\" + c;  // an unknown escape stays as written
    }
  }
  return out;
}

/** Checks an f-string's literal and replacement fields (nested fields in format specs). */
function checkFString(body, raw, depth) {
  let i = 0;
  while (i < body.length) {
    const c = body[i];
    if (c === "\\" && !raw) {
      i += 2;
      continue;
    }
    if (c === "{" && body[i + 1] === "{" && depth === 0) {
      i += 2;
      continue;
    }
    if (c === "}" && body[i + 1] === "}" && depth === 0) {
      i += 2;
      continue;
    }
    if (c === "}") fail();
    if (c !== "{") {
      i++;
      continue;
    }
    if (depth >= 2) fail();
    // The expression runs to a top-level "!", ":", "=" (self-documenting) or "}".
    let j = i + 1, nesting = 0, inQuote = null;
    for (; j < body.length; j++) {
      const d = body[j];
      if (d === "\\" || (d === "#" && !inQuote)) fail();
      if (inQuote) {
        if (d === inQuote) inQuote = null;
        continue;
      }
      if (d === "'" || d === '"') inQuote = d;
      else if ("([{".includes(d)) nesting++;
      else if (")]}".includes(d) && nesting > 0) nesting--;
      else if (nesting === 0 && (d === "}" || d === ":" ||
               (d === "!" && body[j + 1] !== "=") ||
               (d === "=" && body[j + 1] !== "=" && !"=!<>".includes(body[j - 1])))) break;
    }
    if (j >= body.length || inQuote) fail();
    const expression = body.slice(i + 1, j).join("");
    if (!pyStrip(expression)) fail();
    parse(`(${expression})`);
    if (body[j] === "=") j++;
    if (body[j] === "!") {
      if (!"sra".includes(body[j + 1] || "x") || !(body[j + 2] === ":" || body[j + 2] === "}")) fail();
      j += 2;
    }
    if (body[j] === ":") {  // the format spec: literal text and nested fields up to the "}"
      let k = j + 1, level = 0;
      for (; k < body.length; k++) {
        if (body[k] === "{") level++;
        else if (body[k] === "}") {
          if (level === 0) break;
          level--;
        }
      }
      if (k >= body.length) fail();
      checkFString(body.slice(j + 1, k), raw, depth + 1);
      j = k;
    }
    if (body[j] !== "}") fail();
    i = j + 1;
  }
}

// ---- parser (Python 3.11's expression grammar; node types as in `ast`) -----------------------

/** The AST of `text` in eval mode; throws ParseError where ast.parse raises SyntaxError. */
export function parse(text) {
  const p = new Parser(tokenize(text));
  const tree = p.expressions();
  while (p.peek().type === "NEWLINE") p.i++;
  if (p.peek().type !== "END") fail();
  return tree;
}

class Parser {
  constructor(tokens) {
    this.tokens = tokens;
    this.i = 0;
  }

  peek(k = 0) {
    return this.tokens[Math.min(this.i + k, this.tokens.length - 1)];
  }

  /** Is the next token the operator or keyword `value`? */
  at(value, k = 0) {
    const t = this.peek(k);
    return (t.type === "OP" || t.type === "NAME") && t.value === value;
  }

  take(value) {
    if (!this.at(value)) return false;
    this.i++;
    return true;
  }

  expect(value) {
    if (!this.take(value)) fail();
  }

  /** expressions: expression (',' expression)* [','] */
  expressions() {
    const first = this.expression();
    if (!this.at(",")) return first;
    const elts = [first];
    while (this.take(",")) {
      if (!this.startsExpression()) break;
      elts.push(this.expression());
    }
    return {type: "Tuple", elts};
  }

  /** Can an expression start at the next token? */
  startsExpression() {
    const t = this.peek();
    if (t.type === "NUMBER" || t.type === "STRING") return true;
    if (t.type === "NAME") {
      return !KEYWORDS.has(t.value) ||
             ["False", "None", "True", "not", "lambda", "await"].includes(t.value);
    }
    return t.type === "OP" && ["(", "[", "{", "-", "+", "~", "..."].includes(t.value);
  }

  expression() {
    if (this.at("lambda")) return this.lambda();
    const body = this.disjunction();
    if (!this.take("if")) return body;
    const test = this.disjunction();
    this.expect("else");
    return {type: "IfExp", test, body, orelse: this.expression()};
  }

  lambda() {
    this.expect("lambda");
    // [positional [= default]] ... [/] ... [*[name] | *] kw-only ... [**name], each comma-separated
    let seenDefault = false, seenStar = false, bareStar = false, namedAfterStar = false;
    let positional = 0, seenSlash = false;
    while (!this.at(":")) {
      if (this.take("**")) {
        this.name();
        this.take(",");
        if (!this.at(":")) fail();
        break;
      }
      if (this.take("*")) {
        if (seenStar) fail();
        seenStar = true;
        if (this.peek().type === "NAME" && !KEYWORDS.has(this.peek().value)) {
          this.name();
        } else {
          bareStar = true;
        }
      } else if (this.take("/")) {
        if (seenSlash || seenStar || positional === 0) fail();
        seenSlash = true;
      } else {
        this.name();
        if (this.take("=")) {
          this.expression();
          if (!seenStar) seenDefault = true;
        } else if (seenDefault && !seenStar) {
          fail();  // non-default argument follows default argument
        }
        if (seenStar) namedAfterStar = true;
        else positional++;
      }
      if (!this.take(",")) break;
    }
    if (bareStar && !namedAfterStar) fail();
    this.expect(":");
    this.expression();
    return {type: "Lambda"};
  }

  name() {
    const t = this.peek();
    if (t.type !== "NAME" || KEYWORDS.has(t.value)) fail();
    this.i++;
    return t.value;
  }

  disjunction() {
    const first = this.conjunction();
    if (!this.at("or")) return first;
    while (this.take("or")) this.conjunction();
    return {type: "BoolOp"};
  }

  conjunction() {
    const first = this.inversion();
    if (!this.at("and")) return first;
    while (this.take("and")) this.inversion();
    return {type: "BoolOp"};
  }

  inversion() {
    if (this.take("not")) return {type: "UnaryOp", op: "Not", operand: this.inversion()};
    return this.comparison();
  }

  comparison() {
    const first = this.bitwiseOr();
    let compared = false;
    while (true) {
      if (["==", "!=", "<=", "<", ">=", ">", "in", "is"].some((op) => this.at(op))) {
        if (this.take("is")) this.take("not");
        else this.i++;
      } else if (this.at("not") && this.at("in", 1)) {
        this.i += 2;
      } else {
        break;
      }
      this.bitwiseOr();
      compared = true;
    }
    return compared ? {type: "Compare"} : first;
  }

  binaryLevel(operators, operand) {
    let left = operand();
    while (operators.some((op) => this.at(op))) {
      const op = BINARY[this.peek().value];
      this.i++;
      left = {type: "BinOp", op, left, right: operand()};
    }
    return left;
  }

  bitwiseOr() {
    return this.binaryLevel(["|"], () => this.bitwiseXor());
  }

  bitwiseXor() {
    return this.binaryLevel(["^"], () => this.bitwiseAnd());
  }

  bitwiseAnd() {
    return this.binaryLevel(["&"], () => this.shift());
  }

  shift() {
    return this.binaryLevel(["<<", ">>"], () => this.sum());
  }

  sum() {
    return this.binaryLevel(["+", "-"], () => this.term());
  }

  term() {
    return this.binaryLevel(["*", "/", "//", "%", "@"], () => this.factor());
  }

  factor() {
    const ops = {"+": "UAdd", "-": "USub", "~": "Invert"};
    const t = this.peek();
    if (t.type === "OP" && Object.hasOwn(ops, t.value)) {
      this.i++;
      return {type: "UnaryOp", op: ops[t.value], operand: this.factor()};
    }
    return this.power();
  }

  power() {
    let base;
    if (this.take("await")) {
      this.primary();
      base = {type: "Await"};
    } else {
      base = this.primary();
    }
    if (!this.take("**")) return base;
    return {type: "BinOp", op: "Pow", left: base, right: this.factor()};
  }

  primary() {
    let node = this.atom();
    while (true) {
      if (this.take(".")) {
        this.name();
        node = {type: "Attribute"};
      } else if (this.take("(")) {
        node = this.call(node);
      } else if (this.take("[")) {
        this.slices();
        node = {type: "Subscript"};
      } else {
        return node;
      }
    }
  }

  /** After "(": arguments and ")". */
  call(func) {
    const args = [], keywords = [];
    let sawKeyword = false, sawDoubleStar = false;
    while (!this.at(")")) {
      if (this.take("*")) {
        if (sawDoubleStar) fail();
        args.push({type: "Starred", value: this.expression()});
      } else if (this.take("**")) {
        this.expression();
        keywords.push(null);
        sawKeyword = sawDoubleStar = true;
      } else if (this.peek().type === "NAME" && !KEYWORDS.has(this.peek().value) && this.at("=", 1)) {
        this.i += 2;
        this.expression();
        keywords.push(null);
        sawKeyword = true;
      } else {
        const value = this.namedExpression();
        if (this.at("for") || this.at("async")) {  // f(x for x in y): the only argument
          this.comprehension();
          if (args.length || keywords.length || !this.at(")")) fail();
          args.push({type: "GeneratorExp"});
          break;
        }
        if (sawKeyword) fail();
        args.push(value);
      }
      if (!this.take(",")) break;
    }
    this.expect(")");
    return {type: "Call", func, args, keywords};
  }

  slices() {
    let count = 0;
    while (!this.at("]")) {
      if (this.take("*")) {
        this.expression();
      } else {
        const lower = this.at(":") ? null : this.namedExpression();
        if (lower && lower.type === "NamedExpr" && this.at(":")) fail();
        if (this.take(":")) {  // a slice: [lower] ':' [upper] [':' [step]]
          if (!this.at(":") && !this.at(",") && !this.at("]")) this.expression();
          if (this.take(":") && !this.at(",") && !this.at("]")) this.expression();
        }
      }
      count++;
      if (!this.take(",")) break;
    }
    if (!count) fail();
    this.expect("]");
  }

  /** NAME ':=' expression | expression (not followed by ':=') */
  namedExpression() {
    if (this.peek().type === "NAME" && !KEYWORDS.has(this.peek().value) && this.at(":=", 1)) {
      this.i += 2;
      this.expression();
      return {type: "NamedExpr"};
    }
    const node = this.expression();
    if (this.at(":=")) fail();
    return node;
  }

  starNamedExpression() {
    if (this.take("*")) {
      this.bitwiseOr();
      return {type: "Starred"};
    }
    return this.namedExpression();
  }

  /** ('async'? 'for' targets 'in' disjunction ('if' disjunction)*)+ */
  comprehension() {
    while (this.at("for") || this.at("async")) {
      this.take("async");
      this.expect("for");
      this.targets();
      this.expect("in");
      this.disjunction();
      while (this.take("if")) this.disjunction();
    }
  }

  targets() {
    const one = () => {
      const starred = this.take("*");
      const node = this.primary();
      if (!assignable(node)) fail();
      return starred;
    };
    one();
    while (this.take(",")) {
      if (this.at("in")) break;
      one();
    }
  }

  atom() {
    const t = this.peek();
    if (t.type === "NUMBER") {
      this.i++;
      return t.kind === "imag" ? {type: "Constant", kind: "complex", value: t.value}
                               : {type: "Constant", kind: t.kind, value: t.value};
    }
    if (t.type === "STRING") return this.strings();
    if (t.type === "NAME") {
      this.i++;
      if (t.value === "True" || t.value === "False") return {type: "Constant", kind: "bool", value: t.value === "True"};
      if (t.value === "None") return {type: "Constant", kind: "none"};
      if (KEYWORDS.has(t.value)) fail();
      return {type: "Name", id: t.value.normalize("NFKC")};
    }
    if (this.take("...")) return {type: "Constant", kind: "ellipsis"};
    if (this.take("(")) return this.parenthesized();
    if (this.take("[")) return this.display("]", "List", "ListComp");
    if (this.take("{")) return this.braces();
    fail();
  }

  strings() {
    const parts = [];
    while (this.peek().type === "STRING") parts.push(this.tokens[this.i++]);
    const bytes = parts.map((s) => s.bytes);
    if (bytes.some((b) => b !== bytes[0])) fail();  // cannot mix bytes and nonbytes literals
    if (parts.some((s) => s.format)) return {type: "JoinedStr"};
    if (bytes[0]) return {type: "Constant", kind: "bytes", value: parts.flatMap((s) => s.value)};
    return {type: "Constant", kind: "str", value: parts.map((s) => s.value).join("")};
  }

  /** After "(": (), a group, a tuple, a generator expression or a yield. */
  parenthesized() {
    if (this.take(")")) return {type: "Tuple", elts: []};
    if (this.take("yield")) {
      let type = "Yield";
      if (this.take("from")) {
        this.expression();
        type = "YieldFrom";
      } else if (!this.at(")")) {
        this.starExpressions();
      }
      this.expect(")");
      return {type};
    }
    const first = this.starNamedExpression();
    if (this.at("for") || this.at("async")) {
      if (first.type === "Starred") fail();
      this.comprehension();
      this.expect(")");
      return {type: "GeneratorExp"};
    }
    if (this.take(")")) {
      if (first.type === "Starred") fail();  // cannot use starred expression here
      return first;
    }
    this.expect(",");
    const elts = [first];
    while (!this.at(")")) {
      elts.push(this.starNamedExpression());
      if (!this.take(",")) break;
    }
    this.expect(")");
    return {type: "Tuple", elts};
  }

  starExpressions() {
    const one = () => (this.take("*") ? this.bitwiseOr() : this.expression());
    one();
    while (this.take(",")) {
      if (this.at(")")) break;
      one();
    }
  }

  /** After "[" (or "{" for a set): elements or a comprehension, then `close`. */
  display(close, type, compType, first = undefined) {
    if (first === undefined) {
      if (this.take(close)) return {type};
      first = this.starNamedExpression();
    }
    if (this.at("for") || this.at("async")) {
      if (first.type === "Starred") fail();
      this.comprehension();
      this.expect(close);
      return {type: compType};
    }
    while (this.take(",")) {
      if (this.at(close)) break;
      this.starNamedExpression();
    }
    this.expect(close);
    return {type};
  }

  /** After "{": a dict, set or their comprehensions. */
  braces() {
    if (this.take("}")) return {type: "Dict"};
    if (this.at("**")) return this.dictItems();
    const first = this.starNamedExpression();
    if (!this.at(":")) return this.display("}", "Set", "SetComp", first);
    if (first.type === "Starred" || first.type === "NamedExpr") fail();
    this.expect(":");
    this.expression();
    if (this.at("for") || this.at("async")) {
      this.comprehension();
      this.expect("}");
      return {type: "DictComp"};
    }
    if (this.take(",")) return this.dictItems();
    this.expect("}");
    return {type: "Dict"};
  }

  dictItems() {
    while (!this.at("}")) {
      if (this.take("**")) {
        this.bitwiseOr();
      } else {
        this.expression();
        this.expect(":");
        this.expression();
      }
      if (!this.take(",")) break;
    }
    this.expect("}");
    return {type: "Dict"};
  }
}

/** Can `node` be a comprehension's target? */
function assignable(node) {
  if (["Name", "Attribute", "Subscript"].includes(node.type)) return true;
  if (node.type === "Tuple" || node.type === "List") {
    return (node.elts || []).every((e) => e.type === "Starred" || assignable(e));
  }
  return false;
}
