"""``python -m mpp.reporting`` runs the reporting service (projector and JSON API);
``python -m mpp.reporting rebuild`` empties the read models and replays every topic into them."""

from __future__ import annotations

import argparse
import asyncio
import sys

from mpp.kit.serve import main


def _rebuild(argv: list[str]) -> int:
    from prometheus_client import CollectorRegistry, start_http_server

    from mpp.kit.observability import configure_logging
    from mpp.reporting.app import catalogue_of, projector_factory
    from mpp.reporting.config import ReportingSettings
    from mpp.reporting.projection_metrics import ProjectionMetrics
    from mpp.reporting.rebuild import RebuildRefused, rebuild

    parser = argparse.ArgumentParser(
        prog="python -m mpp.reporting rebuild",
        description="Empty the reporting read models and replay every projected topic into them, from the "
        "start of each partition to its end when the rebuild began. Run it while the service's projector "
        "is stopped (MPP_REPORTING_CONSUMER_ENABLED=false keeps the API serving meanwhile).",
    )
    parser.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus /metrics on this port"
    )
    parser.add_argument("--max-records", type=int, default=None, help="records per batch and transaction")
    parser.add_argument("--progress-every", type=float, default=1.0, help="seconds between progress lines")
    args = parser.parse_args(argv)
    settings = ReportingSettings()
    configure_logging(settings.service_name, "WARNING", settings.log_json)
    registry = CollectorRegistry()
    metrics = ProjectionMetrics(registry)
    if args.metrics_port is not None:
        start_http_server(args.metrics_port, addr=settings.http_host, registry=registry)
    try:
        asyncio.run(
            rebuild(
                settings,
                projector_factory(
                    catalogue_of(settings), settings.published_sites if settings.site_mode else frozenset()
                ),
                metrics=metrics,
                max_records=args.max_records or settings.rebuild_max_records,
                progress_every_s=args.progress_every,
            )
        )
    except RebuildRefused as exc:
        print(f"rebuild refused: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["rebuild"]:
        raise SystemExit(_rebuild(sys.argv[2:]))
    from mpp.reporting.app import create_app
    from mpp.reporting.config import ReportingSettings

    main("reporting", ReportingSettings, create_app)
