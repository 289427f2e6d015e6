from mpp.kit.migrations import run_env
from mpp.licensing.persistence.tables import metadata

run_env(metadata)
