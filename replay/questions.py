"""Loading an ad-hoc question: a plain Python file, checked before a single event is read.

A question names the event types it reads (`READS`), so that the run can ask the store for
those rows only, and folds them with three small functions. Everything about the file that
can be wrong is found here and reported as a `QuestionError` naming the file and, where there
is one, the line: an auditor writing a question should never see a traceback of ours.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import traceback
import types
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHART_KINDS = ("bar", "barh", "line", "scatter")


class QuestionError(Exception):
    """Something is wrong with a question or its run; the message says what and where."""

    code = "question_error"
    exit_code = 2


class QuestionNotFound(QuestionError):
    code = "question_not_found"

    def __init__(self, path: Path) -> None:
        super().__init__(f"no question file at {path}")
        self.path = path


class QuestionSyntaxError(QuestionError):
    code = "question_syntax_error"

    def __init__(self, path: Path, line: int | None, message: str) -> None:
        super().__init__(f"{path}, line {line}: syntax error: {message}")
        self.path = path
        self.line = line


class QuestionLoadFailed(QuestionError):
    """The file's top level raised (a bad import, a typo in a constant)."""

    code = "question_load_failed"

    def __init__(self, path: Path, line: int | None, cause: BaseException) -> None:
        where = f", line {line}" if line else ""
        super().__init__(f"{path}{where}: {type(cause).__name__}: {cause}")
        self.path = path
        self.line = line
        self.cause = cause


class QuestionInvalid(QuestionError):
    """The file does not follow the protocol (a function or READS missing, a bad CHART)."""

    code = "question_invalid"

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class UnknownEventTypes(QuestionError):
    """READS names types the engine does not know; each comes with its closest known names."""

    code = "unknown_event_type"

    def __init__(self, path: Path, suggestions: dict[str, list[str]]) -> None:
        parts = []
        for name, close in suggestions.items():
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            parts.append(f"{name!r}{hint}")
        super().__init__(f"{path}: READS names unknown event types: {'; '.join(parts)}")
        self.path = path
        self.suggestions = suggestions


@dataclass(frozen=True)
class ChartSpec:
    """`CHART = ("bar", "x column", "y column")`: y may also be a list of columns."""

    kind: str
    x: str
    y: tuple[str, ...]


@dataclass(frozen=True)
class Question:
    """A loaded and checked question. `reads` are exact type tags (patterns expanded)."""

    path: Path
    title: str
    reads: tuple[str, ...]
    personal: bool
    start: Callable[..., Any]
    fold: Callable[[Any, Any], Any]
    answer: Callable[..., Any]
    chart: ChartSpec | None
    start_takes_context: bool
    answer_takes_context: bool


def question_line(path: Path, error: BaseException) -> int | None:
    """The line of the question file where `error` was raised (the innermost such frame)."""
    line = None
    target = str(path)
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename == target:
            line = frame.lineno
    return line


def load_question(path: Path, known_types: Collection[str]) -> Question:
    """Compile and run the file's top level, then check it against the protocol."""
    path = Path(path)
    if not path.is_file():
        raise QuestionNotFound(path)
    source = path.read_text(encoding="utf-8")
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as e:
        raise QuestionSyntaxError(path, e.lineno, e.msg) from None
    module = types.ModuleType(f"crm_question_{path.stem}")
    module.__file__ = str(path)
    try:
        exec(code, module.__dict__)
    except Exception as e:
        raise QuestionLoadFailed(path, question_line(path, e), e) from None
    return _check(path, module, known_types)


def _check(path: Path, module: types.ModuleType, known_types: Collection[str]) -> Question:
    ns = module.__dict__
    reads = resolve_reads(path, ns.get("READS"), known_types)
    personal = ns.get("PERSONAL", False)
    if not isinstance(personal, bool):
        raise QuestionInvalid(path, "PERSONAL must be True or False")
    fold = _function(path, ns, "fold", (2,))
    answer = _function(path, ns, "answer", (1, 2))
    start = _function(path, ns, "start", (0, 1)) if "start" in ns else dict
    doc = (module.__doc__ or "").strip()
    return Question(
        path=path,
        title=doc.splitlines()[0] if doc else path.stem.replace("_", " "),
        reads=reads,
        personal=personal,
        start=start,
        fold=fold,
        answer=answer,
        chart=_chart(path, ns.get("CHART")),
        start_takes_context=start is not dict and _arity(start) == 1,
        answer_takes_context=_arity(answer) == 2,
    )


def resolve_reads(path: Path, reads: object, known_types: Collection[str]) -> tuple[str, ...]:
    """READS as exact tags: each entry is a tag (`order.placed`) or a pattern (`order.*`)."""
    if reads is None:
        raise QuestionInvalid(
            path, 'READS is missing: list the event types it reads, e.g. READS = ["order.placed"]'
        )
    if isinstance(reads, str) or not isinstance(reads, Sequence | set | frozenset):
        raise QuestionInvalid(path, "READS must be a list of event type names")
    if not reads:
        raise QuestionInvalid(path, "READS is empty: a question reads at least one event type")
    known = sorted(known_types)
    found: dict[str, None] = {}
    unknown: dict[str, list[str]] = {}
    for entry in reads:
        if not isinstance(entry, str):
            raise QuestionInvalid(path, f"READS entry {entry!r} is not a string")
        matches = (
            fnmatch.filter(known, entry)
            if any(c in entry for c in "*?[")
            else [entry]
            if entry in known_types
            else []
        )
        if not matches:
            unknown[entry] = close_matches(entry, known)
        found.update(dict.fromkeys(matches))
    if unknown:
        raise UnknownEventTypes(path, unknown)
    return tuple(found)


def close_matches(name: str, known: Sequence[str]) -> list[str]:
    """Up to three known types spelled like `name`, or sharing its stream type."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if not close:
        prefix = name.split(".", 1)[0]
        close = [k for k in known if k.startswith(f"{prefix}.")][:3]
    return close


def _arity(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 0
    return sum(
        1
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    )


def _function(
    path: Path, ns: dict[str, Any], name: str, arities: tuple[int, ...]
) -> Callable[..., Any]:
    usage = {
        "fold": "def fold(state, event): ...  (returns the new state, or None to keep it)",
        "answer": "def answer(state): ...  (returns rows, a dict or a value)",
        "start": "def start(): ...  (returns the initial state)",
    }[name]
    fn = ns.get(name)
    if fn is None:
        raise QuestionInvalid(path, f"function {name}() is missing: {usage}")
    if not callable(fn):
        raise QuestionInvalid(path, f"{name} must be a function: {usage}")
    if _arity(fn) not in arities:
        takes = " or ".join(str(a) for a in arities)
        raise QuestionInvalid(
            path, f"{name}() must take {takes} argument(s), it takes {_arity(fn)}: {usage}"
        )
    return fn  # type: ignore[no-any-return]


def _chart(path: Path, chart: object) -> ChartSpec | None:
    if chart is None:
        return None
    usage = 'CHART = ("bar", "x column", "y column")'
    if not isinstance(chart, tuple | list) or len(chart) != 3:
        raise QuestionInvalid(path, f"CHART must be a triple: {usage}")
    kind, x, y = chart
    if kind not in CHART_KINDS:
        raise QuestionInvalid(path, f"CHART kind {kind!r} is not one of {', '.join(CHART_KINDS)}")
    ys = (y,) if isinstance(y, str) else tuple(y) if isinstance(y, tuple | list) else ()
    if not isinstance(x, str) or not ys or not all(isinstance(c, str) for c in ys):
        raise QuestionInvalid(path, f"CHART names its columns as strings: {usage}")
    return ChartSpec(kind, x, ys)
