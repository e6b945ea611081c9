"""`crm ask FILE.py`: run an ad-hoc question over the log (see replay/ask.py for the protocol).

Errors in the question (no such file, a syntax error, an unknown event type, a fold that
raises) print one red line naming the file, line and, for a fold, the event's position and
type, and exit with 2 (the question cannot run) or 1 (it ran and failed); never a traceback.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from domain.catalogue import EVENTS
from infra.cli.output import Format, emit
from infra.cli.reports import parse_as_of
from infra.engine import open_engine
from infra.errors import InfraError
from replay.ask import Answer, run_question
from replay.questions import ChartSpec, QuestionError, load_question

console = Console()
err_console = Console(stderr=True)

FILE = typer.Argument(..., help="A question file: READS, fold(), answer() (examples/questions/).")
AS_OF = typer.Option(
    None,
    "--as-of",
    help="Business time: only events with occurred_at <= T, e.g. 2026-03-31 or 2026-03-31T18:00Z.",
)
RECORDED_AS_OF = typer.Option(
    None,
    "--recorded-as-of",
    help="What the system knew then: a log position P, or a record time T.",
)
FORMAT = typer.Option(Format.table, "--format")
CHART = typer.Option(None, "--chart", help="Write the question's CHART to this PNG file.")


def parse_recorded_as_of(raw: str | None) -> int | datetime | None:
    """A whole number is a log position; anything else a time (as --as-of reads it)."""
    if raw is None:
        return None
    if raw.strip().isdigit():
        return int(raw)
    return parse_as_of(raw, "--recorded-as-of")


def ask(
    file: Path = FILE,
    as_of: str | None = AS_OF,
    recorded_as_of: str | None = RECORDED_AS_OF,
    fmt: Format = FORMAT,
    chart: Path | None = CHART,
) -> None:
    """Answer an ad-hoc question: fold the event types the file reads, print its answer."""
    at = parse_as_of(as_of)
    recorded = parse_recorded_as_of(recorded_as_of)
    with _question_errors():
        question = load_question(file, EVENTS.tags())
        if chart is not None and question.chart is None:
            raise typer.BadParameter(f"{file} sets no CHART = (kind, x, y)", param_hint="--chart")
        with open_engine() as engine, _progress(question.title) as tick:
            answer = run_question(
                question,
                engine.store,
                now=engine.clock.now(),
                as_of=at,
                recorded_as_of=recorded,
                progress=tick,
            )
    bounds = [f"as of {at:%Y-%m-%d %H:%M}" if at else "", ""]
    if recorded_as_of is not None:
        bounds[1] = f"recorded as of {recorded_as_of}"
    err_console.print(
        f"{answer.events:,} events of {', '.join(question.reads)} folded up to position "
        f"{answer.position:,} in {answer.seconds:.2f} s"
        + "".join(f", {b}" for b in bounds if b)
        + (
            "" if question.personal else "; personal fields not opened (PERSONAL = True opens them)"
        ),
        soft_wrap=True,
        highlight=False,
    )
    if answer.scalar and fmt is Format.table:
        console.print(answer.rows[0][0])
    else:
        emit(console, answer.title, answer.columns, answer.rows, fmt)
    if chart is not None and question.chart is not None:
        with _question_errors():
            err_console.print(f"chart: {ask_chart(answer, question.chart, chart)}")


@contextmanager
def _question_errors() -> Iterator[None]:
    try:
        yield
    except QuestionError as e:
        err_console.print(
            f"[red]{type(e).__name__}[/red] ({e.code}): {e}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(e.exit_code) from None


@contextmanager
def _progress(title: str) -> Iterator[object]:
    """A bar over log positions with the rate of events folded and an ETA (on stderr)."""
    with Progress(
        TextColumn("ask"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("positions {task.fields[rate]}"),
        TimeRemainingColumn(),
        console=err_console,
    ) as progress:
        task = progress.add_task(title, total=None, rate="")
        t0 = time.perf_counter()

        def tick(position: int, last: int, folded: int) -> None:
            rate = folded / max(time.perf_counter() - t0, 1e-9)
            progress.update(
                task, completed=position, total=last, rate=f"{rate:,.0f} events folded/s"
            )

        yield tick


class ChartColumnMissing(QuestionError, InfraError):
    """CHART names a column the answer does not have."""

    code = "chart_column_missing"
    exit_code = 1


def ask_chart(answer: Answer, spec: ChartSpec, path: Path) -> Path:
    """The answer's rows drawn as the question's CHART asks (matplotlib, PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for name in (spec.x, *spec.y):
        if name not in answer.columns:
            raise ChartColumnMissing(
                f"CHART names column {name!r}, the answer has {', '.join(answer.columns) or 'none'}"
            )
    at = {c: i for i, c in enumerate(answer.columns)}
    xs = [r[at[spec.x]] for r in answer.rows]
    labels = [str(x) for x in xs]
    fig, ax = plt.subplots(figsize=(max(6.0, min(16.0, 0.5 * len(xs) + 3)), 4.5))
    width = 0.8 / len(spec.y)
    for k, y in enumerate(spec.y):
        ys = [_number(r[at[y]]) for r in answer.rows]
        if spec.kind == "bar":
            ax.bar(
                [i + (k - (len(spec.y) - 1) / 2) * width for i in range(len(xs))],
                ys,
                width,
                label=y,
            )
            ax.set_xticks(range(len(xs)), labels, rotation=30 if len(xs) > 6 else 0, ha="right")
        elif spec.kind == "barh":
            ax.barh(
                [i + (k - (len(spec.y) - 1) / 2) * width for i in range(len(xs))],
                ys,
                width,
                label=y,
            )
            ax.set_yticks(range(len(xs)), labels)
        elif spec.kind == "line":
            ax.plot(xs, ys, marker="o", label=y)
        else:
            ax.scatter(xs, ys, label=y)
    if spec.kind in ("bar", "barh"):
        (ax.axhline if spec.kind == "bar" else ax.axvline)(0, color="grey", linewidth=0.8)
    ax.set_title("\n".join(textwrap.wrap(answer.title, 70)))
    ax.set_xlabel(spec.x if spec.kind != "barh" else ", ".join(spec.y))
    ax.set_ylabel(", ".join(spec.y) if spec.kind != "barh" else spec.x)
    if len(spec.y) > 1:
        ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _number(v: object) -> float:
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")
