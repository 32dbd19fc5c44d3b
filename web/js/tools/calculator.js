// calculate[expression] in the browser: eval/react/calculator.py, the same observation for the same
// text, without eval or Function.
//
// The Python tool parses with `ast` and walks only numbers, + - * / // % **, unary + -, brackets
// and sqrt, abs, round, min, max. Its observation for a refused expression names the first node
// the walk refuses ("Name is not allowed: ...", "'a' is not a number") or says the text does not
// parse, so the text goes through a port of Python 3.11's expression tokenizer and grammar
// (pyexpr.js) that builds the node types the walk meets. Arithmetic follows Python exactly: ints are BigInts (exact to
// 10**100), int / int is correctly rounded, // and % floor as Python's do, round() rounds half to
// even on the exact binary value, min / max compare ints and floats exactly, and floats print as
// format(x, ".12g") from their exact decimal expansion.
//
// Known differences: those of pyexpr.js (none reachable from ordinary arithmetic), and ** on
// floats uses Math.pow, which can differ from C's pow in the last bit (invisible at 12
// significant digits but in ties).

import {parse, ParseError} from "./pyexpr.js";
import {pyStrip, reprBytes, reprStr} from "./python.js";

export const MAX_INPUT_CHARS = 200;  // GSM8K steps are short; longer input is refused
export const MAX_EXPONENT = 100;
export const MAX_DIGITS = 100;  // every literal, intermediate and result is below 10**MAX_DIGITS
export const TIME_LIMIT_MS = 100;

const LIMIT = 10n ** BigInt(MAX_DIGITS);
const FUNCTIONS = {sqrt: [1, 1], abs: [1, 1], round: [1, 2], min: [2, 20], max: [2, 20]};
const ALLOWED_BINARY = new Set(["Add", "Sub", "Mult", "Div", "FloorDiv", "Mod", "Pow"]);
const NOT_ALLOWED = "is not allowed: use numbers, + - * / // % **, parentheses and sqrt, abs, " +
                    "round, min, max";
const SYMBOLS = [["$", ""], ["^", "**"], ["×", "*"], ["÷", "/"], ["−", "-"]];
const THOUSANDS_COMMA = /(?<=\p{Nd}),(?=\p{Nd}{3}(?!\p{Nd}))/gu;
class CalculatorError extends Error {}  // the message is the observation
class ZeroDivision extends Error {}
class PyException extends Error {  // any other Python exception: "Error: Type: message"
  constructor(type, message) {
    super(message);
    this.type = type;
  }
}

/** The value of `expression` as Python's tool prints it ("18", "2.5"), or "Error: <why>". */
export function calculate(expression) {
  try {
    return formatNumber(evaluate(expression));
  } catch (e) {
    if (e instanceof CalculatorError) return `Error: ${e.message}`;
    if (e instanceof ZeroDivision) return "Error: division by zero";
    if (e instanceof PyException) return Array.from(`Error: ${e.type}: ${e.message}`).slice(0, 200).join("");
    return Array.from(`Error: ${e.name}: ${e.message}`).slice(0, 200).join("");
  }
}

/** BigInt (a Python int) or number (a float); throws what calculate() turns into "Error: ...". */
export function evaluate(expression) {
  if (typeof expression !== "string") throw new CalculatorError("the expression must be text");
  if (Array.from(expression).length > MAX_INPUT_CHARS) {
    throw new CalculatorError(`expression longer than ${MAX_INPUT_CHARS} characters`);
  }
  let text = pyStrip(expression).replace(THOUSANDS_COMMA, "");
  for (const [symbol, replacement] of SYMBOLS) text = text.split(symbol).join(replacement);
  text = pyStrip(pyStrip(text).replace(/=+$/, ""));
  if (!text) throw new CalculatorError("empty expression");
  let tree;
  try {
    tree = parse(text);
  } catch (e) {
    if (!(e instanceof ParseError)) throw e;
    throw new CalculatorError(`cannot parse ${reprStr(text)} as arithmetic`);
  }
  return walk(tree, now() + TIME_LIMIT_MS);
}

const now = () => (globalThis.performance ? globalThis.performance.now() : Date.now());

// ---- the walk (calculator.py's _walk, _call, _check_power, _bounded) ---------------------------

function walk(node, deadline) {
  if (now() > deadline) throw new CalculatorError("expression took too long");
  if (node.type === "Constant") {
    if (node.kind !== "int" && node.kind !== "float") {
      throw new CalculatorError(`${reprConstant(node)} is not a number`);
    }
    return bounded(node.value);
  }
  if (node.type === "BinOp" && ALLOWED_BINARY.has(node.op)) {
    const left = walk(node.left, deadline), right = walk(node.right, deadline);
    if (node.op === "Pow") checkPower(left, right);
    return bounded(binary(node.op, left, right));
  }
  if (node.type === "UnaryOp" && (node.op === "UAdd" || node.op === "USub")) {
    const value = walk(node.operand, deadline);
    return bounded(node.op === "UAdd" ? value : -value);
  }
  if (node.type === "Call") return call(node, deadline);
  throw new CalculatorError(`${node.type} ${NOT_ALLOWED}`);
}

function call(node, deadline) {
  const name = node.func.type === "Name" ? node.func.id : null;
  if (!Object.hasOwn(FUNCTIONS, name) || node.keywords.length) {
    throw new CalculatorError("only sqrt, abs, round, min and max can be called, without keywords");
  }
  const [minArgs, maxArgs] = FUNCTIONS[name];
  if (node.args.length < minArgs || node.args.length > maxArgs) {
    throw new CalculatorError(`${name} takes ${minArgs} to ${maxArgs} arguments, got ${node.args.length}`);
  }
  const args = node.args.map((a) => walk(a, deadline));
  if (name === "round" && args.length === 2 &&
      (typeof args[1] !== "bigint" || absolute(args[1]) > MAX_DIGITS)) {
    throw new CalculatorError(`round's digits must be an integer of at most ${MAX_DIGITS}`);
  }
  if (name === "sqrt") {
    const x = toFloat(args[0]);
    if (x < 0) throw new PyException("ValueError", "math domain error");
    return bounded(Math.sqrt(x));
  }
  if (name === "abs") return bounded(absolute(args[0]));
  if (name === "round") return bounded(pyRound(args[0], args[1]));
  let best = args[0];  // min / max keep the first of equal values, comparing int and float exactly
  for (const value of args.slice(1)) if (name === "min" ? value < best : value > best) best = value;
  return bounded(best);
}

function checkPower(base, exponent) {
  if (absolute(exponent) > MAX_EXPONENT) {
    throw new CalculatorError(`exponent ${pyStr(exponent)} is beyond +-${MAX_EXPONENT}`);
  }
  if (exponent > 0 && absolute(base) > 1 &&
      toFloat(exponent) * Math.log10(toFloat(absolute(base))) > MAX_DIGITS) {
    throw new CalculatorError(`result would have more than ${MAX_DIGITS} digits`);
  }
}

const COMPLEX = {complex: true};  // a power that Python answers with a complex number

function bounded(value) {
  if (value === COMPLEX) throw new CalculatorError("the result is not a real number");
  if (typeof value === "number" && !Number.isFinite(value)) {
    throw new CalculatorError("the result is not a finite number");
  }
  if (absolute(value) >= LIMIT) throw new CalculatorError(`result would have more than ${MAX_DIGITS} digits`);
  return value;
}

// ---- Python's arithmetic on int (BigInt) and float (number) ----------------------------------

const absolute = (x) => (typeof x === "bigint" ? (x < 0n ? -x : x) : Math.abs(x));
const toFloat = (x) => (typeof x === "bigint" ? Number(x) : x);  // Number(BigInt) rounds correctly

function binary(op, a, b) {
  if (op === "Pow") return power(a, b);
  if (typeof a === "bigint" && typeof b === "bigint") {
    if (op === "Add") return a + b;
    if (op === "Sub") return a - b;
    if (op === "Mult") return a * b;
    if (b === 0n) throw new ZeroDivision();
    if (op === "Div") return trueDivide(a, b);
    const [q, r] = floorDivMod(a, b);
    return op === "FloorDiv" ? q : r;
  }
  const x = toFloat(a), y = toFloat(b);
  if (op === "Add") return x + y;
  if (op === "Sub") return x - y;
  if (op === "Mult") return x * y;
  if (y === 0) throw new ZeroDivision();
  if (op === "Div") return x / y;
  return op === "FloorDiv" ? floatFloorDiv(x, y) : floatMod(x, y);
}

function floorDivMod(a, b) {
  let q = a / b, r = a % b;
  if (r !== 0n && (r < 0n) !== (b < 0n)) {
    q -= 1n;
    r += b;
  }
  return [q, r];
}

/** int / int rounded once to the nearest float, as Python's long_true_divide. */
function trueDivide(a, b) {
  const negative = (a < 0n) !== (b < 0n);
  a = a < 0n ? -a : a;
  b = b < 0n ? -b : b;
  if (a === 0n) return negative ? -0 : 0;
  const small = 1n << 53n;
  if (a <= small && b <= small) return (negative ? -1 : 1) * (Number(a) / Number(b));
  // A quotient of at least 55 bits plus a sticky bit rounds correctly in Number(BigInt).
  const shift = Math.max(0, 55 - (a.toString(2).length - b.toString(2).length) + 1);
  let q = (a << BigInt(shift)) / b;
  if ((a << BigInt(shift)) % b !== 0n) q |= 1n;
  const value = Number(q) * 2 ** -shift;
  return negative ? -value : value;
}

function floatMod(x, y) {  // float_rem
  let mod = x % y;
  if (mod) {
    if ((y < 0) !== (mod < 0)) mod += y;
  } else {
    mod = y < 0 ? -0 : 0;
  }
  return mod;
}

function floatFloorDiv(x, y) {  // _float_div_mod
  let mod = x % y;
  let div = (x - mod) / y;
  if (mod) {
    if ((y < 0) !== (mod < 0)) {
      mod += y;
      div -= 1;
    }
  }
  if (div) {
    let floordiv = Math.floor(div);
    if (div - floordiv > 0.5) floordiv += 1;
    return floordiv;
  }
  return (x / y < 0 || Object.is(x / y, -0)) ? -0 : 0;
}

function power(a, b) {
  if (typeof a === "bigint" && typeof b === "bigint" && b >= 0n) return a ** b;
  return floatPower(toFloat(a), toFloat(b));
}

function floatPower(x, y) {  // float_pow for finite x, y
  if (y === 0) return 1;
  if (x === 0) {
    if (y < 0) throw new ZeroDivision();
    return isOddInteger(y) ? x : 0;
  }
  let negate = false;
  if (x < 0) {
    if (y !== Math.floor(y)) {  // complex_pow: an error only when its magnitude overflows
      if (Math.pow(-x, y) === Infinity) throw new PyException("OverflowError", "complex exponentiation");
      return COMPLEX;
    }
    x = -x;
    negate = isOddInteger(y);
  }
  if (x === 1) return negate ? -1 : 1;
  const result = Math.pow(x, y);
  if (!Number.isFinite(result)) throw new PyException("OverflowError", "(34, 'Numerical result out of range')");
  return negate ? -result : result;
}

const isOddInteger = (y) => Number.isInteger(y) && Math.abs(y % 2) === 1;

function pyRound(x, digits) {
  if (digits === undefined) return typeof x === "bigint" ? x : BigInt(roundHalfEven(x));
  if (typeof x === "bigint") {
    if (digits >= 0n) return x;
    const unit = 10n ** -digits;
    let [q, r] = floorDivMod(x, unit);
    if (2n * r > unit || (2n * r === unit && (q & 1n) === 1n)) q += 1n;
    return q * unit;
  }
  return roundFloat(x, Number(digits));
}

function roundHalfEven(x) {  // float.__round__(): C round(), then ties to even
  const cRound = (v) => {
    const t = Math.trunc(v);
    return Math.abs(v - t) >= 0.5 ? t + Math.sign(v) : t;
  };
  let rounded = cRound(x);
  if (Math.abs(x - rounded) === 0.5) rounded = 2 * cRound(x / 2);
  return rounded;
}

/** round(x, n) for a float: its exact decimal value rounded half to even at 10**-n, read back. */
function roundFloat(x, n) {
  if (x === 0) return x;
  const {digits, exponent} = exactDecimal(x);
  if (exponent >= -n) return x;
  const cut = BigInt(-n - exponent);
  const unit = 10n ** cut;
  const whole = BigInt(digits);
  let q = whole / unit;
  const r = whole % unit;
  if (2n * r > unit || (2n * r === unit && (q & 1n) === 1n)) q += 1n;
  const value = Number(`${q}e${-n}`);
  return x < 0 ? -value : value;
}

// ---- number formatting ----------------------------------------------------------------------

/** Integers exactly; floats to 12 significant digits, whole ones below 1e15 without ".0". */
export function formatNumber(value) {
  if (typeof value === "bigint") return value.toString();
  if (Number.isInteger(value) && Math.abs(value) < 1e15) return BigInt(value).toString();
  return formatGeneral(value, 12);
}

/** {digits, exponent}: |x| == digits * 10**exponent exactly (x finite, non-zero). */
function exactDecimal(x) {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const high = view.getUint32(0), low = view.getUint32(4);
  const biased = (high >>> 20) & 0x7ff;
  let mantissa = (BigInt(high & 0xfffff) << 32n) | BigInt(low);
  let twos = -1074;
  if (biased) {
    mantissa |= 1n << 52n;
    twos = biased - 1075;
  }
  let digits, exponent;
  if (twos >= 0) {
    digits = (mantissa << BigInt(twos)).toString();
    exponent = 0;
  } else {  // m / 2**k == m * 5**k / 10**k
    digits = (mantissa * 5n ** BigInt(-twos)).toString();
    exponent = twos;
  }
  const trimmed = digits.replace(/0+$/, "");
  return {digits: trimmed, exponent: exponent + digits.length - trimmed.length};
}

/** {digits, point}: x's decimal digits rounded half to even to `precision` significant ones
 * (trailing zeros dropped); x == 0.digits * 10**point. */
function roundedDigits(x, precision) {
  let {digits, exponent} = exactDecimal(x);
  if (digits.length > precision) {
    const kept = digits.slice(0, precision), rest = digits.slice(precision);
    let up = rest[0] > "5" || (rest[0] === "5" && (/[1-9]/.test(rest.slice(1)) ||
                                                  Number(kept[kept.length - 1]) % 2 === 1));
    let head = BigInt(kept) + (up ? 1n : 0n);
    exponent += digits.length - precision;
    digits = head.toString();
    if (digits.length > precision) {
      digits = digits.slice(0, precision);
      exponent += 1;
    }
    const trimmed = digits.replace(/0+$/, "");
    exponent += digits.length - trimmed.length;
    digits = trimmed;
  }
  return {digits, point: digits.length + exponent};
}

/** format(x, ".{precision}g") */
function formatGeneral(x, precision) {
  if (x === 0) return Object.is(x, -0) ? "-0" : "0";
  const sign = x < 0 ? "-" : "";
  const {digits, point} = roundedDigits(x, precision);
  const e = point - 1;
  if (e >= -4 && e < precision) return sign + fixed(digits, point, false);
  return sign + scientific(digits, e);
}

/** repr(float): the shortest digits that read back as x (Number's own), Python's layout. */
export function reprFloat(x, addDotZero = true) {
  if (x === 0) return (Object.is(x, -0) ? "-0" : "0") + (addDotZero ? ".0" : "");
  const sign = x < 0 ? "-" : "";
  const [, whole, fraction = "", exp = "0"] = String(Math.abs(x)).match(/^(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$/);
  let digits = (whole + fraction).replace(/^0+/, "");
  const point = whole.length + Number(exp) - ((whole + fraction).length - digits.length);
  const trimmed = digits.replace(/0+$/, "");
  digits = trimmed;
  if (point <= -4 || point > 16) return sign + scientific(digits, point - 1);
  return sign + fixed(digits, point, addDotZero);
}

function fixed(digits, point, addDotZero) {
  if (point <= 0) return `0.${"0".repeat(-point)}${digits}`;
  if (point >= digits.length) return digits + "0".repeat(point - digits.length) + (addDotZero ? ".0" : "");
  return `${digits.slice(0, point)}.${digits.slice(point)}`;
}

function scientific(digits, e) {
  const mantissa = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  const magnitude = String(Math.abs(e)).padStart(2, "0");
  return `${mantissa}e${e < 0 ? "-" : "+"}${magnitude}`;
}

const pyStr = (x) => (typeof x === "bigint" ? x.toString() : reprFloat(x));

// ---- repr of constants ----------------------------------------------------------------------

function reprConstant(node) {
  switch (node.kind) {
    case "str": return reprStr(node.value);
    case "bytes": return reprBytes(node.value);
    case "complex": return reprFloat(node.value, false) + "j";
    case "bool": return node.value ? "True" : "False";
    case "none": return "None";
    default: return "Ellipsis";
  }
}
