"""A backend service talking to crm-engine over NATS, with nothing but nats-py.

It registers a customer, logs a call, reads the profile back with read-your-writes, and (with
`--events`) reads the events it caused from the JetStream stream CRM_EVENTS. docs/nats.md
explains every subject and message shape used here.

    docker compose up -d                        # or: crm serve all (with CRM_STORE_URL set)
    python examples/nats_client.py [--events]

Connection settings come from the same variables as the engine's: CRM_NATS_URL, and for
credentials CRM_NATS_USER + CRM_NATS_PASSWORD, CRM_NATS_TOKEN, CRM_NATS_NKEY_SEED or
CRM_NATS_CREDS; CRM_NATS_TLS_CA (+ CRM_NATS_TLS_CERT, CRM_NATS_TLS_KEY) for TLS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
from nats.aio.client import Client
from nats.errors import NoRespondersError, NoServersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

PREFIX = os.environ.get("CRM_NATS_PREFIX") or "crm"
"""The engine's subject prefix (`crm.cmd.>`, `crm.query.>`); the events are on `crm.evt.>`."""

STREAM = "CRM_EVENTS"

BUSY_RETRIES = 5
"""A `busy` answer means the handlers' queue is full: nothing was done, so the same command
(with the same command_id) is sent again after a pause."""


class ServiceDown(Exception):
    """Nobody answers on the subject: the engine role that serves it is not running."""


class NoAnswer(Exception):
    """A request timed out: the engine is running but slow, or the answer was lost."""


class Refused(Exception):
    """The engine answered `{"ok": false, "error": {...}}`."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.error = error


async def _quiet(_error: Exception) -> None:
    """nats-py prints a traceback per failed connect attempt; main() says it in one line."""


def connect_options() -> dict[str, Any]:
    """nats.connect keyword arguments from the CRM_NATS_* variables (as the engine reads them)."""
    env = os.environ
    url = env.get("CRM_NATS_URL") or "nats://127.0.0.1:4222"
    opts: dict[str, Any] = {
        "servers": [s.strip() for s in url.split(",") if s.strip()],
        "name": "crm-example-client",
        "connect_timeout": 3,
        "max_reconnect_attempts": 1,  # fail fast with a clear message instead of retrying for ever
        "reconnect_time_wait": 0.2,
        "error_cb": _quiet,
    }
    if env.get("CRM_NATS_USER"):
        opts["user"], opts["password"] = env["CRM_NATS_USER"], env.get("CRM_NATS_PASSWORD", "")
    if env.get("CRM_NATS_TOKEN"):
        opts["token"] = env["CRM_NATS_TOKEN"]
    if env.get("CRM_NATS_NKEY_SEED"):
        opts["nkeys_seed"] = env["CRM_NATS_NKEY_SEED"]
    if env.get("CRM_NATS_CREDS"):
        opts["user_credentials"] = env["CRM_NATS_CREDS"]
    if env.get("CRM_NATS_TLS_CA") or env.get("CRM_NATS_TLS_CERT"):
        context = ssl.create_default_context(cafile=env.get("CRM_NATS_TLS_CA"))
        if env.get("CRM_NATS_TLS_CERT"):
            context.load_cert_chain(env["CRM_NATS_TLS_CERT"], env.get("CRM_NATS_TLS_KEY"))
        opts["tls"] = context
    return opts


async def request(nc: Client, subject: str, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """One request; the engine's JSON answer, or ServiceDown when no process serves `subject`."""
    try:
        msg = await nc.request(subject, json.dumps(body).encode(), **kw)
    except NoRespondersError:
        role = "projector" if ".query." in subject else "handlers"
        raise ServiceDown(f"no responders on {subject} (served by `crm serve {role}`)") from None
    except NatsTimeout:
        raise NoAnswer(
            f"no answer on {subject} in time; a command may still have been applied: "
            "send it again with the same command_id to learn its outcome"
        ) from None
    return json.loads(msg.data)


async def command(
    nc: Client, name: str, data: dict[str, Any], command_id: str, timeout: float = 10.0
) -> dict[str, Any]:
    """Send a command; retry while the handlers are `busy`; Refused if the engine says no.

    The command_id goes in the body and in the Nats-Msg-Id header (either is enough): a repeat
    with the same id returns the first answer and appends nothing, so a retry is always safe.
    """
    body = {"data": data, "command_id": command_id, "actor": "service:example"}
    attempt = 0
    while True:
        reply = await request(
            nc, f"{PREFIX}.cmd.{name}", body, timeout=timeout, headers={"Nats-Msg-Id": command_id}
        )
        if reply.get("ok"):
            return reply
        error = reply.get("error") or {}
        if error.get("code") != "busy" or attempt == BUSY_RETRIES:
            raise Refused(error)
        await asyncio.sleep(0.1 * 2**attempt)
        attempt += 1


async def query(
    nc: Client, projection: str, filters: dict[str, Any], min_position: int | None = None
) -> dict[str, Any]:
    """Rows of a view; with `min_position`, only once the view has applied that position."""
    # timeout_ms: how long the engine may wait for the view to reach min_position
    body: dict[str, Any] = {"filters": filters, "limit": 10, "offset": 0, "timeout_ms": 10_000}
    if min_position is not None:
        body["min_position"] = min_position
    reply = await request(nc, f"{PREFIX}.query.{projection}", body, timeout=15.0)
    if not reply.get("ok"):
        raise Refused(reply.get("error") or {})
    return reply


async def read_events(nc: Client, positions: set[int], since: datetime, wait: float) -> None:
    """Print the events at `positions` from CRM_EVENTS (the relay sets Nats-Msg-Id = position).

    An ephemeral ordered consumer starting a little before `since` (the stream carries every
    customer's events; the subject names only the stream and event type). Delivery is
    at-least-once in general, so a real consumer keeps the last position it handled and skips
    anything at or below it.
    """
    js = nc.jetstream()
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        print(f"  no stream {STREAM} on this server: is `crm serve relay` running?")
        return
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=since - timedelta(minutes=1)
    )
    sub = await js.subscribe("crm.evt.>", stream=STREAM, ordered_consumer=True, config=config)
    missing = {str(p) for p in positions}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    try:
        while missing and loop.time() < deadline:
            try:
                msg = await sub.next_msg(timeout=max(0.1, deadline - loop.time()))
            except NatsTimeout:
                break
            position = (msg.headers or {}).get("Nats-Msg-Id")
            if position not in missing:
                continue
            missing.discard(position)
            event = json.loads(msg.data)
            print(f"  position {position} on {msg.subject}")
            print(f"    public data: {json.dumps(event.get('data'), default=str)}")
            if event.get("sealed"):
                print("    personal fields: sealed (ciphertext only on the bus)")
    finally:
        await sub.unsubscribe()
    if missing:
        print(
            f"  not on {STREAM} yet: positions {sorted(missing, key=int)} "
            "(is `crm serve relay` running?)"
        )


def show(title: str, value: Any) -> None:
    print(f"{title}:\n{json.dumps(value, indent=2, default=str)}")


async def run(with_events: bool) -> None:
    started = datetime.now(UTC)
    nc = await nats.connect(**connect_options())
    try:
        customer_id = str(uuid.uuid4())
        register = {
            "customer_id": customer_id,
            "name": "Ada Lovelace",
            "email": f"ada.{customer_id[:8]}@example.org",
            "source": "example",
        }
        register_id = f"example-register-{customer_id}"
        show("customer.register", await command(nc, "customer.register", register, register_id))
        again = await command(nc, "customer.register", register, register_id)
        show("customer.register again, same command_id (the first answer, nothing appended)", again)

        call = {
            "customer_id": customer_id,
            "direction": "in",
            "duration_min": 12,
            "outcome": "quote requested",
            "notes": "asked for a quote for the office coffee machine",
        }
        logged = await command(nc, "interaction.log_call", call, f"example-call-{customer_id}")
        show("interaction.log_call", logged)

        last = max(again["positions"] + logged["positions"])
        profile = await query(nc, "customer_profile", {"customer_id": customer_id}, last)
        print(f"customer_profile at position {profile.get('position')} (asked for >= {last}):")
        for row in profile.get("rows", []):
            print(json.dumps(row, indent=2, default=str))

        if with_events:
            print("events on CRM_EVENTS:")
            positions = set(again["positions"] + logged["positions"])
            await read_events(nc, positions, started, wait=10.0)
    finally:
        await nc.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events", action="store_true", help="also read the events from JetStream CRM_EVENTS"
    )
    args = parser.parse_args()
    try:
        asyncio.run(run(args.events))
    except NoServersError:
        url = os.environ.get("CRM_NATS_URL") or "nats://127.0.0.1:4222"
        print(
            f"cannot connect to NATS at {url}: is it running? (set CRM_NATS_URL)", file=sys.stderr
        )
        return 2
    except ServiceDown as e:
        print(
            f"{e}: start the engine (`docker compose up -d`, or `crm serve all` with "
            "CRM_STORE_URL and CRM_NATS_URL set) and try again",
            file=sys.stderr,
        )
        return 2
    except NoAnswer as e:
        print(str(e), file=sys.stderr)
        return 2
    except Refused as e:
        print(f"refused: {e}", file=sys.stderr)
        print(json.dumps(e.error, indent=2), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
