"""``python -m mpp.queue`` runs the queue service."""

from mpp.kit.serve import serve
from mpp.queue.app import create_app
from mpp.queue.config import QueueSettings

if __name__ == "__main__":
    settings = QueueSettings()
    serve(create_app(settings), settings)
