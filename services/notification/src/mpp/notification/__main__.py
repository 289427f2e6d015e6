"""``python -m mpp.notification`` runs the notification service."""

from mpp.kit.serve import main
from mpp.notification.app import create_app
from mpp.notification.config import NotificationSettings

if __name__ == "__main__":
    main("notification", NotificationSettings, create_app)
