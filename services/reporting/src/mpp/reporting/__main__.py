"""``python -m mpp.reporting`` runs the reporting service (projector and JSON API)."""

from mpp.kit.serve import serve
from mpp.reporting.app import create_app
from mpp.reporting.config import ReportingSettings

if __name__ == "__main__":
    settings = ReportingSettings()
    serve(create_app(settings), settings)
