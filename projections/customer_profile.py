"""`customer_profile`: one row per customer, as sales and service look a customer up.

Current profile and demographics (age kept current by a birthday timer), lifecycle stage with
its source, contacts, consents, the organisations a person is a contact person of and the
contact persons of an organisation, merged-into and absorbed customers, and per channel the
number of interactions and the last one, the merged customers' included. `customer.forgotten`
blanks the personal fields (name, birth date, age, contacts).

A batch loads the rows it touches in one query, folds the events in memory, and writes the
changed rows back at once. Interactions are counted per customer and channel first and
folded into the rows together, in runs that end at each registry event that changes where
they count (a registration, a merge or unmerge); rows are kept by the id's integer, which
hashes in C where a UUID hashes in Python.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time
from typing import Any
from uuid import UUID

import msgspec

from domain.customers import events as ev
from domain.customers.state import primary_contact_id
from domain.envelope import Envelope
from domain.events import DomainEvent
from domain.interactions.events import CHANNEL_OF
from projections.projection import Index, Projection, Tables, Timer

CHANNELS = ("email", "call", "meeting", "questionnaire", "conversation", "web")
_CHANNEL_BY_TAG = {cls.__struct_config__.tag: ch for cls, ch in CHANNEL_OF.items()}
_CHANNEL_BY_CLASS = dict(CHANNEL_OF)
_N = {c: f"n_{c}" for c in CHANNEL_OF.values()}
_LAST = {c: f"last_{c}_at" for c in CHANNEL_OF.values()}
_REGISTRY_TAGS = {
    cls.__struct_config__.tag
    for cls in (
        ev.CustomerRegistered,
        ev.ProfileUpdated,
        ev.StageChanged,
        ev.ContactAdded,
        ev.ContactVerified,
        ev.ContactRemoved,
        ev.ConsentGranted,
        ev.ConsentWithdrawn,
        ev.ContactPersonLinked,
        ev.ContactPersonUnlinked,
        ev.CustomerMergedInto,
        ev.CustomerAbsorbed,
        ev.CustomerUnmerged,
        ev.CustomerReleased,
        ev.CustomerForgotten,
    )
}
COLUMNS = (
    "customer_id",
    "kind",
    "name",
    "gender",
    "birth_date",
    "age",
    "income_band",
    "purpose",
    "stage",
    "source",
    "contacts",
    "consents",
    "organisations",
    "contact_persons",
    "merged_into",
    "absorbed",
    "forgotten",
    "registered_at",
    "updated_at",
    "last_contact_at",
    *(f"n_{c}" for c in CHANNELS),
    *(f"last_{c}_at" for c in CHANNELS),
    "own",
    "position",
)
_JSON = ("contacts", "consents", "organisations", "contact_persons", "absorbed", "own")
_JSON_AT = [(i, c) for i, c in enumerate(COLUMNS) if c in _JSON and c != "own"]
_OWN_AT = COLUMNS.index("own")
_VALUES = operator.itemgetter(*COLUMNS)
_MERGES = (  # registry events that change where interactions count
    ev.CustomerMergedInto,
    ev.CustomerAbsorbed,
    ev.CustomerUnmerged,
    ev.CustomerReleased,
)
CACHE_ROWS = 200_000  # rows kept between pages at most
_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder()


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def next_birthday(birth: date, after: datetime) -> datetime:
    """The first midnight (UTC) after `after` on which the age changes."""
    day = after.astimezone(UTC).date()
    for year in (day.year, day.year + 1):
        try:
            candidate = birth.replace(year=year)
        except ValueError:  # 29 February: the age changes on 1 March
            candidate = date(year, 3, 1)
        if candidate > day:
            return datetime.combine(candidate, time(), UTC)
    raise AssertionError("unreachable")


class CustomerProfile(Projection):
    name = "customer_profile"
    version = 1
    handles = frozenset(_REGISTRY_TAGS | set(_CHANNEL_BY_TAG))
    tables = {
        "customer_profile": (
            "customer_id {uuid} PRIMARY KEY, kind {text}, name {text}, gender {text}, "
            "birth_date {date}, age {int}, income_band {text}, purpose {text}, stage {text}, "
            "source {text}, contacts {json} NOT NULL, consents {json} NOT NULL, "
            "organisations {json} NOT NULL, contact_persons {json} NOT NULL, "
            "merged_into {uuid}, absorbed {json} NOT NULL, forgotten {bool} NOT NULL, "
            "registered_at {ts}, updated_at {ts}, last_contact_at {ts}, "
            + ", ".join(f"n_{c} {{int}} NOT NULL" for c in CHANNELS)
            + ", "
            + ", ".join(f"last_{c}_at {{ts}}" for c in CHANNELS)
            + ", own {json} NOT NULL, position {int} NOT NULL"
        )
    }
    indexes = (Index("merged_into", "customer_profile", "merged_into"),)

    def __init__(self) -> None:
        # Rows kept between the pages of a catch-up; valid while the checkpoint they were
        # committed at is the one the next page starts from.
        self._cache: dict[int, dict[str, Any] | None] = {}
        self._cache_at: tuple[int, int] | None = None

    def committed(self, generation: int, position: int) -> None:
        self._cache_at = (generation, position)
        if len(self._cache) > CACHE_ROWS:
            self.forget_cache()

    def forget_cache(self) -> None:
        self._cache = {}
        self._cache_at = None

    def apply(self, t: Tables, events: list[Envelope[Any]], now: datetime) -> None:
        if self._cache_at != (t.generation, t.position):
            self.forget_cache()
        self._cache_at = None  # until this transaction commits
        rows = _Rows(t, self._cache)
        steps, touched = _steps(events)
        rows.load(touched)
        for step in steps:
            if isinstance(step, dict):
                rows.interactions(step)
            else:
                _apply_registry(rows, step, now)
        rows.flush()

    def on_timers(self, t: Tables, timers: list[Timer], now: datetime) -> None:
        rows = _Rows(t, {})
        ids = [UUID(timer.payload) for timer in timers]
        rows.load(ids)
        for customer_id in ids:
            row = rows.get(customer_id)
            if row is None or row["birth_date"] is None:
                continue
            rows.set_age(customer_id, row["birth_date"], now)
        rows.flush()

    # -- queries --------------------------------------------------------------------------

    @staticmethod
    def columns() -> Sequence[str]:
        return COLUMNS


_Counted = dict[tuple[int, str], list[Any]]
"""Interactions of a run: (customer id's int, channel) -> [customer id, count, last time,
last position]."""


def _steps(
    events: Iterable[Envelope[Any]],
) -> tuple[list[_Counted | Envelope[Any]], list[UUID]]:
    """The batch as steps in log order: runs of interactions counted per customer and
    channel, and registry events (a run ends at a merge or unmerge, and at the registration
    of a customer it counts for: before it, that customer's interactions count nowhere);
    and every customer the batch touches."""
    steps: list[_Counted | Envelope[Any]] = []
    touched: dict[int, UUID] = {}
    counted: _Counted = {}
    in_run: set[int] = set()  # the customers `counted` holds
    channel_of = _CHANNEL_BY_CLASS
    for e in events:
        channel = channel_of.get(e.payload.__class__)
        if channel is not None:
            cid = e.customer_id
            if cid is None:
                continue
            key = cid.int
            seen = counted.get((key, channel))
            if seen is None:
                counted[(key, channel)] = [cid, 1, e.occurred_at, e.position]
                in_run.add(key)
            else:
                seen[1] += 1
                seen[2] = max(seen[2], e.occurred_at)
                seen[3] = e.position  # the log's order: the highest so far
            continue
        if counted and (
            isinstance(e.payload, _MERGES)
            or (isinstance(e.payload, ev.CustomerRegistered) and e.stream_id.int in in_run)
        ):
            steps.append(counted)
            counted, in_run = {}, set()
        steps.append(e)
        if e.customer_id is not None:
            touched[e.customer_id.int] = e.customer_id
        if e.stream_type == "customer":
            for ref in ("survivor_id", "merged_id", "person_id"):
                value = getattr(e.payload, ref, None)
                if isinstance(value, UUID):
                    touched[value.int] = value
    if counted:
        steps.append(counted)
    for step in steps:
        if isinstance(step, dict):
            for cid, *_ in step.values():
                touched[cid.int] = cid
    return steps, list(touched.values())


def _apply_registry(rows: _Rows, e: Envelope[Any], now: datetime) -> None:
    cid = e.stream_id
    p = e.payload
    row = rows.get(cid)
    if row is None:
        if not isinstance(p, ev.CustomerRegistered):
            return  # an event of a customer whose registration this view never saw
        row = rows.new(cid)
    row["updated_at"] = e.occurred_at
    row["position"] = max(row["position"], e.position)
    rows.touch(cid)
    match p:
        case ev.CustomerRegistered():
            row.update(
                kind=p.kind,
                name=p.name,
                gender=p.gender,
                birth_date=p.birth_date,
                income_band=p.income_band,
                purpose=p.purpose,
                stage=p.stage,
                source=p.source,
                registered_at=e.occurred_at,
            )
            row["contacts"] = [
                {
                    "id": str(primary_contact_id(cid, k)),
                    "kind": k,
                    "value": v,
                    "label": None,
                    "verified": False,
                    "primary": True,
                }
                for k, v in (("email", p.email), ("phone", p.phone))
                if v
            ]
            if p.birth_date is not None:
                rows.set_age(cid, p.birth_date, now)
        case ev.ProfileUpdated():
            for f in ("name", "gender", "income_band", "purpose", "birth_date"):
                value = getattr(p, f)
                if value is not None:
                    row[f] = value
            if p.birth_date is not None:
                rows.set_age(cid, p.birth_date, now)
        case ev.StageChanged():
            row["stage"] = p.stage
            if p.source is not None:
                row["source"] = p.source
        case ev.ContactAdded() | ev.ContactVerified() | ev.ContactRemoved():
            row["contacts"] = _contacts(row["contacts"], p)
        case ev.ConsentGranted() | ev.ConsentWithdrawn():
            row["consents"] = _consents(row["consents"], p, e.occurred_at)
        case ev.ContactPersonLinked() | ev.ContactPersonUnlinked():
            _contact_person(rows, row, cid, p)
        case ev.CustomerMergedInto():
            row["merged_into"] = p.survivor_id
        case ev.CustomerUnmerged():
            row["merged_into"] = None
        case ev.CustomerAbsorbed():
            row["absorbed"] = [*row["absorbed"], str(p.merged_id)]
            rows.recount(cid)
        case ev.CustomerReleased():
            row["absorbed"] = [m for m in row["absorbed"] if m != str(p.merged_id)]
            rows.recount(cid)
        case ev.CustomerForgotten():
            row.update(name=None, birth_date=None, age=None, contacts=[], forgotten=True)
            rows.cancel_birthday(cid)


def _contacts(contacts: list[dict[str, Any]], p: DomainEvent) -> list[dict[str, Any]]:
    if isinstance(p, ev.ContactAdded):
        added = {
            "id": str(p.contact_id),
            "kind": p.contact_kind,
            "value": p.value,
            "label": p.label,
            "verified": False,
            "primary": False,
        }
        return [*contacts, added]
    assert isinstance(p, ev.ContactVerified | ev.ContactRemoved)
    target = str(p.contact_id)
    if isinstance(p, ev.ContactRemoved):
        return [c for c in contacts if c["id"] != target]
    return [{**c, "verified": True} if c["id"] == target else c for c in contacts]


def _consents(consents: list[dict[str, Any]], p: DomainEvent, at: datetime) -> list[dict[str, Any]]:
    assert isinstance(p, ev.ConsentGranted | ev.ConsentWithdrawn)
    kept = [c for c in consents if (c["channel"], c["purpose"]) != (p.consent_channel, p.purpose)]
    if isinstance(p, ev.ConsentGranted):
        kept.append(
            {
                "channel": p.consent_channel,
                "purpose": p.purpose,
                "source": p.source,
                "granted_at": _iso(at),
            }
        )
    return kept


def _contact_person(rows: _Rows, org: dict[str, Any], org_id: UUID, p: DomainEvent) -> None:
    """Linking is an event of the organisation; the person's row lists it too."""
    assert isinstance(p, ev.ContactPersonLinked | ev.ContactPersonUnlinked)
    person_id = str(p.person_id)
    org["contact_persons"] = [c for c in org["contact_persons"] if c["person_id"] != person_id]
    if isinstance(p, ev.ContactPersonLinked):
        org["contact_persons"].append({"person_id": person_id, "role": p.role})
    person = rows.get(p.person_id)
    if person is None:
        return
    person["organisations"] = [
        o for o in person["organisations"] if o["organisation_id"] != str(org_id)
    ]
    if isinstance(p, ev.ContactPersonLinked):
        person["organisations"].append({"organisation_id": str(org_id), "role": p.role})
    rows.touch(p.person_id)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


class _Rows:
    """The rows a batch touches, as dicts, loaded once and written back once."""

    def __init__(self, t: Tables, rows: dict[int, dict[str, Any] | None]) -> None:
        self.t = t
        self.rows = rows  # by the customer id's int
        self.dirty: set[int] = set()

    def touch(self, customer_id: UUID) -> None:
        self.dirty.add(customer_id.int)

    def load(self, ids: Sequence[UUID]) -> None:
        missing = [i for i in ids if i.int not in self.rows]
        if not missing:
            return
        found = self.t.fetch_in(
            f"SELECT {', '.join(COLUMNS)} FROM {{customer_profile}} WHERE {{in}}",
            "customer_id",
            missing,
        )
        d = self.t.dialect
        for values in found:
            row = dict(zip(COLUMNS, values, strict=True))
            row["customer_id"] = d.uuid(row["customer_id"])
            row["merged_into"] = d.uuid(row["merged_into"])
            for f in _JSON:
                row[f] = _dec.decode(row[f])
            row["own"] = {
                c: [n, datetime.fromisoformat(last).astimezone(UTC) if last else None]
                for c, (n, last) in row["own"].items()
            }
            for f in (
                "registered_at",
                "updated_at",
                "last_contact_at",
                *(f"last_{c}_at" for c in CHANNELS),
            ):
                row[f] = d.ts(row[f])
            if isinstance(row["birth_date"], str):
                row["birth_date"] = date.fromisoformat(row["birth_date"])
            row["forgotten"] = bool(row["forgotten"])
            self.rows[row["customer_id"].int] = row
        for i in missing:
            self.rows.setdefault(i.int, None)

    def get(self, customer_id: UUID) -> dict[str, Any] | None:
        if customer_id.int not in self.rows:
            self.load([customer_id])
        return self.rows[customer_id.int]

    def new(self, customer_id: UUID) -> dict[str, Any]:
        row: dict[str, Any] = dict.fromkeys(COLUMNS)
        row.update(
            customer_id=customer_id,
            contacts=[],
            consents=[],
            organisations=[],
            contact_persons=[],
            absorbed=[],
            forgotten=False,
            own={},
            position=0,
            **{f"n_{c}": 0 for c in CHANNELS},
        )
        self.rows[customer_id.int] = row
        self.dirty.add(customer_id.int)
        return row

    def interactions(self, counted: _Counted) -> None:
        """A run of interactions, counted per customer and channel."""
        rows, dirty = self.rows, self.dirty
        for (key, channel), (customer_id, n, at, position) in counted.items():
            row = rows.get(key, False)
            if row is False:
                row = self.get(customer_id)
            if row is None:
                continue  # a customer whose registration this view never saw
            own = row["own"].get(channel)
            if own is None:
                own = row["own"][channel] = [0, None]
            own[0] += n
            if own[1] is None or at > own[1]:
                own[1] = at if at.tzinfo is UTC else at.astimezone(UTC)
            n_key, last_key = _N[channel], _LAST[channel]
            for _ in range(64):  # the survivors count them too (a merge chain is short)
                row[n_key] += n
                last = row[last_key]
                if last is None or at > last:
                    row[last_key] = at
                if row["last_contact_at"] is None or at > row["last_contact_at"]:
                    row["last_contact_at"] = at
                row["position"] = max(row["position"], position)
                dirty.add(row["customer_id"].int)
                survivor = row["merged_into"]
                if not survivor:
                    break
                row = self.get(survivor)
                if row is None:
                    break

    def recount(self, customer_id: UUID) -> None:
        """Totals = own interactions plus each absorbed customer's totals (recursively)."""
        row = self.get(customer_id)
        assert row is not None
        totals: dict[str, list[Any]] = {c: [0, None] for c in CHANNELS}
        for channel, (n, last) in row["own"].items():
            totals[channel] = [n, last]
        for merged in row["absorbed"]:
            child = self.get(UUID(merged))
            if child is None:
                continue
            for c in CHANNELS:
                n, last = child[f"n_{c}"], child[f"last_{c}_at"]
                totals[c][0] += n
                if last is not None and (totals[c][1] is None or last > totals[c][1]):
                    totals[c][1] = last
        for c in CHANNELS:
            row[f"n_{c}"], row[f"last_{c}_at"] = totals[c]
        lasts = [last for _, last in totals.values() if last is not None]
        row["last_contact_at"] = max(lasts) if lasts else None
        self.dirty.add(customer_id.int)

    def set_age(self, customer_id: UUID, birth: date, now: datetime) -> None:
        row = self.rows[customer_id.int]
        assert row is not None
        row["age"] = age_on(birth, now.astimezone(UTC).date())
        self.dirty.add(customer_id.int)
        self.t.schedule(f"birthday:{customer_id}", next_birthday(birth, now), str(customer_id))

    def cancel_birthday(self, customer_id: UUID) -> None:
        self.t.cancel(f"birthday:{customer_id}")

    def flush(self) -> None:
        if not self.dirty:
            return
        out = []
        rows, encode = self.rows, _enc.encode
        for cid in self.dirty:
            row = rows[cid]
            assert row is not None
            values = list(_VALUES(row))
            for i, c in _JSON_AT:
                values[i] = encode(row[c]).decode()
            # `own` holds UTC times (see `interactions`), which msgspec writes as `...Z`;
            # the column keeps `_iso`'s `+00:00` (no other string in it ends in Z).
            values[_OWN_AT] = encode(row["own"]).replace(b'Z"', b'+00:00"').decode()
            out.append(values)
        self.t.replace_rows("customer_profile", "customer_id", COLUMNS, out)
        self.dirty.clear()
