"""The event catalogue of all five domains. Importing this package registers every payload class."""

from mpp.contracts.events import identity, licensing, notification, queue, reporting

__all__ = ["identity", "licensing", "notification", "queue", "reporting"]
