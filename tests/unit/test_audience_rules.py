"""The audience rule language: parsing, errors, round trip, validation, cycles, and the pure
evaluator against a brute-force oracle written here (including next_change)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from domain.audiences import ast
from domain.audiences.errors import (
    AudienceCycle,
    RuleError,
    RuleSyntaxError,
    RuleTypeError,
    UnknownEventType,
    UnknownField,
    UnknownName,
)
from domain.audiences.evaluate import (
    ConsentFact,
    CustomerHistory,
    Evaluation,
    Evaluator,
    EventFact,
    NpsFact,
    OrderFact,
    PlanFact,
    evaluate,
    leaves_at,
)
from domain.audiences.parse import format_expr, format_rule, parse_rule
from domain.audiences.vocabulary import ALIASES, check_rule, fields_of
from domain.catalogue import EVENTS
from domain.interactions.events import CallLogged, EmailLogged
from domain.surveys.events import SurveyAnswered

CALL = "interaction.call_logged"
EXAMPLE = "sum(call.duration_min, last 4 months) > 300 and age between 25 and 40 and consent(phone)"


def num(v: int | str) -> ast.Num:
    return ast.Num(value=Decimal(v))


def at(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=UTC)


class TestParse:
    def test_the_issue_example(self) -> None:
        assert parse_rule(EXAMPLE) == ast.And(
            items=(
                ast.Compare(
                    expr=ast.Agg(
                        fn="sum",
                        event=CALL,
                        field="duration_min",
                        window=ast.Last(n=4, unit="months"),
                    ),
                    test=ast.Cmp(op=">", value=num(300)),
                ),
                ast.Compare(expr=ast.Age(), test=ast.Between(low=num(25), high=num(40))),
                ast.Consent(channel="phone"),
            )
        )

    def test_where_filters_and_an_absolute_range(self) -> None:
        rule = parse_rule(
            'count(call where direction = "in" and duration_min >= 5, '
            "from 2026-01-01 to 2026-03-31) >= 3"
        )
        assert rule == ast.Compare(
            expr=ast.Agg(
                fn="count",
                event=CALL,
                where=(
                    ast.Where(field="direction", test=ast.Cmp(op="=", value=ast.Text(value="in"))),
                    ast.Where(field="duration_min", test=ast.Cmp(op=">=", value=num(5))),
                ),
                window=ast.Range(start=date(2026, 1, 1), end=date(2026, 3, 31)),
            ),
            test=ast.Cmp(op=">=", value=num(3)),
        )

    def test_precedence_nesting_and_not(self) -> None:
        a = ast.Compare(expr=ast.Age(), test=ast.Cmp(op=">", value=num(30)))
        b = ast.Consent(channel="email", purpose="marketing")
        c = ast.Member(audience="big callers")
        assert parse_rule('age > 30 or consent(email, marketing) and member("big callers")') == (
            ast.Or(items=(a, ast.And(items=(b, c))))
        )
        assert parse_rule('(age > 30 or consent(email, marketing)) and member("big callers")') == (
            ast.And(items=(ast.Or(items=(a, b)), c))
        )
        assert parse_rule("not not age > 30") == ast.Not(item=ast.Not(item=a))
        assert parse_rule("not (age > 30 and consent(email, marketing))") == ast.Not(
            item=ast.And(items=(a, b))
        )

    @pytest.mark.parametrize(
        ("text", "expr"),
        [
            ('stage in ["customer", "prospect"]', ast.Attr(name="stage")),
            ('gender != "male"', ast.Attr(name="gender")),
            ('income_band = "B"', ast.Attr(name="income_band")),
            ('kind = "person"', ast.Attr(name="kind")),
            ('source = "fair"', ast.Attr(name="source")),
            ("spend > 100.10", ast.Spend()),
            ("spend(last 12 months) > 100.10", ast.Spend(window=ast.Last(n=12, unit="months"))),
            ("orders >= 2", ast.Orders()),
            ("orders(last 1 week) >= 2", ast.Orders(window=ast.Last(n=1, unit="weeks"))),
            ('plan = "fiber-100"', ast.Plan()),
            ("nps <= 6", ast.Nps()),
            (
                "max(survey.score, last 30 days) <= 6",
                ast.Agg(
                    fn="max",
                    event="survey.answered",
                    field="score",
                    window=ast.Last(n=30, unit="days"),
                ),
            ),
            (
                "sum(order.total, last 3 months) > 50",
                ast.Agg(
                    fn="sum",
                    event="order.placed",
                    field="total",
                    window=ast.Last(n=3, unit="months"),
                ),
            ),
            (
                "count(order.paid, last 3 days) > 0",
                ast.Agg(fn="count", event="order.paid", window=ast.Last(n=3, unit="days")),
            ),
            (
                "count(interaction.call_logged.outcome, last 1 day) > 0",
                ast.Agg(fn="count", event=CALL, field="outcome", window=ast.Last(n=1, unit="days")),
            ),
        ],
    )
    def test_expressions(self, text: str, expr: ast.Expr) -> None:
        rule = parse_rule(text)
        assert isinstance(rule, ast.Compare)
        assert rule.expr == expr
        assert parse_rule(format_rule(rule)) == rule

    def test_text_is_read_whitespace_and_newlines_apart(self) -> None:
        assert parse_rule(EXAMPLE.replace(" and ", "\n  and ")) == parse_rule(EXAMPLE)

    def test_every_registered_event_type_is_addressable_by_its_tag(self) -> None:
        for tag in EVENTS.tags():
            rule = parse_rule(f"count({tag}, last 1 day) > 0")
            assert isinstance(rule, ast.Compare) and isinstance(rule.expr, ast.Agg)
            assert rule.expr.event == tag

    def test_every_alias_names_a_registered_type_and_reads_unambiguously(self) -> None:
        for short, tag in ALIASES.items():
            assert tag in EVENTS, short
            assert short not in {t.split(".")[0] for t in EVENTS.tags()} or all(
                f"{short}.{f}" not in EVENTS for f in fields_of(tag)
            )
            rule = parse_rule(f"count({short}, last 1 day) > 0")
            assert rule.expr.event == tag  # type: ignore[union-attr]

    def test_the_wire_form_is_json_and_back(self) -> None:
        rule = parse_rule(EXAMPLE + ' and count(call where direction = "in", last 2 weeks) > 1')
        data = ast.RULE_ENCODER.encode(rule)
        assert b'"node":"and"' in data
        assert ast.RULE_DECODER.decode(data) == rule


class TestSyntaxErrors:
    @pytest.mark.parametrize(
        ("text", "line", "column", "found", "expected"),
        [
            (
                "sum(call.duration_min, 4 months) > 300",
                1,
                24,
                '"4"',
                'a window like "last 4 months" or "from 2026-01-01 to 2026-03-31"',
            ),
            (
                "sum(call.duration_min, last 4 years) > 300",
                1,
                31,
                '"years"',
                '"days", "weeks" or "months"',
            ),
            (
                "sum(call.duration_min, last 4 months) >",
                1,
                40,
                "the end of the rule",
                "a value (a number, a quoted text, true, false or a date like 2026-01-01)",
            ),
            (
                "age > 30 and",
                1,
                13,
                "the end of the rule",
                "a condition like sum(call.duration_min, last 4 months) > 300, age > 30 "
                "or consent(phone)",
            ),
            ("age > 30 an age < 40", 1, 10, '"an"', '"and" or "or" or the end of the rule'),
            ("(age > 30", 1, 10, "the end of the rule", '")"'),
            ("age > 30 $", 1, 10, '"$"', '"and" or "or" or the end of the rule'),
            (
                "age > 30\nand age == 4",
                2,
                10,
                '"="',
                "a value (a number, a quoted text, true, false or a date like 2026-01-01)",
            ),
            ("count(call, from 2026-01-01 2026-02-01) > 1", 1, 29, '"2026-02-01"', '"to"'),
        ],
    )
    def test_points_at_the_position_and_says_what_was_expected(
        self, text: str, line: int, column: int, found: str, expected: str
    ) -> None:
        with pytest.raises(RuleSyntaxError) as info:
            parse_rule(text)
        e = info.value
        assert (e.line, e.column, e.found, e.expected) == (line, column, found, expected)
        assert str(e) == f"at {line}:{column}: expected {expected}, found {found}"
        assert e.code == "rule_syntax_error"
        lines = text.split("\n")
        assert e.position == sum(len(x) + 1 for x in lines[: line - 1]) + column - 1


class TestValidation:
    def test_an_unknown_field_names_the_field_and_the_type_fields(self) -> None:
        with pytest.raises(UnknownField) as info:
            parse_rule("sum(call.duraton, last 4 months) > 300")
        e = info.value
        assert (e.event, e.field) == (CALL, "duraton")
        assert e.fields == ["direction", "duration_min", "notes", "outcome"]
        assert (e.line, e.column, e.found) == (1, 10, "duraton")
        assert "duration_min" in str(e)

    def test_an_unknown_field_in_a_where(self) -> None:
        with pytest.raises(UnknownField) as info:
            parse_rule('count(call where way = "in", last 4 months) > 3')
        assert info.value.field == "way"
        assert (info.value.column, info.value.found) == (18, 'way = "in"')

    def test_an_unknown_event(self) -> None:
        with pytest.raises(UnknownEventType) as info:
            parse_rule("count(calls, last 4 months) > 3")
        assert (info.value.column, info.value.found) == (7, "calls")
        assert "call" in str(info.value)

    @pytest.mark.parametrize(
        ("text", "found", "words"),
        [
            ('age > "x"', '> "x"', 'age is a number; "x" is a text'),
            ('stage = "vip"', '= "vip"', 'stage is one of "lead"'),
            (
                'count(call where direction = "up", last 1 day) > 1',
                'direction = "up"',
                "call.direction is one of",
            ),
            (
                "sum(call.direction, last 1 day) > 1",
                "sum(call.direction, last 1 day)",
                "adds numbers",
            ),
            ("sum(call, last 1 day) > 1", "sum(call, last 1 day)", "needs a field"),
            ('gender > "female"', '> "female"', "> orders numbers or dates"),
            ("count(call, last 0 days) > 1", "last 0 days", "at least 1"),
            (
                "count(call, from 2026-02-01 to 2026-01-01) > 1",
                "from 2026-02-01 to 2026-01-01",
                "ends (2026-01-01) before it starts",
            ),
            ("count(call, from 2026-02-30 to 2026-03-01) > 1", "2026-02-30", "is not a date"),
            ("count(call, last 1 day) > 2026-01-01", "> 2026-01-01", "is a date"),
        ],
    )
    def test_literal_and_aggregate_types(self, text: str, found: str, words: str) -> None:
        with pytest.raises(RuleTypeError) as info:
            parse_rule(text)
        assert info.value.found == found
        assert words in str(info.value)
        assert text[info.value.position or 0 :].startswith(found)

    def test_unknown_names(self) -> None:
        with pytest.raises(UnknownName) as info:
            parse_rule("height > 180")
        assert info.value.found == "height" and "age" in str(info.value)
        with pytest.raises(UnknownName):
            parse_rule("age(last 1 day) > 3")

    def test_a_decoded_ast_is_checked_too(self) -> None:
        bad = ast.Compare(
            expr=ast.Agg(fn="sum", event=CALL, field="nope", window=ast.Last(n=1, unit="days")),
            test=ast.Cmp(op=">", value=num(1)),
        )
        with pytest.raises(UnknownField) as info:
            check_rule(bad)
        assert info.value.line is None
        with pytest.raises(UnknownField):
            Evaluator(bad)
        with pytest.raises(RuleTypeError):
            check_rule(ast.And(items=(ast.Consent(channel="phone"),)))
        with pytest.raises(UnknownEventType):
            check_rule(
                ast.Compare(
                    expr=ast.Agg(fn="count", event="x.y", window=ast.Last(n=1, unit="days")),
                    test=ast.Cmp(op=">", value=num(1)),
                )
            )

    def test_errors_are_domain_errors_with_codes(self) -> None:
        from domain.errors import DomainError

        for cls in (RuleSyntaxError, UnknownField, RuleTypeError, AudienceCycle):
            assert issubclass(cls, RuleError) and issubclass(cls, DomainError)
        assert UnknownField.code == "unknown_field"


class TestCycles:
    def test_a_cycle_is_named(self) -> None:
        rules = {
            "a": parse_rule("member(b) and age > 3"),
            "b": parse_rule("member(c) or member(d)"),
            "c": parse_rule("not member(a)"),
            "d": parse_rule("age > 1"),
        }
        with pytest.raises(AudienceCycle) as info:
            ast.check_no_cycles(rules)
        assert info.value.cycle == ["a", "b", "c", "a"]

    def test_self_reference(self) -> None:
        with pytest.raises(AudienceCycle) as info:
            ast.check_no_cycles({"x": parse_rule("member(x)")})
        assert info.value.cycle == ["x", "x"]

    def test_a_diamond_and_undefined_names_are_no_cycle(self) -> None:
        ast.check_no_cycles(
            {
                "a": parse_rule("member(b) and member(c)"),
                "b": parse_rule("member(d)"),
                "c": parse_rule("member(d) and member(elsewhere)"),
                "d": parse_rule("age > 1"),
            }
        )


# round trip


def _lits(kind: str, choices: tuple[str, ...]) -> st.SearchStrategy[ast.Lit]:
    if choices:
        return st.sampled_from(choices).map(lambda v: ast.Text(value=v))
    match kind:
        case "number":
            return st.decimals(allow_nan=False, allow_infinity=False).map(
                lambda d: ast.Num(value=d)
            )
        case "text":
            return st.text(max_size=8).map(lambda v: ast.Text(value=v))
        case "bool":
            return st.booleans().map(lambda v: ast.Bool(value=v))
    return st.dates().map(lambda v: ast.Day(value=v))


def _tests(kind: str, choices: tuple[str, ...] = ()) -> st.SearchStrategy[ast.Test]:
    lit = _lits(kind, choices)
    ops = [">", ">=", "<", "<=", "=", "!="] if kind in ("number", "date") else ["=", "!="]
    options = [
        st.builds(ast.Cmp, op=st.sampled_from(ops), value=lit),
        st.lists(lit, min_size=1, max_size=3).map(lambda v: ast.In(values=tuple(v))),
    ]
    if kind in ("number", "date"):
        options.append(st.builds(ast.Between, low=lit, high=lit))
    return st.one_of(options)


_windows = st.one_of(
    st.builds(ast.Last, n=st.integers(1, 400), unit=st.sampled_from(["days", "weeks", "months"])),
    # starts that leave room for the longest range (a start in 9999 overflowed the date)
    st.tuples(st.dates(max_value=date(9997, 1, 1)), st.integers(0, 900)).map(
        lambda p: ast.Range(start=p[0], end=p[0] + timedelta(days=p[1]))
    ),
)


@st.composite
def _aggs(draw: st.DrawFn) -> ast.Agg:
    tag = draw(st.sampled_from(EVENTS.tags()))
    fields = {n: i for n, i in fields_of(tag).items() if i.kind != "other"}
    fn = draw(st.sampled_from(["count", "sum", "avg", "min", "max", "last"]))
    usable = {
        "count": list(fields_of(tag)),
        "sum": [n for n, i in fields.items() if i.kind == "number"],
        "avg": [n for n, i in fields.items() if i.kind == "number"],
        "min": [n for n, i in fields.items() if i.kind in ("number", "date")],
        "max": [n for n, i in fields.items() if i.kind in ("number", "date")],
        "last": list(fields),
    }[fn]
    if fn != "count":
        assume(usable)
    field = (
        draw(st.sampled_from([None, *usable])) if fn == "count" else draw(st.sampled_from(usable))
    )
    where: list[ast.Where] = []
    if fields:
        for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=2)):
            info = fields[name]
            where.append(ast.Where(field=name, test=draw(_tests(info.kind, info.choices))))
    return ast.Agg(fn=fn, event=tag, field=field, where=tuple(where), window=draw(_windows))  # type: ignore[arg-type]


@st.composite
def _compares(draw: st.DrawFn) -> ast.Compare:
    from domain.audiences.vocabulary import expr_info

    expr = draw(
        st.one_of(
            _aggs(),
            st.sampled_from(["gender", "income_band", "kind", "stage", "source"]).map(
                lambda n: ast.Attr(name=n)
            ),
            st.sampled_from([ast.Age(), ast.Plan(), ast.Nps()]),
            st.builds(ast.Spend, window=st.none() | _windows),
            st.builds(ast.Orders, window=st.none() | _windows),
        )
    )
    info = expr_info(expr)
    return ast.Compare(expr=expr, test=draw(_tests(info.kind, info.choices)))


_leaves = st.one_of(
    _compares(),
    st.builds(ast.Consent, channel=st.text(min_size=1, max_size=8), purpose=st.none() | st.text()),
    st.builds(ast.Member, audience=st.text(max_size=10)),
)
rules = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: ast.And(items=tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: ast.Or(items=tuple(xs))),
        inner.map(lambda x: ast.Not(item=x)),
    ),
    max_leaves=6,
)


class TestRoundTrip:
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(rules)
    def test_parse_of_format_is_the_rule(self, rule: ast.Rule) -> None:
        text = format_rule(rule)
        assert parse_rule(text) == rule, text
        assert ast.RULE_DECODER.decode(ast.RULE_ENCODER.encode(rule)) == rule


# the evaluator


def call(
    t: datetime, pos: int, minutes: float, direction: str = "in", as_dict: bool = True
) -> EventFact:
    if as_dict:
        payload: Any = {"direction": direction, "duration_min": minutes}
    else:
        payload = CallLogged(direction=direction, duration_min=minutes)  # type: ignore[arg-type]
    return EventFact(t, pos, CALL, payload)


class TestEvaluate:
    def test_the_seeds_example(self) -> None:
        rule = parse_rule(EXAMPLE)
        h = CustomerHistory(
            birth_date=date(1990, 6, 15),
            consents=[ConsentFact(at(2025, 1, 1), 1, "phone", "marketing", True)],
            events=[
                call(at(2025, 12, 1), 10, 200.0),  # outside (T - 4 months, T]
                call(at(2026, 2, 1), 11, 200.0),
                call(at(2026, 4, 20), 12, 120.0, as_dict=False),
            ],
        )
        e = evaluate(rule, h, at(2026, 5, 1))
        assert e == Evaluation(
            member=True,
            values={
                "sum(call.duration_min, last 4 months)": 320.0,
                "age": 35,
                "consent(phone)": True,
            },
            positions=[1, 11, 12],
            # the call of 1 Feb leaves the window on 1 Jun, before the birthday on 15 Jun
            next_change=at(2026, 6, 1),
        )
        assert evaluate(rule, h, at(2026, 6, 1)).member is False
        assert evaluate(rule, h, at(2026, 6, 1) - timedelta(microseconds=1)).member is True

    def test_a_withdrawn_consent_and_a_later_one(self) -> None:
        h = CustomerHistory(
            consents=[
                ConsentFact(at(2026, 1, 1), 1, "email", "marketing", True),
                ConsentFact(at(2026, 2, 1), 2, "email", "marketing", False),
                ConsentFact(at(2026, 3, 1), 3, "email", "service", True),
            ]
        )
        rule = parse_rule("consent(email, marketing)")
        assert evaluate(rule, h, at(2026, 1, 15)).member is True
        later = evaluate(rule, h, at(2026, 2, 15))
        assert (later.member, later.positions, later.next_change) == (False, [2], None)
        anyp = evaluate(parse_rule("consent(email)"), h, at(2026, 2, 15))
        assert (anyp.member, anyp.next_change) == (False, at(2026, 3, 1))
        assert evaluate(parse_rule("consent(email)"), h, at(2026, 3, 1)).member is True

    def test_a_month_window_past_a_short_month(self) -> None:
        window = ast.Last(n=1, unit="months")
        assert leaves_at(at(2026, 1, 31, 10), window) == at(2026, 3, 1)
        assert leaves_at(at(2026, 1, 15, 10), window) == at(2026, 2, 15, 10)
        rule = parse_rule("count(call, last 1 month) > 0")
        h = CustomerHistory(events=[call(at(2026, 1, 31, 10), 7, 3.0)])
        e = evaluate(rule, h, at(2026, 2, 27))
        assert (e.member, e.next_change) == (True, at(2026, 3, 1))
        assert evaluate(rule, h, at(2026, 2, 28, 23, 59)).member is True
        assert evaluate(rule, h, at(2026, 3, 1)).member is False

    def test_a_month_window_never_moves_back(self) -> None:
        # 29 May - 3 months has no day (2025 has no 29 Feb): the window starts on 1 Mar 00:00,
        # so an event of 28 Feb 01:00 that left on 28 May 01:00 does not come back on 29 May
        window = ast.Last(n=3, unit="months")
        assert leaves_at(at(2025, 2, 28, 1), window) == at(2025, 5, 28, 1)
        rule = parse_rule("count(call, last 3 months) > 0")
        h = CustomerHistory(events=[call(at(2025, 2, 28, 1), 1, 1.0)])
        for day in (29, 30, 31):
            assert evaluate(rule, h, at(2025, 5, day)).member is False
        # an event at 1 Mar 00:00 leaves when the window starts there: on 29 May already
        assert leaves_at(at(2025, 3, 1), window) == at(2025, 5, 29)
        h = CustomerHistory(events=[call(at(2025, 3, 1), 1, 1.0)])
        e = evaluate(rule, h, at(2025, 5, 28, 12))
        assert (e.member, e.next_change) == (True, at(2025, 5, 29))
        assert evaluate(rule, h, at(2025, 5, 29)).member is False

    def test_an_absolute_range_and_a_late_event_inside_it(self) -> None:
        rule = parse_rule("count(call, from 2026-01-01 to 2026-01-31) >= 2")
        h = CustomerHistory(
            events=[
                call(at(2025, 12, 31, 23, 59), 1, 1.0),
                call(at(2026, 1, 1), 2, 1.0),
                call(at(2026, 1, 31, 23, 59), 3, 1.0),
                call(at(2026, 2, 1), 4, 1.0),
            ]
        )
        early = evaluate(rule, h, at(2026, 1, 10))
        assert (early.member, early.positions, early.next_change) == (
            False,
            [2],
            at(2026, 1, 31, 23, 59),
        )
        late = evaluate(rule, h, at(2026, 6, 1))
        assert (late.member, late.positions, late.next_change) == (True, [2, 3], None)

    def test_a_birthday_on_29_february(self) -> None:
        rule = parse_rule("age >= 18")
        h = CustomerHistory(birth_date=date(2008, 2, 29))
        e = evaluate(rule, h, at(2026, 2, 28, 12))
        assert (e.member, e.values, e.next_change) == (False, {"age": 17}, at(2026, 3, 1))
        assert evaluate(rule, h, at(2026, 3, 1)).member is True

    def test_where_filters_last_min_max_and_money(self) -> None:
        from domain.money import Money
        from domain.orders.events import OrderLine, OrderPlaced

        def order(t: datetime, pos: int, amount: str) -> EventFact:
            m = Money(amount=Decimal(amount), currency="EUR")
            line = OrderLine(sku="tea", quantity=1, unit_price=m)
            payload = OrderPlaced(customer_id=uuid4(), items=[line], total=m, payment_method="card")
            return EventFact(t, pos, "order.placed", payload)

        h = CustomerHistory(
            events=[
                call(at(2026, 4, 1), 1, 10.0, "in"),
                call(at(2026, 4, 2), 2, 30.0, "out"),
                call(at(2026, 4, 3), 3, 20.0, "in", as_dict=False),
                order(at(2026, 4, 4), 4, "100.10"),
                order(at(2026, 4, 5), 5, "0.05"),
            ]
        )
        t = at(2026, 5, 1)
        cases = {
            'sum(call.duration_min where direction = "in", last 6 weeks) = 30': True,
            "max(call.duration_min, last 6 weeks) = 30": True,
            "min(call.duration_min, last 6 weeks) = 10": True,
            'last(call.direction, last 6 weeks) = "in"': True,
            "avg(call.duration_min, last 6 weeks) = 20": True,
            "sum(order.total, last 6 weeks) = 100.15": True,
            "sum(order.total, last 6 weeks) > 100.15": False,
            "count(order where total > 100, last 6 weeks) = 1": True,
            "count(email, last 6 weeks) = 0": True,
            "avg(email.direction, last 6 weeks) = 0": None,
        }
        for text, expected in cases.items():
            if expected is None:
                with pytest.raises(RuleTypeError):
                    parse_rule(text)
                continue
            assert evaluate(parse_rule(text), h, t).member is expected, text

    def test_spend_orders_plan_nps_and_membership(self) -> None:
        h = CustomerHistory(
            gender="female",
            orders=[
                OrderFact(at(2026, 1, 5), 1, Decimal("80.00")),
                OrderFact(at(2026, 4, 5), 2, Decimal("30.50")),
            ],
            plans=[
                PlanFact(at(2025, 1, 1), 3, "s1", "basic"),
                PlanFact(at(2026, 2, 1), 4, "s1", "pro"),
                PlanFact(at(2026, 6, 1), 5, "s1", None),
            ],
            nps=[NpsFact(at(2026, 1, 1), 6, 9), NpsFact(at(2026, 3, 1), 7, 4)],
        )
        rule = parse_rule(
            'spend > 110.49 and spend(last 2 months) = 30.50 and orders = 2 and plan = "pro" '
            'and nps <= 6 and gender = "female" and member(vip) and not member(churned)'
        )
        e = evaluate(rule, h, at(2026, 5, 1), {"vip": True, "churned": False})
        assert e.member is True
        assert e.values["spend"] == Decimal("110.50")
        assert e.positions == [1, 2, 4, 7]
        # the order of 5 Apr leaves the 2-month window on 5 Jun; the plan ends on 1 Jun
        assert e.next_change == at(2026, 6, 1)
        assert evaluate(rule, h, at(2026, 6, 1), lambda name: name == "vip").member is False

    def test_a_time_without_zone_is_refused(self) -> None:
        with pytest.raises(RuleError):
            evaluate(parse_rule("age > 1"), CustomerHistory(), datetime(2026, 1, 1))


# the oracle: brute force over the facts with time <= T, written from the definitions


def in_window(t: datetime, window: ast.Window | None, T: datetime) -> bool:
    if t > T:
        return False
    if window is None:
        return True
    if isinstance(window, ast.Last):
        delta: Any = {
            "days": timedelta(days=window.n),
            "weeks": timedelta(days=7 * window.n),
        }.get(window.unit)
        if delta is None:  # calendar months back; a missing day starts the month after it
            y, m = divmod(T.month - 1 - window.n, 12)
            try:
                start = T.replace(year=T.year + y, month=m + 1)
            except ValueError:
                start = datetime(T.year + y + (m + 1) // 12, (m + 1) % 12 + 1, 1, tzinfo=UTC)
            return start < t
        return T - delta < t
    start = datetime.combine(window.start, datetime.min.time(), UTC)
    end = datetime.combine(window.end + timedelta(days=1), datetime.min.time(), UTC)
    return start <= t < end


def field_of(payload: Any, name: str) -> Any:
    return payload[name] if isinstance(payload, dict) else getattr(payload, name)


def brute_value(expr: ast.Expr, h: CustomerHistory, T: datetime, members: dict[str, bool]) -> Any:
    if isinstance(expr, ast.Agg):
        chosen = [
            e
            for e in h.events
            if e.tag == expr.event
            and in_window(e.occurred_at, expr.window, T)
            and all(holds(w.test, field_of(e.payload, w.field)) for w in expr.where)
        ]
        if expr.field is None:
            return len(chosen)
        pairs = [(e, field_of(e.payload, expr.field)) for e in chosen]
        pairs = [(e, v) for e, v in pairs if v is not None]
        values = [v for _, v in pairs]
        if expr.fn == "count":
            return len(values)
        if expr.fn == "sum":
            total: Any = 0
            for v in values:
                total += v
            return total
        if not values:
            return None
        if expr.fn == "avg":
            return sum(values) / len(values)
        if expr.fn == "min":
            return min(values)
        if expr.fn == "max":
            return max(values)
        return sorted(pairs, key=lambda p: (p[0].occurred_at, p[0].position))[-1][1]
    if isinstance(expr, ast.Attr):
        return getattr(h, expr.name)
    if isinstance(expr, ast.Age):
        if h.birth_date is None:
            return None
        age = 0
        while True:  # count the birthdays passed, one year at a time
            try:
                nxt = h.birth_date.replace(year=h.birth_date.year + age + 1)
            except ValueError:
                nxt = date(h.birth_date.year + age + 1, 3, 1)
            if nxt > T.date():
                return age
            age += 1
    if isinstance(expr, ast.Spend):
        return sum((o.net for o in h.orders if in_window(o.at, expr.window, T)), Decimal(0))
    if isinstance(expr, ast.Orders):
        return len([o for o in h.orders if in_window(o.at, expr.window, T)])
    if isinstance(expr, ast.Plan):
        current: dict[str, PlanFact] = {}
        for f in sorted(h.plans, key=lambda f: (f.at, f.position)):
            if f.at <= T:
                current[f.subscription] = f
        live = sorted(
            (f for f in current.values() if f.plan is not None), key=lambda f: (f.at, f.position)
        )
        return live[-1].plan if live else None
    known = sorted((f for f in h.nps if f.at <= T), key=lambda f: (f.at, f.position))
    return known[-1].score if known else None


def number(v: Any, lit: ast.Lit) -> Any:
    x = lit.value
    return float(x) if isinstance(v, float) and isinstance(x, Decimal) else x


def holds(test: ast.Test, v: Any) -> bool:
    if v is None:
        return False
    if isinstance(test, ast.Cmp):
        x = number(v, test.value)
        return {
            ">": v > x,
            ">=": v >= x,
            "<": v < x,
            "<=": v <= x,
            "=": v == x,
            "!=": v != x,
        }[test.op]
    if isinstance(test, ast.Between):
        return number(v, test.low) <= v <= number(v, test.high)
    return any(v == number(v, x) for x in test.values)


def brute(rule: ast.Rule, h: CustomerHistory, T: datetime, members: dict[str, bool]) -> bool:
    if isinstance(rule, ast.And):
        return all(brute(r, h, T, members) for r in rule.items)
    if isinstance(rule, ast.Or):
        return any(brute(r, h, T, members) for r in rule.items)
    if isinstance(rule, ast.Not):
        return not brute(rule.item, h, T, members)
    if isinstance(rule, ast.Compare):
        return holds(rule.test, brute_value(rule.expr, h, T, members))
    if isinstance(rule, ast.Member):
        return members.get(rule.audience, False)
    granted: dict[str, bool] = {}
    for f in sorted(h.consents, key=lambda f: (f.at, f.position)):
        if f.at <= T and f.channel == rule.channel and rule.purpose in (None, f.purpose):
            granted[f.purpose] = f.granted
    return any(granted.values())


def brute_values(
    rule: ast.Rule, h: CustomerHistory, T: datetime, m: dict[str, bool]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for node in ast.walk(rule):
        if isinstance(node, ast.Compare):
            out[format_expr(node.expr)] = brute_value(node.expr, h, T, m)
        elif isinstance(node, ast.Consent | ast.Member):
            out[format_rule(node)] = brute(node, h, T, m)
    return out


START = datetime(2025, 1, 1, tzinfo=UTC)
SPAN_S = 800 * 86400
moments = st.one_of(
    st.integers(0, SPAN_S).map(lambda s: START + timedelta(seconds=s)),
    # month ends and midnights, where calendar windows are subtle
    st.tuples(st.integers(0, 25), st.sampled_from([1, 28, 29, 30, 31]), st.integers(0, 23)).map(
        lambda p: START + relativedelta(months=p[0], day=p[1], hour=p[2])
    ),
)


@st.composite
def histories(draw: st.DrawFn) -> CustomerHistory:
    positions = iter(draw(st.permutations(list(range(1, 200)))))
    events: list[EventFact] = []
    for _ in range(draw(st.integers(0, 12))):
        t, p = draw(moments), next(positions)
        kind = draw(st.sampled_from(["call", "call_struct", "email", "survey"]))
        direction = draw(st.sampled_from(["in", "out"]))
        if kind.startswith("call"):
            minutes = float(draw(st.integers(0, 120)))
            events.append(call(t, p, minutes, direction, as_dict=kind == "call"))
        elif kind == "email":
            events.append(
                EventFact(t, p, "interaction.email_logged", EmailLogged(direction=direction))
            )  # type: ignore[arg-type]
        else:
            score = draw(st.integers(0, 10))
            answer = SurveyAnswered(kind="nps", score=score, trigger="periodic")
            events.append(EventFact(t, p, "survey.answered", answer))
    consents = [
        ConsentFact(
            draw(moments),
            next(positions),
            draw(st.sampled_from(["phone", "email"])),
            draw(st.sampled_from(["marketing", "service"])),
            draw(st.booleans()),
        )
        for _ in range(draw(st.integers(0, 4)))
    ]
    orders = [
        OrderFact(draw(moments), next(positions), Decimal(draw(st.integers(-500, 20000))) / 100)
        for _ in range(draw(st.integers(0, 4)))
    ]
    plans = [
        PlanFact(
            draw(moments),
            next(positions),
            draw(st.sampled_from(["s1", "s2"])),
            draw(st.sampled_from(["basic", "pro", None])),
        )
        for _ in range(draw(st.integers(0, 3)))
    ]
    nps = [
        NpsFact(draw(moments), next(positions), draw(st.integers(0, 10)))
        for _ in range(draw(st.integers(0, 3)))
    ]
    birth = draw(
        st.none()
        | st.sampled_from([date(2000, 2, 29), date(1990, 12, 31)])
        | st.dates(date(1950, 1, 1), date(2015, 12, 31))
    )
    return CustomerHistory(
        gender=draw(st.sampled_from(["female", "male", None])),
        birth_date=birth,
        events=events,
        consents=consents,
        orders=orders,
        plans=plans,
        nps=nps,
    )


def _num_tests(lo: int, hi: int) -> st.SearchStrategy[ast.Test]:
    n = st.integers(lo, hi).map(num)
    return st.one_of(
        st.builds(ast.Cmp, op=st.sampled_from([">", ">=", "<", "<=", "=", "!="]), value=n),
        st.builds(ast.Between, low=n, high=n),
        st.lists(n, min_size=1, max_size=3).map(lambda v: ast.In(values=tuple(v))),
    )


small_windows = st.one_of(
    st.builds(ast.Last, n=st.integers(1, 6), unit=st.sampled_from(["days", "weeks", "months"])),
    st.tuples(moments, st.integers(0, 120)).map(
        lambda p: ast.Range(start=p[0].date(), end=p[0].date() + timedelta(days=p[1]))
    ),
)


@st.composite
def eval_compares(draw: st.DrawFn) -> ast.Compare:
    choice = draw(
        st.sampled_from(
            ["call", "survey", "email", "age", "gender", "spend", "orders", "plan", "nps"]
        )
    )
    if choice in ("call", "survey"):
        tag, field = (CALL, "duration_min") if choice == "call" else ("survey.answered", "score")
        fn = draw(st.sampled_from(["count", "sum", "avg", "min", "max", "last"]))
        where: tuple[ast.Where, ...] = ()
        if choice == "call" and draw(st.booleans()):
            where = (
                ast.Where(field="direction", test=ast.Cmp(op="=", value=ast.Text(value="in"))),
            )
        expr: ast.Expr = ast.Agg(
            fn=fn,  # type: ignore[arg-type]
            event=tag,
            field=None if fn == "count" and draw(st.booleans()) else field,
            where=where,
            window=draw(small_windows),
        )
        return ast.Compare(expr=expr, test=draw(_num_tests(0, 300 if choice == "call" else 10)))
    if choice == "email":
        expr = ast.Agg(fn="count", event="interaction.email_logged", window=draw(small_windows))
        return ast.Compare(expr=expr, test=draw(_num_tests(0, 3)))
    if choice == "gender":
        return ast.Compare(
            expr=ast.Attr(name="gender"), test=ast.Cmp(op="=", value=ast.Text(value="female"))
        )
    if choice == "plan":
        values = st.sampled_from(["basic", "pro"]).map(lambda v: ast.Text(value=v))
        test = draw(
            st.one_of(
                st.builds(ast.Cmp, op=st.sampled_from(["=", "!="]), value=values),
                st.lists(values, min_size=1, max_size=2).map(lambda v: ast.In(values=tuple(v))),
            )
        )
        return ast.Compare(expr=ast.Plan(), test=test)
    if choice == "age":
        return ast.Compare(expr=ast.Age(), test=draw(_num_tests(0, 80)))
    if choice == "nps":
        return ast.Compare(expr=ast.Nps(), test=draw(_num_tests(0, 10)))
    window = draw(st.none() | small_windows)
    if choice == "spend":
        return ast.Compare(expr=ast.Spend(window=window), test=draw(_num_tests(0, 300)))
    return ast.Compare(expr=ast.Orders(window=window), test=draw(_num_tests(0, 4)))


eval_leaves = st.one_of(
    eval_compares(),
    eval_compares(),
    st.builds(
        ast.Consent,
        channel=st.sampled_from(["phone", "email"]),
        purpose=st.sampled_from([None, "marketing"]),
    ),
    st.builds(ast.Member, audience=st.sampled_from(["a", "b"])),
)
eval_rules = st.recursive(
    eval_leaves,
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: ast.And(items=tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: ast.Or(items=tuple(xs))),
        inner.map(lambda x: ast.Not(item=x)),
    ),
    max_leaves=5,
)
member_maps = st.fixed_dictionaries({"a": st.booleans(), "b": st.booleans()})


def same(x: Evaluation, y: Evaluation) -> bool:
    return (x.member, x.values, x.positions) == (y.member, y.values, y.positions)


class TestEvaluatorOracle:
    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(eval_rules, histories(), moments, member_maps)
    def test_equals_brute_force(
        self, rule: ast.Rule, h: CustomerHistory, T: datetime, members: dict[str, bool]
    ) -> None:
        e = evaluate(rule, h, T, members)
        assert e.member == brute(rule, h, T, members)
        assert e.values == brute_values(rule, h, T, members)
        assert parse_rule(format_rule(rule)) == rule

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        eval_rules,
        histories(),
        moments,
        member_maps,
        st.floats(0, 1, exclude_min=True, exclude_max=True),
    )
    def test_nothing_changes_before_next_change_and_something_does_at_it(
        self,
        rule: ast.Rule,
        h: CustomerHistory,
        T: datetime,
        members: dict[str, bool],
        fraction: float,
    ) -> None:
        e = evaluate(rule, h, T, members)
        if e.next_change is None:
            for later in (T + timedelta(days=1), T + timedelta(days=4000)):
                assert same(evaluate(rule, h, later, members), e)
            return
        assert e.next_change > T
        gap = e.next_change - T
        for between in (T + gap * fraction, e.next_change - timedelta(microseconds=1)):
            if T < between < e.next_change:
                assert same(evaluate(rule, h, between, members), e), between
        at_edge = evaluate(rule, h, e.next_change, members)
        assert not same(at_edge, e)
        assert at_edge.member == brute(rule, h, e.next_change, members)
