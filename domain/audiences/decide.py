"""Decisions on the audience registry (pure): a rule is parsed and checked, refers only to
live audiences, closes no `member(...)` cycle; a name is defined once. A refused command
raises a RuleError and decides nothing."""

from __future__ import annotations

from domain.audiences import ast
from domain.audiences import commands as cmd
from domain.audiences import errors as err
from domain.audiences import events as ev
from domain.audiences.parse import format_rule, parse_rule
from domain.audiences.state import Registry
from domain.events import DomainEvent


def _checked(state: Registry, name: str, text: str) -> ast.Rule:
    rule = parse_rule(text)
    live = state.live()
    for ref in sorted(ast.references(rule)):
        if ref != name and ref not in live:
            raise err.UnknownAudience(ref, name)
    ast.check_no_cycles({**{n: d.rule for n, d in live.items()}, name: rule})
    return rule


def define(state: Registry, c: cmd.DefineAudience) -> list[DomainEvent]:
    if c.name in state.definitions:
        raise err.AudienceAlreadyDefined(c.name)
    rule = _checked(state, c.name, c.rule)
    return [ev.AudienceDefined(name=c.name, text=format_rule(rule), rule=rule, version=1)]


def _current(state: Registry, name: str) -> int:
    d = state.definitions.get(name)
    if d is None:
        raise err.AudienceNotFound(name)
    if d.retired:
        raise err.AudienceRetired(name)
    return d.version


def change(state: Registry, c: cmd.ChangeAudience) -> list[DomainEvent]:
    version = _current(state, c.name)
    rule = _checked(state, c.name, c.rule)
    if rule == state.definitions[c.name].rule:
        return []  # the same rule: no new version
    return [ev.AudienceChanged(name=c.name, text=format_rule(rule), rule=rule, version=version + 1)]


def retire(state: Registry, c: cmd.RetireAudience) -> list[DomainEvent]:
    version = _current(state, c.name)
    users = sorted(
        n for n, d in state.live().items() if n != c.name and c.name in ast.references(d.rule)
    )
    if users:
        raise err.AudienceInUse(c.name, users)
    return [ev.AudienceRetired(name=c.name, version=version)]
