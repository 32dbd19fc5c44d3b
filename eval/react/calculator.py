"""calculate[expression]: arithmetic for the agent without eval/exec.

The expression is parsed with `ast` (mode="eval") and only these nodes are walked: int and float
literals, + - * / // % **, unary + and -, parentheses, and calls of sqrt, abs, round, min, max.
Anything else (names, attributes, strings, lambdas, comprehensions, subscripts, keywords) is
refused. Work is bounded before it happens: at most MAX_INPUT_CHARS of input, |exponent| at most
MAX_EXPONENT and a power whose result would pass MAX_DIGITS digits is refused without computing
it, every literal and intermediate value stays below 10**MAX_DIGITS, and the walk stops after
TIME_LIMIT_S. Every failure comes back as an "Error: ..." observation; the tool never raises.

Input conveniences, applied before parsing: "$" signs are dropped; a comma followed by exactly
three digits is a thousands separator ("1,234,567" -> 1234567), so min/max arguments need a
space after the comma ("max(1, 234)"; "max(1,234)" reads as max(1234) and is refused as one
argument); "^" means power, "×" times, "÷" divide, "−" minus; a trailing "=" is ignored. "%" is
Python's modulo, so "20%" (percent) is a syntax error: write 0.2 or 20/100.
"""

import ast
import math
import operator
import re
import time

MAX_INPUT_CHARS = 200  # GSM8K steps are short; longer input is refused, not truncated
MAX_EXPONENT = 100
MAX_DIGITS = 100  # every literal, intermediate and result is below 10**MAX_DIGITS in magnitude
TIME_LIMIT_S = 0.1  # checked at every node; the bounds above keep each single operation cheap

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
           ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS = {"sqrt": (math.sqrt, 1, 1), "abs": (abs, 1, 1), "round": (round, 1, 2),
              "min": (min, 2, 20), "max": (max, 2, 20)}  # name -> (function, min args, max args)
_LIMIT = 10 ** MAX_DIGITS
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_SYMBOLS = {"$": "", "^": "**", "×": "*", "÷": "/", "−": "-"}


class CalculatorError(ValueError):
  """A refused expression; its message is the observation the agent sees."""


def calculate(expression):
  """The value of `expression` as a string ("18", "2.5"), or "Error: <why>"."""
  try:
    return format_number(evaluate(expression))
  except CalculatorError as e:
    return f"Error: {e}"
  except ZeroDivisionError:
    return "Error: division by zero"
  except Exception as e:  # a tool answers, it never crashes the run
    return f"Error: {type(e).__name__}: {e}"[:200]


def evaluate(expression):
  """int or float value of `expression`; raises CalculatorError (or ArithmeticError)."""
  if not isinstance(expression, str):
    raise CalculatorError("the expression must be text")
  if len(expression) > MAX_INPUT_CHARS:
    raise CalculatorError(f"expression longer than {MAX_INPUT_CHARS} characters")
  text = _THOUSANDS_COMMA.sub("", expression.strip())
  for symbol, replacement in _SYMBOLS.items():
    text = text.replace(symbol, replacement)
  text = text.strip().rstrip("=").strip()
  if not text:
    raise CalculatorError("empty expression")
  try:
    tree = ast.parse(text, mode="eval")
  except (SyntaxError, ValueError, RecursionError, MemoryError):
    raise CalculatorError(f"cannot parse {text!r} as arithmetic") from None
  return _walk(tree.body, time.perf_counter() + TIME_LIMIT_S)


def format_number(value):
  """Integers exactly; floats to 12 significant digits (0.1 + 0.2 -> "0.3"), whole ones without
  ".0" (9 / 3 -> "3")."""
  if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
    return str(int(value))
  return str(value) if isinstance(value, int) else format(value, ".12g")


def _walk(node, deadline):
  if time.perf_counter() > deadline:
    raise CalculatorError("expression took too long")
  if isinstance(node, ast.Constant):
    if type(node.value) not in (int, float):  # bool is a subclass of int: refuse it too
      raise CalculatorError(f"{node.value!r} is not a number")
    return _bounded(node.value)
  if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
    left, right = _walk(node.left, deadline), _walk(node.right, deadline)
    if isinstance(node.op, ast.Pow):
      _check_power(left, right)
    return _bounded(_BINARY[type(node.op)](left, right))
  if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
    return _bounded(_UNARY[type(node.op)](_walk(node.operand, deadline)))
  if isinstance(node, ast.Call):
    return _call(node, deadline)
  raise CalculatorError(f"{type(node).__name__} is not allowed: use numbers, + - * / // % **, "
                        "parentheses and sqrt, abs, round, min, max")


def _call(node, deadline):
  name = node.func.id if isinstance(node.func, ast.Name) else None
  if name not in _FUNCTIONS or node.keywords:
    raise CalculatorError("only sqrt, abs, round, min and max can be called, without keywords")
  function, min_args, max_args = _FUNCTIONS[name]
  if not min_args <= len(node.args) <= max_args:
    raise CalculatorError(f"{name} takes {min_args} to {max_args} arguments, got {len(node.args)}")
  args = [_walk(a, deadline) for a in node.args]  # a Starred argument is refused by _walk
  if name == "round" and len(args) == 2 and (not isinstance(args[1], int) or
                                             abs(args[1]) > MAX_DIGITS):
    raise CalculatorError(f"round's digits must be an integer of at most {MAX_DIGITS}")
  return _bounded(function(*args))


def _check_power(base, exponent):
  """Refuse a power before computing it when it would be huge."""
  if abs(exponent) > MAX_EXPONENT:
    raise CalculatorError(f"exponent {exponent} is beyond +-{MAX_EXPONENT}")
  if exponent > 0 and abs(base) > 1 and exponent * math.log10(abs(base)) > MAX_DIGITS:
    raise CalculatorError(f"result would have more than {MAX_DIGITS} digits")


def _bounded(value):
  if isinstance(value, complex):
    raise CalculatorError("the result is not a real number")
  if isinstance(value, float) and not math.isfinite(value):
    raise CalculatorError("the result is not a finite number")
  if abs(value) >= _LIMIT:
    raise CalculatorError(f"result would have more than {MAX_DIGITS} digits")
  return value
