"""The baseline of bench/commands_nats.py: a `nats.micro` service that answers every request
on `<prefix>.cmd.>` with its own body, in one process of its own like the real handlers.

    python bench/_echo_service.py NATS_URL PREFIX
"""

from __future__ import annotations

import asyncio
import signal
import sys

import nats
from nats import micro
from nats.micro.request import Request


async def main(url: str, prefix: str) -> None:
    nc = await nats.connect(url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    async def echo(request: Request) -> None:
        await request.respond(request.data)

    service = await micro.add_service(nc, name=prefix, version="0.0.1", queue_group="echo")
    await service.add_endpoint(name="echo", subject=f"{prefix}.cmd.>", handler=echo)
    print("ready", flush=True)
    await stop.wait()
    await service.stop()
    await nc.drain()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
