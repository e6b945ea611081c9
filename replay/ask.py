"""Ad-hoc questions (`crm ask FILE.py`): fold only the event types a question reads.

A question is a plain Python file (see `replay.questions` for loading and checking it):

    \"\"\"Orders per payment method.\"\"\"            # the first docstring line is the title
    READS = ["order.placed"]                         # exact tags or patterns ("order.*")
    def start(): return {}                           # optional; the initial state ({})
    def fold(state, event):                          # each event in log order (an Envelope)
        m = event.payload.payment_method
        state[m] = state.get(m, 0) + 1               # return a new state, or None to keep it
    def answer(state): return state                  # rows (list of dicts), a dict, a value
    CHART = ("bar", "key", "value")                  # optional, for --chart

The run asks the store for the declared types only (the SQL filters by topic), so a question
about 10% of the log reads and decodes 10% of it. Business time (`as_of`: occurred_at <= T)
is filtered here, on the decoded envelope; record time (`recorded_as_of`: a position P, or a
time, since recorded_at runs in step with position) bounds the read itself. Personal fields
are opened only when the file sets `PERSONAL = True`; otherwise they carry the placeholders a
forgotten customer's events show.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import msgspec

from domain.envelope import Envelope
from replay.questions import Question, QuestionError, question_line

PAGE = 10_000


class AskRow(Protocol):
    """A stored row of the log, not yet decoded."""

    @property
    def position(self) -> int: ...

    @property
    def topic(self) -> str: ...

    @property
    def recorded_at(self) -> datetime | None: ...


class QuestionLog(Protocol):
    """What a question's run needs of the event store (infra's EventStore implements it)."""

    def read_rows(
        self, after: int = 0, limit: int = 1000, types: Sequence[str] = (), stop: int | None = None
    ) -> Sequence[AskRow]: ...

    def decode_rows(
        self, rows: Sequence[Any], unseal: Container[str] | None = None
    ) -> list[Envelope[Any]]: ...

    def head(self) -> int: ...


class FoldFailed(QuestionError):
    """fold() raised on an event: names the event so the auditor can look at it."""

    code = "fold_failed"
    exit_code = 1

    def __init__(self, question: Question, event: Envelope[Any], cause: BaseException) -> None:
        line = question_line(question.path, cause)
        where = f"{question.path}, line {line}" if line else str(question.path)
        super().__init__(
            f"{where}: fold() raised {type(cause).__name__}: {cause} on the event at position "
            f"{event.position} ({event.type}, stream {event.stream_id} v{event.version})"
        )
        self.position = event.position
        self.type = event.type
        self.line = line
        self.cause = cause


class AnswerFailed(QuestionError):
    """start() or answer() raised."""

    code = "answer_failed"
    exit_code = 1

    def __init__(self, question: Question, step: str, cause: BaseException) -> None:
        line = question_line(question.path, cause)
        where = f"{question.path}, line {line}" if line else str(question.path)
        super().__init__(f"{where}: {step}() raised {type(cause).__name__}: {cause}")
        self.line = line
        self.cause = cause


@dataclass(frozen=True)
class AskContext:
    """What `start(ctx)` and `answer(state, ctx)` may want: the moment the answer is about.

    `now` is `as_of` when given, else the engine's clock; `position` is the last log position
    the run covered (the head, or `recorded_as_of` when it bounds the read)."""

    now: datetime
    as_of: datetime | None = None
    recorded_as_of: int | datetime | None = None
    position: int = 0


@dataclass(frozen=True)
class Answer:
    """The answer as a table (`columns`, `rows`) and as the question returned it (`value`)."""

    title: str
    value: Any
    columns: list[str]
    rows: list[list[Any]]
    scalar: bool
    events: int  # folded
    read: int  # rows read (all of the declared types up to the recorded bound)
    position: int
    seconds: float


Progress = Callable[[int, int, int], None]
"""progress(position reached, last position to read, events folded so far)."""


def run_question(
    question: Question,
    log: QuestionLog,
    *,
    now: datetime,
    as_of: datetime | None = None,
    recorded_as_of: int | datetime | None = None,
    page: int = PAGE,
    progress: Progress | None = None,
) -> Answer:
    """Fold the question's event types in log order and return its answer."""
    started = time.perf_counter()
    head = log.head()
    stop = recorded_as_of if isinstance(recorded_as_of, int) else None
    last = head if stop is None else min(stop, head)
    ctx = AskContext(as_of or now, as_of, recorded_as_of, last)
    state = _call(question, "start", question.start, (ctx,) if question.start_takes_context else ())
    unseal: Container[str] = frozenset(question.reads) if question.personal else frozenset()
    fold = question.fold
    read = folded = 0
    after = 0
    while after < last:
        rows = log.read_rows(after, page, question.reads, last)
        if not rows:
            break
        after = rows[-1].position
        cut = False
        if isinstance(recorded_as_of, datetime):
            kept = _recorded_by(rows, recorded_as_of)
            cut, rows = len(kept) < len(rows), kept
        read += len(rows)
        for event in log.decode_rows(rows, unseal) if rows else ():
            if as_of is not None and event.occurred_at > as_of:
                continue
            try:
                new = fold(state, event)
            except Exception as e:
                raise FoldFailed(question, event, e) from None
            if new is not None:
                state = new
            folded += 1
        if progress is not None:
            progress(after, last, folded)
        if cut:  # recorded after the bound: so is everything further on
            break
    if progress is not None:
        progress(last, last, folded)
    args = (state, ctx) if question.answer_takes_context else (state,)
    value = _call(question, "answer", question.answer, args)
    columns, table, scalar = as_table(value)
    return Answer(
        title=question.title,
        value=value,
        columns=columns,
        rows=table,
        scalar=scalar,
        events=folded,
        read=read,
        position=last,
        seconds=time.perf_counter() - started,
    )


def _recorded_by(rows: Sequence[AskRow], at: datetime) -> Sequence[AskRow]:
    """The rows recorded by `at`; recorded_at grows with position, so they are a prefix."""
    for i, row in enumerate(rows):
        if row.recorded_at is not None and row.recorded_at > at:
            return rows[:i]
    return rows


def _call(question: Question, step: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    try:
        return fn(*args)
    except Exception as e:
        raise AnswerFailed(question, step, e) from None


def as_table(value: Any) -> tuple[list[str], list[list[Any]], bool]:
    """(columns, rows, scalar) of an answer.

    Rows (a list of dicts, Structs or dataclasses) give their keys as columns, in first-seen
    order; a dict gives `key`, `value` rows (a Counter charts as bars); anything else is one
    value in a column `answer`."""
    if isinstance(value, Mapping):
        return ["key", "value"], [[k, v] for k, v in value.items()], False
    if isinstance(value, list | tuple) and value and all(_is_row(r) for r in value):
        dicts = [_as_dict(r) for r in value]
        columns: dict[str, None] = {}
        for d in dicts:
            columns.update(dict.fromkeys(d))
        names = list(columns)
        return names, [[d.get(c) for c in names] for d in dicts], False
    if isinstance(value, list | tuple) and not value:
        return [], [], False
    return ["answer"], [[value]], True


def _is_row(r: object) -> bool:
    return isinstance(r, Mapping | msgspec.Struct) or (
        dataclasses.is_dataclass(r) and not isinstance(r, type)
    )


def _as_dict(r: Any) -> dict[str, Any]:
    if isinstance(r, Mapping):
        return {str(k): v for k, v in r.items()}
    if isinstance(r, msgspec.Struct):
        return msgspec.structs.asdict(r)
    return dataclasses.asdict(r)
