"""``python -m mpp.licensing`` runs the licensing service (HTTP, outbox relay)."""

from mpp.kit.serve import main
from mpp.licensing.app import create_app
from mpp.licensing.config import LicensingSettings

if __name__ == "__main__":
    main("licensing", LicensingSettings, create_app)
