"""End-to-end commands/s over NATS on PostgreSQL with 256 concurrent clients, against an echo
micro service on the same NATS server in the same run.

setup     (not timed) a fresh schema; the handlers started as a user runs them, a process of
          their own: `python -m infra.cli serve handlers` with CRM_STORE_URL naming the schema
          and CRM_NATS_PREFIX a unique prefix; the echo service (bench/_echo_service.py) in a
          process of its own with another prefix. Each is ready when `$SRV.PING` answers.
measure   `--clients` concurrent clients (asyncio tasks over one connection, as a service
          talking to the engine would), each for `--seconds` after `--warmup` untimed seconds:
          register a customer (name, e-mail, phone: sealed personal data), then log `--calls`
          calls on it (`interaction.log_call`), again and again; every request carries a
          `command_id`. A `busy` reply is retried after 5 ms and not counted.
          subject:  `<prefix>.cmd.<command>` on the handlers: validate, group commit (decide,
                    append with the command records, one transaction per batch), reply.
          baseline: the same requests, same bodies, to the echo service.
value     ok commands/s of the subject (p50/p99 latency in ms as extra keys); baseline: replies/s
          of the echo service; ratio = value / baseline (target >= 0.3; the aim is 8,000/s).
check     every ok reply's command is recorded once: crm_commands holds exactly the ok ids.

    .venv/bin/python bench/commands_nats.py [--clients 256] [--seconds 10] [--calls 4]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import asyncio
import json
import os
import subprocess
import time
from typing import Any
from uuid import uuid4

import nats
import psycopg
from nats.aio.client import Client
from psycopg.sql import SQL, Identifier

from bench._common import ROOT, bench_schema, emit, log, pg_url, with_schema

NATS_URL = os.environ.get("CRM_BENCH_NATS_URL", "nats://127.0.0.1:4222")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def wait_ready(nc: Client, name: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with {proc.returncode}")
        try:
            await nc.request(f"$SRV.PING.{name}", b"", timeout=0.5)
            return
        except Exception:
            await asyncio.sleep(0.1)
    raise SystemExit(f"{name} did not answer $SRV.PING")


class Load:
    def __init__(self, nc: Client, prefix: str, calls: int) -> None:
        self.nc = nc
        self.prefix = prefix
        self.calls = calls
        self.ok_ids: list[str] = []
        self.latencies: list[float] = []
        self.errors: dict[str, int] = {}
        self.busy = 0
        self.counting = False

    async def send(self, name: str, data: dict[str, Any]) -> dict[str, Any] | None:
        command_id = uuid4().hex
        body = json.dumps({"data": data, "command_id": command_id}).encode()
        while True:
            started = time.perf_counter()
            msg = await self.nc.request(f"{self.prefix}.cmd.{name}", body, timeout=30)
            reply: dict[str, Any] = json.loads(msg.data)
            if reply.get("ok", True) is False and reply["error"]["code"] == "busy":
                self.busy += 1
                await asyncio.sleep(0.005)
                continue
            if self.counting:
                self.latencies.append(time.perf_counter() - started)
                if reply.get("ok") is False:
                    code = reply["error"]["code"]
                    self.errors[code] = self.errors.get(code, 0) + 1
                else:
                    self.ok_ids.append(command_id)
            return reply

    async def client(self, deadline: float, n: int) -> None:
        i = 0
        while time.perf_counter() < deadline:
            i += 1
            tag = f"{n}-{i}-{uuid4().hex[:6]}"
            reply = await self.send(
                "customer.register",
                {
                    "name": f"Client {tag}",
                    "email": f"{tag}@example.com",
                    "phone": f"+4179{n:04d}{i:05d}",
                },
            )
            streams = (reply or {}).get("streams") or [{"id": str(uuid4())}]
            customer = streams[0]["id"]
            for _ in range(self.calls):
                await self.send(
                    "interaction.log_call",
                    {
                        "customer_id": customer,
                        "direction": "in",
                        "duration_min": 3,
                        "outcome": "ok",
                    },
                )


async def measure(nc: Client, prefix: str, args: argparse.Namespace) -> Load:
    clients, seconds, warmup = args.clients, args.seconds, args.warmup
    load = Load(nc, prefix, args.calls)
    start = time.perf_counter()
    tasks = [asyncio.create_task(load.client(start + warmup + seconds, n)) for n in range(clients)]
    await asyncio.sleep(warmup)
    load.counting = True
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    load.counting = False
    elapsed = time.perf_counter() - t0
    await asyncio.gather(*tasks)
    load.elapsed = elapsed  # type: ignore[attr-defined]
    return load


async def main(args: argparse.Namespace) -> None:
    with bench_schema("nats_cmd") as schema:
        url = with_schema(pg_url(), schema)
        subject_prefix, echo_prefix = f"bh_{uuid4().hex[:8]}", f"be_{uuid4().hex[:8]}"
        env = {
            **os.environ,
            "CRM_STORE_URL": url,
            "CRM_NATS_URL": NATS_URL,
            "CRM_NATS_PREFIX": subject_prefix,
            "CRM_LOG_LEVEL": "WARNING",
        }
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "infra.cli", "serve", "handlers"], cwd=ROOT, env=env
            )
            for _ in range(args.handlers)
        ]
        handlers = workers[0]
        echo = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "_echo_service.py"), NATS_URL, echo_prefix],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        nc = await nats.connect(NATS_URL, pending_size=64 * 1024 * 1024)
        try:
            await wait_ready(nc, subject_prefix, handlers)
            await wait_ready(nc, echo_prefix, echo)
            log(f"echo: {args.clients} clients for {args.seconds} s")
            base = await measure(nc, echo_prefix, args)
            log(f"handlers: {args.clients} clients for {args.seconds} s")
            subject = await measure(nc, subject_prefix, args)
        finally:
            await nc.drain()
            for proc in (*workers, echo):
                proc.terminate()
            handler_exit = max(abs(w.wait(timeout=60)) for w in workers)
            echo.wait(timeout=10)
        with psycopg.connect(pg_url(), autocommit=True) as conn:
            recorded = {
                r[0]
                for r in conn.execute(
                    SQL("SELECT command_id FROM {0}.crm_commands").format(Identifier(schema))
                )
            }
    missing = set(subject.ok_ids) - recorded
    rate = len(subject.ok_ids) / subject.elapsed  # type: ignore[attr-defined]
    base_rate = len(base.ok_ids) / base.elapsed  # type: ignore[attr-defined]
    log(
        f"echo {base_rate:,.0f}/s, handlers {rate:,.0f}/s, errors {subject.errors}, busy {subject.busy}"
    )
    emit(
        {
            "bench": "commands_nats",
            "value": round(rate, 1),
            "unit": "commands/s",
            "baseline": round(base_rate, 1),
            "ratio": round(rate / base_rate, 3),
            "p50_ms": round(percentile(subject.latencies, 0.5) * 1000, 2),
            "p99_ms": round(percentile(subject.latencies, 0.99) * 1000, 2),
            "baseline_p50_ms": round(percentile(base.latencies, 0.5) * 1000, 2),
            "baseline_p99_ms": round(percentile(base.latencies, 0.99) * 1000, 2),
            "clients": args.clients,
            "handler_processes": args.handlers,
            "errors": subject.errors,
            "busy_retries": subject.busy,
            "ok_not_recorded": len(missing),
            "handlers_exit": handler_exit,
            "aim": 8000,
        }
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--calls", type=int, default=4)
    parser.add_argument(
        "--handlers", type=int, default=1, help="handler processes in the queue group"
    )
    asyncio.run(main(parser.parse_args()))
