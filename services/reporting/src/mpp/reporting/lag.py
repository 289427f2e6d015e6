"""The projection's lag per partition: the broker's end offset minus the offset stored with the read
models, read periodically into a gauge (so it is right whoever applies the events: the projector, another
replica, or a rebuild)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mpp.kit.kafka import KafkaSecurity, stop_consumer, topic_partitions
from mpp.reporting.persistence.tables import consumer_offsets
from mpp.reporting.projection_metrics import ProjectionMetrics

log = logging.getLogger(__name__)


class LagWatcher:
    def __init__(
        self,
        *,
        bootstrap: str,
        security: KafkaSecurity,
        topics: Sequence[str],
        group: str,
        sessions: async_sessionmaker[AsyncSession],
        metrics: ProjectionMetrics,
        interval_s: float,
    ) -> None:
        self._bootstrap = bootstrap
        self._security = security
        self._topics = list(topics)
        self._group = group
        self._sessions = sessions
        self._metrics = metrics
        self._interval = interval_s
        self._kafka: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []

    async def refresh(self) -> dict[TopicPartition, int]:
        """Read the ends and the stored offsets once and set the gauge; returns the lag per partition."""
        if self._kafka is None:
            kafka = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                **self._security.options(),
                group_id=None,
                enable_auto_commit=False,
            )
            await kafka.start()
            self._kafka = kafka
        if not self._partitions:
            self._partitions = [
                tp
                for topic in self._topics
                for tp in await topic_partitions(self._bootstrap, topic, security=self._security)
            ]
        firsts = await self._kafka.beginning_offsets(self._partitions)
        ends = await self._kafka.end_offsets(self._partitions)
        t = consumer_offsets
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(t.c.topic, t.c.partition, t.c.offset).where(t.c.consumer == self._group)
                )
            ).all()
        stored = {TopicPartition(r.topic, r.partition): int(r.offset) for r in rows}
        lags = {}
        for tp in self._partitions:
            position = stored[tp] + 1 if tp in stored else firsts[tp]
            lags[tp] = max(0, ends[tp] - position)
            self._metrics.lag.labels(topic=tp.topic, partition=str(tp.partition)).set(lags[tp])
        return lags

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self.refresh()
                except Exception as exc:  # the gauge is best effort: the broker or database may be down
                    log.warning("reporting.lag.refresh_failed", extra={"error": type(exc).__name__})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self._interval)
        finally:
            if self._kafka is not None:
                await stop_consumer(self._kafka)
                self._kafka = None
