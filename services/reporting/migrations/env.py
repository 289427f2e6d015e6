from mpp.kit.migrations import run_env
from mpp.reporting.persistence.tables import metadata

run_env(metadata)
