"""Kafka clients with the platform's settings: producers are idempotent with ``acks=all``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from mpp.contracts.topics import TOPICS, TopicSpec, dead_letter_topics

log = logging.getLogger(__name__)


TOPIC_ALREADY_EXISTS = 36


class TopicCreationFailed(RuntimeError):
    """Kafka refused to create a registry topic."""


def create_producer(bootstrap: str, *, client_id: str, linger_ms: int = 5) -> AIOKafkaProducer:
    """A producer that cannot lose acknowledged records nor reorder them per partition."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        max_batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
        request_timeout_ms=30_000,
    )


async def ensure_topics(
    bootstrap: str, specs: Iterable[TopicSpec] | None = None, *, replication_factor: int = 1
) -> list[str]:
    """Create the registry's topics (and dead-letter topics) that do not exist yet; returns those created."""
    wanted = list(specs) if specs is not None else [*TOPICS, *dead_letter_topics()]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="mpp-topic-admin")
    await admin.start()
    created: list[str] = []
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in wanted if s.name not in existing]
        for spec in missing:
            try:
                response = await admin.create_topics(
                    [
                        NewTopic(
                            name=spec.name,
                            num_partitions=spec.partitions,
                            replication_factor=replication_factor,
                            topic_configs=spec.config(),
                        )
                    ]
                )
            except TopicAlreadyExistsError:
                continue
            for error in response.topic_errors:
                name, code = error[0], error[1]
                message = error[2] if len(error) > 2 else ""
                if code == TOPIC_ALREADY_EXISTS:
                    continue
                if code != 0:
                    # The broker refused (too few brokers for the replication factor, ACLs...): never
                    # report a topic as created when it is not.
                    raise TopicCreationFailed(
                        f"cannot create topic {name}: error {code} {message or ''}".strip()
                    )
                created.append(name)
    finally:
        await admin.close()
    if created:
        log.info("kit.kafka.topics_created", extra={"topics": created})
    return created


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """Stop a consumer; tolerates aiokafka's group-less coordinator leaking a CancelledError on close.

    A CancelledError is re-raised when the calling task itself is being cancelled.
    """
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise


async def topic_partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    """The partitions of ``topic`` (empty when the topic does not exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="mpp-topic-admin")
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    parts = [p["partition"] for d in described if d.get("error_code") == 0 for p in d["partitions"]]
    return [TopicPartition(topic, p) for p in sorted(parts)]
