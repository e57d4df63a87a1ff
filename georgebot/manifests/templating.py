"""The Jinja sandbox templates render in, every render's work counted (never timed).

`render.py` compiles with `ENV` and renders each job inside `budget(limits)`. Each template is
rewritten before it compiles so that loops count iterations and outputs count characters;
calls, filters, tests and `* ** + %` refuse a too-large result before making it. Only filters
and methods of bounded output, and none that is random, are offered. With `render.py` the
only module that imports jinja2."""

from __future__ import annotations

import contextlib
import math
import re
import string
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from datetime import date, datetime
from typing import Any

from jinja2 import StrictUndefined, nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateRuntimeError, TemplateSyntaxError
from jinja2.runtime import Context, LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Cycler, Joiner, Namespace
from jinja2.visitor import NodeTransformer

from georgebot.manifests.limits import MAX_INT_DIGITS, LimitExceeded, Limits

_LOG10_2 = math.log10(2)
_DEPTH = 100  # nesting a weighed value may have; deeper counts as too large


class Budget:
    """What one job's render may still spend: work, and characters per string and in all."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.work = 0
        self.job_chars = 0
        self.text_chars = 0  # of the string being rendered now

    def spend(self, units: int) -> None:
        self.work += units
        if self.work > self.limits.render_work:
            raise LimitExceeded(
                "render_work", self.limits.render_work, "the job's templates take too much work to render"
            )

    def wrote(self, chars: int) -> None:
        self.text_chars += chars
        self.job_chars += chars
        if self.text_chars > self.limits.rendered_chars:
            raise LimitExceeded(
                "rendered_chars", self.limits.rendered_chars,
                "the string renders to more characters than allowed",
            )
        if self.job_chars > self.limits.job_rendered_chars:
            raise LimitExceeded(
                "job_rendered_chars", self.limits.job_rendered_chars,
                "the job's strings render to more characters than allowed",
            )

    def fits(self, size: int, what: str) -> None:
        if size > self.limits.rendered_chars:
            raise LimitExceeded(
                "rendered_chars", self.limits.rendered_chars, f"{what} would make {size} characters"
            )

    def weigh(self, value: Any, what: str) -> int:
        """The weight of an input (see `weight`), refused over `rendered_chars`."""
        if type(value) in _LIGHT:
            return 1
        cap = self.limits.rendered_chars
        size = len(value) if type(value) is str else weight(value, cap)
        if size > cap:
            raise LimitExceeded(
                "rendered_chars", cap, f"{what} is given a value of more characters than allowed"
            )
        return size

    def inputs(self, what: str, *values: Any) -> int:
        total = 0
        for value in values:
            total += self.weigh(value, what)
        self.spend(1 + total)
        return total

    def result(self, value: Any, what: str) -> Any:
        if type(value) in _LIGHT:
            self.spend(1)
            return value
        cap = self.limits.rendered_chars
        size = len(value) if isinstance(value, str) else weight(value, cap)
        if size > cap:
            raise LimitExceeded("rendered_chars", cap, f"{what} makes more characters than allowed")
        self.spend(size)
        return value


_LIGHT = frozenset({int, float, bool, type(None), date, datetime})

_CURRENT: ContextVar[Budget | None] = ContextVar("george_render_budget", default=None)


@contextlib.contextmanager
def budget(limits: Limits) -> Iterator[Budget]:
    """Every template rendered inside spends from one new `Budget`."""
    current = Budget(limits)
    token = _CURRENT.set(current)
    try:
        yield current
    finally:
        _CURRENT.reset(token)


def _budget() -> Budget:
    current = _CURRENT.get()
    if current is None:  # compiling folds no constants through these (pass_context): never here
        raise TemplateRuntimeError("a template was rendered outside a render budget")
    return current


class _TooHeavy(Exception):
    pass


def weight(value: Any, cap: int) -> int:
    """Characters and items `value` spans, a part shared by reference counted each time it
    appears (so `[[x] * 9] * 9` weighs its 81 x's). Stops past `cap`, returning cap + 1."""
    seen: dict[int, int] = {}

    def walk(item: Any, depth: int) -> int:
        if isinstance(item, str | bytes):
            return len(item)
        if isinstance(item, bool) or item is None:
            return 1
        if isinstance(item, int):
            return 1 + int(item.bit_length() * _LOG10_2)
        if isinstance(item, float | date):
            return 8
        if isinstance(item, range):
            return 1 + len(item)
        if isinstance(item, Namespace):
            item = item._Namespace__attrs
        if not isinstance(item, list | tuple | dict | set | frozenset):
            return 1  # a macro, loop, generator, undefined...: it weighs when it is used
        key = id(item)
        if key in seen:
            return seen[key]
        if depth > _DEPTH:
            raise _TooHeavy
        total = 1
        parts: Iterable[Any] = item
        if isinstance(item, dict):
            for part in item.values():  # keys and values apart: `items()` makes new tuples
                total += walk(part, depth + 1)
                if total > cap:
                    raise _TooHeavy
        for part in parts:
            total += walk(part, depth + 1)
            if total > cap:
                raise _TooHeavy
        seen[key] = total
        return total

    try:
        return walk(value, 0)
    except _TooHeavy:
        return cap + 1


# --- what templates may call ------------------------------------------------------------


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _replaced(text: str, old: str, new: str, count: int | None = None) -> int:
    found = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        found = min(found, count)
    return len(text) + found * len(new)


_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")


def _printf_width(fmt: str) -> int:
    """The widest field a `%` format asks for; `*` (a width from the arguments) is refused."""
    widest = 0
    for match in _PRINTF.finditer(fmt):
        for part in match.groups():
            if part == "*":
                raise SecurityError("a `*` width in a % format is not allowed in templates")
            if part:
                widest = max(widest, int(part) if len(part) < 10 else 10**10)
    return widest


def _format_width(fmt: str) -> int:
    """The widest field a `str.format` string asks for; nested `{}` in a spec are refused."""
    widest = 0
    for _, field, spec, _ in string.Formatter().parse(fmt):
        if field is None or not spec:
            continue
        if "{" in spec:
            raise SecurityError("a `{}` inside a format spec is not allowed in templates")
        for digits in re.findall(r"\d+", spec):
            widest = max(widest, int(digits) if len(digits) < 10 else 10**10)
    return widest


def _str_estimate(method: str, text: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
    """How many characters a str method call may make, before it is made."""
    if method in ("ljust", "rjust", "center", "zfill") and args and isinstance(args[0], int):
        return max(len(text), args[0])
    if method == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        return len(text) + text.count("\t") * max(int(size), 0)
    if method == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        return _replaced(text, args[0], args[1], count if isinstance(count, int) else None)
    if method in ("format", "format_map"):
        return len(text) + _format_width(text)
    if method == "join" and args and isinstance(args[0], list | tuple | str):
        return _join_size(list(args[0]), text)
    if method == "strftime":
        return 32 * (len(args[0]) if args and isinstance(args[0], str) else 1)
    return len(text)


_STR_METHODS = frozenset({
    "capitalize", "casefold", "center", "count", "endswith", "expandtabs", "find", "format",
    "format_map", "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit",
    "isidentifier", "islower", "isnumeric", "isprintable", "isspace", "istitle", "isupper",
    "join", "ljust", "lower", "lstrip", "partition", "removeprefix", "removesuffix", "replace",
    "rfind", "rindex", "rjust", "rpartition", "rsplit", "rstrip", "split", "splitlines",
    "startswith", "strip", "swapcase", "title", "upper", "zfill",
})
_METHODS: tuple[tuple[type | tuple[type, ...], frozenset[str]], ...] = (
    (str, _STR_METHODS),
    ((date, datetime), frozenset({
        "isoformat", "strftime", "weekday", "isoweekday", "isocalendar", "replace", "toordinal",
        "ctime", "date", "time",
    })),
    ((int, float), frozenset({"bit_length", "is_integer", "conjugate", "as_integer_ratio"})),
    (dict, frozenset({"items", "keys", "values", "get"})),
    ((list, tuple), frozenset({"index", "count"})),
    (Cycler, frozenset({"next", "reset"})),
    (LoopContext, frozenset({"cycle", "changed"})),
)


def _range(*args: int) -> range:
    made = range(*args)
    limit = _budget().limits.render_work
    if len(made) > limit:
        raise LimitExceeded("render_work", limit, f"range() of {len(made)} numbers could never be used up")
    return made


_GLOBALS: dict[str, Any] = {
    "range": _range, "dict": dict, "cycler": Cycler, "joiner": Joiner, "namespace": Namespace,
}


def _counted(iterable: Any) -> Iterator[Any]:
    spend = _budget().spend
    for item in iterable:
        spend(1)
        yield item


def _allowed(obj: Any) -> Callable[[tuple[Any, ...], dict[str, Any]], int] | None:
    """None when `obj` may be called; else raises. Returns an estimate of the output's size
    for the calls that can make a lot from a little."""
    if isinstance(obj, Macro | LoopContext | Joiner) or obj in _GLOBALS.values():
        return None
    wrapped = getattr(obj, "__wrapped__", None)  # the sandbox's wrapper of str.format
    if isinstance(wrapped, types.BuiltinMethodType) and isinstance(wrapped.__self__, str):
        fmt: str = wrapped.__self__
        return lambda args, kwargs: len(fmt) + _format_width(fmt)
    if isinstance(obj, types.BuiltinMethodType | types.MethodType):
        owner = obj.__self__
        for kind, names in _METHODS:
            if isinstance(owner, kind) and obj.__name__ in names:
                if isinstance(owner, str):
                    name: str = obj.__name__
                    return lambda args, kwargs: _str_estimate(name, owner, args, kwargs)
                return None
    shown = getattr(obj, "__qualname__", None) or type(obj).__name__
    raise SecurityError(f"calling `{shown}` is not allowed in templates")


# --- filters and tests ------------------------------------------------------------------


def _join_size(value: list[Any], d: str = "", attribute: Any = None) -> int:
    return sum(len(_text(v)) for v in value) + len(d) * max(len(value) - 1, 0)


def _indent_size(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> int:
    text = _text(s)
    pad = width if isinstance(width, int) else len(width)
    return len(text) + (text.count("\n") + 1) * max(pad, 0)


def _sum_check(iterable: Any, attribute: Any = None, start: Any = 0) -> int:
    if not isinstance(start, int | float):  # so lists and strings cannot be added up (quadratic)
        raise TemplateRuntimeError("the `sum` filter adds numbers only in templates")
    return 1


_ESTIMATES: dict[str, Callable[..., int]] = {
    "center": lambda value, width=80: max(len(_text(value)), int(width)),
    "indent": _indent_size,
    "replace": lambda s, old, new, count=None: _replaced(_text(s), _text(old), _text(new), count),
    "join": _join_size,
    "format": lambda value, *args, **kwargs: len(_text(value)) + _printf_width(_text(value)),
    "batch": lambda value, linecount, fill_with=None: int(linecount) + 1,
    "slice": lambda value, slices, fill_with=None: int(slices) + 1,
    "sum": _sum_check,
}
_FILTERS = (
    "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e",
    "escape", "filesizeformat", "first", "float", "forceescape", "format", "groupby", "indent",
    "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min", "pprint",
    "reject", "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr",
    "slice", "sort", "string", "sum", "title", "tojson", "trim", "truncate", "unique", "upper",
    "urlencode", "wordcount", "xmlattr",
)
_MATERIALISED = frozenset({"join"})  # generators are made lists first, to be weighed


def _filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    passed = getattr(getattr(func, "jinja_pass_arg", None), "name", None)
    estimate = _ESTIMATES.get(name)
    what = f"the filter `{name}`"

    @pass_context  # also keeps the compiler from running it on constants, outside a budget
    def run(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        spent = _budget()
        if name in _MATERIALISED and not isinstance(value, list | tuple | str | dict):
            value = list(_counted(value))
        spent.inputs(what, value, *args, *kwargs.values())
        if estimate is not None:
            spent.fits(estimate(value, *args, **kwargs), what)
        if passed == "context":
            result = func(context, value, *args, **kwargs)
        elif passed == "eval_context":
            result = func(context.eval_ctx, value, *args, **kwargs)
        elif passed == "environment":
            result = func(context.environment, value, *args, **kwargs)
        else:
            result = func(value, *args, **kwargs)
        return spent.result(result, what)

    return run


def _test(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    passed = getattr(getattr(func, "jinja_pass_arg", None), "name", None)
    what = f"the test `{name}`"

    @pass_context
    def run(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        _budget().inputs(what, value, *args, *kwargs.values())
        if passed == "environment":
            return func(context.environment, value, *args, **kwargs)
        if passed == "context":
            return func(context, value, *args, **kwargs)
        return func(value, *args, **kwargs)

    return run


@pass_context
def _loop(context: Context, iterable: Any) -> Iterator[Any]:
    return _counted(iterable)


@pass_context
def _output(context: Context, value: Any) -> Any:
    spent = _budget()
    if isinstance(value, str):
        spent.wrote(len(value))
    else:
        spent.weigh(value, "an output")
        spent.wrote(len(str(value)))
    return value


@pass_context
def _concat(context: Context, parts: list[Any]) -> str:
    spent = _budget()
    for part in parts:
        spent.weigh(part, "`~`")
    texts = [_text(p) for p in parts]
    size = sum(len(t) for t in texts)
    spent.fits(size, "`~`")
    spent.spend(1 + size)
    return "".join(texts)


@pass_context
def _value(context: Context, value: Any) -> Any:
    _budget().inputs("a list, dict or comparison", value)
    return value


_GUARDS = {"_george_loop": _loop, "_george_out": _output, "_george_concat": _concat, "_george_value": _value}


def _wrap(node: Any, guard: str) -> nodes.Filter:
    return nodes.Filter(node, guard, [], [], None, None, lineno=node.lineno)


class _Guard(NodeTransformer):
    """Puts the counting guards into a parsed template (before it is compiled)."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _wrap(node.iter, "_george_loop")
        return node

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [_wrap(child, "_george_out") for child in node.nodes]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _wrap(nodes.List(node.nodes, lineno=node.lineno), "_george_concat")

    def visit_List(self, node: nodes.List) -> nodes.Node:
        self.generic_visit(node)
        return _wrap(node, "_george_value")

    def visit_Dict(self, node: nodes.Dict) -> nodes.Node:
        self.generic_visit(node)
        return _wrap(node, "_george_value")

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        self.generic_visit(node)
        return node if node.ctx != "load" else _wrap(node, "_george_value")

    def visit_Getitem(self, node: nodes.Getitem) -> nodes.Node:
        self.generic_visit(node)
        if isinstance(node.arg, nodes.Slice):  # slices bypass the environment's getitem
            node.node = _wrap(node.node, "_george_value")
        return node

    def visit_Compare(self, node: nodes.Compare) -> nodes.Node:
        self.generic_visit(node)
        node.expr = _wrap(node.expr, "_george_value")
        for operand in node.ops:
            operand.expr = _wrap(operand.expr, "_george_value")
        return node

    def _refuse(self, node: nodes.Node) -> nodes.Node:
        raise TemplateSyntaxError("templates cannot include, import or extend other templates", node.lineno)

    visit_Extends = visit_Include = visit_Import = visit_FromImport = _refuse


class _Generator(CodeGenerator):
    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        guarded = _Guard().visit(node)
        super().visit_Template(guarded, frame)


class Environment(ImmutableSandboxedEnvironment):
    """The one environment of George's templates (`ENV`)."""

    code_generator_class = _Generator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, **options)
        self.globals = dict(_GLOBALS)
        self.filters = {
            **{name: _filter(name, self.filters[name]) for name in _FILTERS},
            **_GUARDS,
        }
        tests: dict[str, Any] = dict(self.tests)
        self.tests = {name: _test(name, func) for name, func in tests.items()}

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        spent = _budget()
        what = f"the operator `{operator}`"
        spent.inputs(what, left, right)
        _check_operation(spent, operator, left, right, what)
        return spent.result(super().call_binop(context, operator, left, right), what)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        spent = _budget()
        estimate = _allowed(__obj)
        name = getattr(__obj, "__name__", type(__obj).__name__)
        what = f"calling `{name}`"
        if name == "join" and args and not isinstance(args[0], list | tuple | str):
            args = (list(_counted(args[0])), *args[1:])  # a generator is weighed as a list
        spent.inputs(what, *args, *kwargs.values())
        if estimate is not None:
            spent.fits(estimate(args, kwargs), what)
        if isinstance(__obj, LoopContext) and args:  # a recursive loop's next level
            args = (_counted(args[0]), *args[1:])
        result = super().call(__context, __obj, *args, **kwargs)
        if __obj is _range:  # lazy: its numbers cost work as a loop takes them
            return result
        return spent.result(result, what)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(argument, slice) and isinstance(obj, str | list | tuple):
            _budget().spend(1 + len(obj))
        return super().getitem(obj, argument)


def _check_operation(spent: Budget, operator: str, left: Any, right: Any, what: str) -> None:
    """Refuses, before it is computed, a result over the limits."""
    numbers = isinstance(left, int) and isinstance(right, int)
    if operator == "*":
        if numbers:
            _digits((left.bit_length() + right.bit_length()) * _LOG10_2, what)
        elif isinstance(right, int) and isinstance(left, str | list | tuple):
            spent.fits(weight(left, spent.limits.rendered_chars) * max(right, 0), what)
        elif isinstance(left, int) and isinstance(right, str | list | tuple):
            spent.fits(weight(right, spent.limits.rendered_chars) * max(left, 0), what)
    elif operator == "**":
        if numbers and right > 0 and abs(left) > 1:
            _digits(right * math.log10(abs(left)), what)
    elif operator == "+":
        if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
            cap = spent.limits.rendered_chars
            spent.fits(weight(left, cap) + weight(right, cap), what)
    elif operator == "%" and isinstance(left, str):
        spent.fits(len(left) + _printf_width(left), what)


def _digits(digits: float, what: str) -> None:
    if digits > MAX_INT_DIGITS:
        raise TemplateRuntimeError(
            f"{what} would make a number of about {int(digits):,} digits; templates compute "
            f"numbers of at most {MAX_INT_DIGITS:,} digits"
        )


def _finalize(value: Any) -> Any:
    # An optional variable left out renders as nothing; booleans as argv tools expect them.
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


ENV = Environment(keep_trailing_newline=True, finalize=_finalize)
