"""Kafka clients with the platform's settings: producers are idempotent with ``acks=all``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context

from mpp.contracts.topics import TOPICS, TopicSpec, dead_letter_topics
from mpp.kit.settings import ServiceSettings

log = logging.getLogger(__name__)


TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class KafkaSecurity:
    """How clients authenticate to the brokers: plaintext locally, TLS and/or SASL in production."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    username: str | None = None
    password: str | None = None
    cafile: str | None = None

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> KafkaSecurity:
        return cls(
            protocol=settings.kafka_security_protocol,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value()
            if settings.kafka_sasl_password
            else None,
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
        )

    def options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka producers, consumers and admin clients."""
        opts: dict[str, Any] = {"security_protocol": self.protocol}
        if self.protocol in {"SSL", "SASL_SSL"}:
            opts["ssl_context"] = create_ssl_context(cafile=self.cafile)
        if self.protocol.startswith("SASL"):
            if not (self.sasl_mechanism and self.username and self.password):
                raise ValueError(
                    f"{self.protocol} needs KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
                )
            opts.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password,
            )
        return opts


PLAINTEXT = KafkaSecurity()


class TopicCreationFailed(RuntimeError):
    """Kafka refused to create a registry topic."""


def create_producer(
    bootstrap: str, *, client_id: str, linger_ms: int = 5, security: KafkaSecurity = PLAINTEXT
) -> AIOKafkaProducer:
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
        **security.options(),
    )


async def ensure_topics(
    bootstrap: str,
    specs: Iterable[TopicSpec] | None = None,
    *,
    replication_factor: int = 1,
    security: KafkaSecurity = PLAINTEXT,
) -> list[str]:
    """Create the registry's topics (and dead-letter topics) that do not exist yet; returns those created."""
    wanted = list(specs) if specs is not None else [*TOPICS, *dead_letter_topics()]
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="mpp-topic-admin", **security.options()
    )
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


async def topic_partitions(
    bootstrap: str, topic: str, *, security: KafkaSecurity = PLAINTEXT
) -> list[TopicPartition]:
    """The partitions of ``topic`` (empty when the topic does not exist)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="mpp-topic-admin", **security.options()
    )
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    parts = [p["partition"] for d in described if d.get("error_code") == 0 for p in d["partitions"]]
    return [TopicPartition(topic, p) for p in sorted(parts)]
