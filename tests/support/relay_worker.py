"""A standalone outbox relay process, so tests can kill it with SIGKILL mid-publish.

``python -m tests.support.relay_worker DATABASE_URL BOOTSTRAP [BATCH] [LINGER_MS]``

A long linger makes each batch wait for its acknowledgements, so a kill lands mid-publish.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from mpp.kit.db import create_engine
from mpp.kit.kafka import create_producer
from mpp.kit.relay import OutboxRelay
from tests.support.events import outbox


async def main(url: str, bootstrap: str, batch: int, linger_ms: int) -> None:
    engine = create_engine(url)
    producer = create_producer(bootstrap, client_id="test-relay", linger_ms=linger_ms)
    await producer.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    relay = OutboxRelay(
        engine=engine, outbox=outbox, producer=producer, batch_size=batch, poll_interval_s=0.05
    )
    print("relay-ready", flush=True)
    await relay.run(stop)
    await producer.stop()
    await engine.dispose()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(
        main(args[0], args[1], int(args[2]) if len(args) > 2 else 500, int(args[3]) if len(args) > 3 else 5)
    )
