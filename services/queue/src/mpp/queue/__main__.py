"""``python -m mpp.queue`` runs the queue service."""

from mpp.kit.serve import main
from mpp.queue.app import create_app
from mpp.queue.config import QueueSettings

if __name__ == "__main__":
    main("queue", QueueSettings, create_app)
