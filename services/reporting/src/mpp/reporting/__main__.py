"""``python -m mpp.reporting`` runs the reporting service (projector and JSON API)."""

from mpp.kit.serve import main
from mpp.reporting.app import create_app
from mpp.reporting.config import ReportingSettings

if __name__ == "__main__":
    main("reporting", ReportingSettings, create_app)
