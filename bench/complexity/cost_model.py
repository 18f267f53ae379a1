"""Cost-model expressions such as ``(47 + 10b)HWC``: a whitelist evaluator over ast, never eval()."""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass

import numpy as np

from bench.errors import BenchError

STATED_MODEL = "(47 + 10b)HWC"


SYMBOLS = {
    "b": "batch size (the published summary's definition)",
    "H": "feature-map height",
    "W": "feature-map width",
    "C": "channels",
    "N": "tokens, H*W",
}
_MAX_EXPRESSION = 300
_BINARY = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.divide,
    ast.Pow: np.power,
}
_UNARY = {ast.UAdd: np.positive, ast.USub: np.negative}
# Paper notation: juxtaposition multiplies. A number followed by a name or "(" ("10b", "2(H+W)"); a name
# made only of symbols ("HWC"); a symbol followed by "(" ("C(H+W)"); ")" followed by anything ("(..)HWC").
_NUMBER_THEN = re.compile(r"(?<![\w.])(\d[\d.]*(?:[eE][+-]?\d+)?)\s*(?=[A-Za-z_(])")
_NAME = re.compile(r"[A-Za-z_]\w*")
_SYMBOL_THEN_PAREN = re.compile(r"(?<!\w)([A-Za-z])\s*(?=\()")
_PAREN_THEN = re.compile(r"\)\s*(?=[\w(])")


def _split_symbols(match: re.Match) -> str:
    name = match.group()
    return "*".join(name) if all(ch in SYMBOLS for ch in name) else name


def _python_syntax(text: str) -> str:
    """Paper notation to Python: ``^`` is a power (``**``, so ``bHWC^2`` is b·H·W·C², binding tighter than
    the products) and juxtaposed numbers, symbols and parentheses multiply."""
    text = _NUMBER_THEN.sub(r"\1*", text.replace("^", "**"))
    text = _NAME.sub(_split_symbols, text)
    text = _SYMBOL_THEN_PAREN.sub(lambda m: f"{m.group(1)}*" if m.group(1) in SYMBOLS else m.group(), text)
    return _PAREN_THEN.sub(")*", text)


@dataclass(frozen=True)
class CostModel:
    """A parsed cost expression such as ``(47 + 10b)HWC`` or ``3*b*N*C^2 + 38*b*N*C``.

    Juxtaposition multiplies (``10b``, ``HWC``, ``(..)(..)``); ``^`` is a power. Only numbers, the
    symbols in :data:`SYMBOLS`, + - * / ** ^ and parentheses are accepted.
    """

    text: str
    tree: ast.Expression

    def __call__(self, **values: np.ndarray | float) -> np.ndarray:
        env = {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}
        env.setdefault("N", env["H"] * env["W"])
        with np.errstate(all="ignore"):
            result = np.broadcast_to(self._eval(self.tree.body, env), np.broadcast(*env.values()).shape)
        if not np.all(np.isfinite(result)):
            raise BenchError(f"--model {self.text!r} is not finite on the grid (division by zero or overflow)")
        return np.array(result, dtype=np.float64)

    def _eval(self, node: ast.AST, env: dict[str, np.ndarray]) -> np.ndarray:
        if isinstance(node, ast.Constant):
            return np.float64(node.value)
        if isinstance(node, ast.Name):
            return self._name(node.id, env)
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](self._eval(node.left, env), self._eval(node.right, env))
        return _UNARY[type(node.op)](self._eval(node.operand, env))

    @staticmethod
    def _name(name: str, env: dict[str, np.ndarray]) -> np.ndarray:
        # _check_node has accepted only symbols; a name made of several ("HW" after "1e1HW") is their product
        return math.prod((env[s] for s in name), start=np.float64(1.0))


def _check_node(node: ast.AST, text: str) -> None:
    """Raise a one-line :class:`BenchError` for anything but numbers, symbols and arithmetic."""
    if isinstance(node, ast.Expression | ast.Load) or type(node) in _BINARY or type(node) in _UNARY:
        return
    if isinstance(node, ast.BinOp | ast.UnaryOp):
        if type(node.op) not in _BINARY and type(node.op) not in _UNARY:
            raise BenchError(f"--model {text!r}: operator {type(node.op).__name__} is not allowed (use + - * / ^)")
        return
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise BenchError(f"--model {text!r}: only numbers are allowed as constants, got {node.value!r}")
        return
    if isinstance(node, ast.Name):
        unknown = [c for c in node.id if c not in SYMBOLS]
        if unknown:
            raise BenchError(
                f"--model {text!r}: unknown symbol {node.id!r}; allowed: {', '.join(SYMBOLS)} "
                "(products may be written together, as in HWC)"
            )
        return
    what = "function calls" if isinstance(node, ast.Call) else type(node).__name__
    raise BenchError(f"--model {text!r}: {what} not allowed; use numbers, {', '.join(SYMBOLS)}, + - * / ^ ( )")


def parse_cost_model(text: str) -> CostModel:
    """Parse ``text`` into a :class:`CostModel`; every mistake is a one-line :class:`BenchError`."""
    if not text or not text.strip():
        raise BenchError("--model: empty expression")
    if len(text) > _MAX_EXPRESSION:
        raise BenchError(f"--model: expression longer than {_MAX_EXPRESSION} characters")
    source = _python_syntax(text.strip())
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise BenchError(f"--model {text!r}: syntax error ({' '.join(str(exc.msg).split())})") from None
    except (RecursionError, MemoryError, ValueError):
        raise BenchError(f"--model {text!r}: expression too deeply nested or malformed") from None
    for node in ast.walk(tree):
        _check_node(node, text)
    return CostModel(text=text, tree=tree)
