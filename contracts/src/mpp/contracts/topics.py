"""The topic registry: every topic, its key, partitions, retention, owner, and every consumer group.

Domain event topics keep their events forever (``retention_ms=-1``): the reporting service rebuilds
its read models from the beginning of the log. Topics holding the latest state per key are compacted.
Each consumer group has its own dead-letter topic, ``<group>.dlq``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

FOREVER = -1
DAYS = 24 * 3600 * 1000


class TopicSpec(BaseModel):
    """One Kafka topic of the platform."""

    model_config = ConfigDict(frozen=True)

    name: str
    key: str = Field(
        description="What the record key holds (the aggregate id keeps one entity's events ordered)."
    )
    partitions: int = Field(ge=1)
    cleanup_policy: Literal["delete", "compact"] = "delete"
    retention_ms: int = Field(default=FOREVER, description="-1 keeps records forever.")
    owner: str = Field(description="The only service that publishes to this topic.")
    personal_data: bool = Field(
        default=False, description="Carries personal data; only its listed readers may consume it."
    )
    description: str = ""

    def config(self) -> dict[str, str]:
        """Topic-level configuration for creating the topic."""
        return {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}


class ConsumerGroup(BaseModel):
    """A consumer group, the topics it reads and its dead-letter topic."""

    model_config = ConfigDict(frozen=True)

    group_id: str
    service: str
    topics: tuple[str, ...]

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.group_id}.dlq"


IDENTITY_DOCUMENT_APPLICATIONS = "mpp.identity.document-applications"
IDENTITY_VERIFICATION_REQUESTS = "mpp.identity.verification-requests"
IDENTITY_VERIFICATION_RESULTS = "mpp.identity.verification-results"
LICENSING_APPLICATIONS = "mpp.licensing.applications"
QUEUE_VISITS = "mpp.queue.visits"
QUEUE_APPOINTMENTS = "mpp.queue.appointments"
QUEUE_COUNTERS = "mpp.queue.counters"
QUEUE_SURVEYS = "mpp.queue.surveys"
QUEUE_COMPLAINTS = "mpp.queue.complaints"
NOTIFICATION_CONTACTS = "mpp.notification.contacts"
NOTIFICATION_DELIVERIES = "mpp.notification.deliveries"
REPORTING_DAILY_SUMMARIES = "mpp.reporting.daily-summaries"

TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        name=IDENTITY_DOCUMENT_APPLICATIONS,
        key="document application id",
        partitions=6,
        owner="identity",
        description="Civil registry document applications (KTP-el, KK, akta) and issued documents.",
    ),
    TopicSpec(
        name=IDENTITY_VERIFICATION_REQUESTS,
        key="verification request id",
        partitions=3,
        owner="any agency service",
        personal_data=True,
        retention_ms=30 * DAYS,
        description="NIK verification requests from agencies; read only by the identity service.",
    ),
    TopicSpec(
        name=IDENTITY_VERIFICATION_RESULTS,
        key="verification request id",
        partitions=3,
        owner="identity",
        description="Answers to verification requests, carrying pseudonymous citizen references only.",
    ),
    TopicSpec(
        name=LICENSING_APPLICATIONS,
        key="application id",
        partitions=6,
        owner="licensing",
        description="Permit application lifecycle and issued or revoked permits.",
    ),
    TopicSpec(
        name=QUEUE_VISITS,
        key="visit id",
        partitions=6,
        owner="queue",
        description="Visits and their tickets.",
    ),
    TopicSpec(
        name=QUEUE_APPOINTMENTS,
        key="appointment id",
        partitions=3,
        owner="queue",
        description="Online appointments.",
    ),
    TopicSpec(
        name=QUEUE_COUNTERS,
        key="counter id",
        partitions=3,
        owner="queue",
        description="Counters opened and closed.",
    ),
    TopicSpec(
        name=QUEUE_SURVEYS,
        key="survey id",
        partitions=3,
        owner="queue",
        description="Anonymous SKM survey answers.",
    ),
    TopicSpec(
        name=QUEUE_COMPLAINTS,
        key="complaint id",
        partitions=3,
        owner="queue",
        description="Complaints (SP4N-LAPOR).",
    ),
    TopicSpec(
        name=NOTIFICATION_CONTACTS,
        key="citizen reference",
        partitions=3,
        cleanup_policy="compact",
        owner="any agency service",
        personal_data=True,
        description="Citizens' contact details and consent; read only by the notification service.",
    ),
    TopicSpec(
        name=NOTIFICATION_DELIVERIES,
        key="notification id",
        partitions=3,
        owner="notification",
        retention_ms=90 * DAYS,
        description="Notification outcomes, without contact details.",
    ),
    TopicSpec(
        name=REPORTING_DAILY_SUMMARIES,
        key="site code and date",
        partitions=3,
        cleanup_policy="compact",
        owner="reporting",
        description="One MPP site's aggregated day, for the national roll-up (a republished day replaces).",
    ),
)

DOMAIN_TOPICS = tuple(t.name for t in TOPICS if not t.personal_data)

CONSUMER_GROUPS: tuple[ConsumerGroup, ...] = (
    ConsumerGroup(group_id="mpp.reporting.projector", service="reporting", topics=DOMAIN_TOPICS),
    ConsumerGroup(group_id="mpp.reporting.rollup", service="reporting", topics=(REPORTING_DAILY_SUMMARIES,)),
    ConsumerGroup(
        group_id="mpp.identity.verifier",
        service="identity",
        topics=(IDENTITY_VERIFICATION_REQUESTS,),
    ),
    ConsumerGroup(
        group_id="mpp.licensing.verification-results",
        service="licensing",
        topics=(IDENTITY_VERIFICATION_RESULTS,),
    ),
    ConsumerGroup(
        group_id="mpp.notification.dispatcher",
        service="notification",
        topics=(
            NOTIFICATION_CONTACTS,
            IDENTITY_DOCUMENT_APPLICATIONS,
            LICENSING_APPLICATIONS,
            QUEUE_VISITS,
            QUEUE_APPOINTMENTS,
            QUEUE_COMPLAINTS,
        ),
    ),
)

DEAD_LETTER_PARTITIONS = 1
DEAD_LETTER_RETENTION_MS = 30 * DAYS
PERSONAL_DEAD_LETTER_RETENTION_MS = 3 * DAYS


def topic(name: str) -> TopicSpec:
    """The registered topic called ``name``."""
    for spec in TOPICS:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown topic {name!r}")


def consumer_group(group_id: str) -> ConsumerGroup:
    for group in CONSUMER_GROUPS:
        if group.group_id == group_id:
            return group
    raise KeyError(f"unknown consumer group {group_id!r}")


def dead_letter_topics() -> tuple[TopicSpec, ...]:
    """The dead-letter topic of every consumer group.

    A group that reads personal data keeps its dead letters (which may hold that data) only for
    ``PERSONAL_DEAD_LETTER_RETENTION_MS``: long enough to fix and replay, no longer.
    """
    personal = {t.name for t in TOPICS if t.personal_data}
    specs = []
    for g in CONSUMER_GROUPS:
        holds_personal = any(name in personal for name in g.topics)
        specs.append(
            TopicSpec(
                name=g.dead_letter_topic,
                key="original key",
                partitions=DEAD_LETTER_PARTITIONS,
                retention_ms=PERSONAL_DEAD_LETTER_RETENTION_MS
                if holds_personal
                else DEAD_LETTER_RETENTION_MS,
                owner=g.service,
                personal_data=holds_personal,
                description=f"Dead letters of consumer group {g.group_id}, with the reason in headers.",
            )
        )
    return tuple(specs)
