"""Rebuild of satisfaction + service + equipment + reminders over the demo history, events/s,
against a raw read of the same log.

setup     (not timed) the demo history (`infra.history`, service included: equipment, usage,
          maintenance, breakdowns, tickets, surveys; `--customers` customers over `--years`
          years, seed `--seed`) imported into a fresh PostgreSQL schema by the bulk importer.
subject   the service views rebuilt from position 0: their tables, views and the runner's
          system tables dropped, then one catch-up of all of them from nothing (each page of
          the log read once and decoded once for all of them; each view writes its rows,
          timers and checkpoint in a transaction of its own). events/s = events in the log /
          seconds.
baseline  in the same run, a raw server-side cursor read of the whole log (binary, nothing
          decoded), rows/s: see bench/catchup.py.
value     the best of `--repeat` runs (medians as extra keys); ratio = value / baseline
          (target >= 0.25). Views not registered are listed under `missing` and left out.

    .venv/bin/python bench/rebuild_service.py [--customers 2000] [--years 2] [--seed 7]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._rebuild import run

if __name__ == "__main__":
    run(
        "rebuild_service",
        ("satisfaction", "service", "equipment", "reminders"),
        0.25,
        __doc__.split("\n")[0],
    )
