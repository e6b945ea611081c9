"""Loading a question file: the protocol, and every way a file can be wrong, as typed errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

from domain.catalogue import EVENTS
from replay.ask import as_table
from replay.questions import (
    ChartSpec,
    QuestionError,
    QuestionInvalid,
    QuestionLoadFailed,
    QuestionNotFound,
    QuestionSyntaxError,
    UnknownEventTypes,
    load_question,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "questions"
TYPES = EVENTS.tags()
GOOD = """\
\"\"\"Orders per payment method.\"\"\"
READS = ["order.placed"]
CHART = ("bar", "key", "value")
def start(): return {}
def fold(state, event):
    state[event.payload.payment_method] = state.get(event.payload.payment_method, 0) + 1
def answer(state): return state
"""


def write(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "question.py"
    path.write_text(source)
    return path


class TestTheProtocol:
    def test_a_good_question_loads_with_its_title_reads_and_chart(self, tmp_path: Path) -> None:
        q = load_question(write(tmp_path, GOOD), TYPES)
        assert q.title == "Orders per payment method."
        assert q.reads == ("order.placed",)
        assert q.personal is False
        assert q.chart == ChartSpec("bar", "key", ("value",))
        assert q.start() == {} and not q.answer_takes_context

    def test_start_is_optional_and_answer_may_take_the_context(self, tmp_path: Path) -> None:
        source = 'READS = ["order.placed"]\ndef fold(s, e): pass\ndef answer(s, ctx): return ctx\n'
        q = load_question(write(tmp_path, source), TYPES)
        assert q.start() == {} and q.answer_takes_context
        assert q.title == "question"

    def test_patterns_expand_to_every_matching_type(self, tmp_path: Path) -> None:
        source = 'READS = ["ticket.*", "order.placed", "order.placed"]\n'
        source += "def fold(s, e): pass\ndef answer(s): return s\n"
        q = load_question(write(tmp_path, source), TYPES)
        tickets = [t for t in TYPES if t.startswith("ticket.")]
        assert len(tickets) > 3 and list(q.reads) == [*tickets, "order.placed"]

    def test_personal_is_read_from_the_file(self, tmp_path: Path) -> None:
        q = load_question(write(tmp_path, "PERSONAL = True\n" + GOOD), TYPES)
        assert q.personal is True

    @pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.stem)
    def test_every_example_loads(self, path: Path) -> None:
        q = load_question(path, TYPES)
        assert q.reads and q.title.endswith(".")


class TestErrors:
    def test_a_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(QuestionNotFound, match="no question file"):
            load_question(tmp_path / "nope.py", TYPES)

    def test_a_syntax_error_names_its_line(self, tmp_path: Path) -> None:
        path = write(tmp_path, 'READS = ["order.placed"]\n\ndef fold(s, e):\n    return (s\n')
        with pytest.raises(QuestionSyntaxError) as caught:
            load_question(path, TYPES)
        assert caught.value.line == 4 and "line 4" in str(caught.value)

    def test_a_top_level_that_raises_names_its_line(self, tmp_path: Path) -> None:
        path = write(tmp_path, 'READS = ["order.placed"]\nLIMIT = int("ten")\n')
        with pytest.raises(QuestionLoadFailed) as caught:
            load_question(path, TYPES)
        assert caught.value.line == 2 and "ValueError" in str(caught.value)

    def test_unknown_types_come_with_close_matches(self, tmp_path: Path) -> None:
        source = 'READS = ["order.placd", "tickets.opened", "zzz.*"]\n'
        path = write(tmp_path, source + "def fold(s, e): pass\ndef answer(s): return s\n")
        with pytest.raises(UnknownEventTypes) as caught:
            load_question(path, TYPES)
        found = caught.value.suggestions
        assert set(found) == {"order.placd", "tickets.opened", "zzz.*"}
        assert found["order.placd"][0] == "order.placed"
        assert "ticket.opened" in found["tickets.opened"]
        assert "did you mean order.placed" in str(caught.value)

    @pytest.mark.parametrize(
        ("source", "says"),
        [
            ("def fold(s, e): pass\ndef answer(s): return s\n", "READS is missing"),
            ('READS = "order.placed"\ndef fold(s, e): pass\ndef answer(s): return s\n', "list"),
            ("READS = []\ndef fold(s, e): pass\ndef answer(s): return s\n", "empty"),
            ("READS = [3]\ndef fold(s, e): pass\ndef answer(s): return s\n", "not a string"),
            ('READS = ["order.placed"]\ndef answer(s): return s\n', "fold() is missing"),
            ('READS = ["order.placed"]\ndef fold(s, e): pass\n', "answer() is missing"),
            ('READS = ["order.placed"]\nfold = 3\ndef answer(s): return s\n', "must be a function"),
            ('READS = ["order.placed"]\ndef fold(e): pass\ndef answer(s): return s\n', "2"),
            (
                'READS = ["order.placed"]\ndef start(a, b): pass\n'
                "def fold(s, e): pass\ndef answer(s): return s\n",
                "start() must take 0 or 1",
            ),
            ('PERSONAL = "yes"\n' + GOOD, "PERSONAL"),
            (GOOD + 'CHART = ("pie", "key", "value")\n', "pie"),
            (GOOD + 'CHART = ("bar", "key")\n', "triple"),
            (GOOD + 'CHART = ("bar", "key", 3)\n', "strings"),
        ],
    )
    def test_a_file_off_the_protocol_is_invalid(
        self, tmp_path: Path, source: str, says: str
    ) -> None:
        with pytest.raises(QuestionInvalid) as caught:
            load_question(write(tmp_path, source), TYPES)
        assert says in str(caught.value)

    def test_every_error_is_a_question_error_with_a_code(self) -> None:
        for cls in (QuestionNotFound, QuestionSyntaxError, QuestionInvalid, UnknownEventTypes):
            assert issubclass(cls, QuestionError) and cls.code != QuestionError.code


class Row(msgspec.Struct):
    a: int
    b: str


@dataclass
class DataRow:
    a: int


class TestAnswersAsTables:
    def test_rows_of_dicts_union_their_keys_in_order(self) -> None:
        assert as_table([{"a": 1}, {"b": 2, "a": 3}]) == (["a", "b"], [[1, None], [3, 2]], False)

    def test_structs_and_dataclasses_are_rows(self) -> None:
        assert as_table([Row(1, "x")]) == (["a", "b"], [[1, "x"]], False)
        assert as_table([DataRow(1)]) == (["a"], [[1]], False)

    def test_a_dict_is_key_value_rows(self) -> None:
        assert as_table({"card": 3, "cash": 1}) == (
            ["key", "value"],
            [["card", 3], ["cash", 1]],
            False,
        )

    def test_a_value_is_one_cell(self) -> None:
        assert as_table(42) == (["answer"], [[42]], True)
        assert as_table([1, 2]) == (["answer"], [[[1, 2]]], True)

    def test_no_rows(self) -> None:
        assert as_table([]) == ([], [], False)
