from mpp.identity.persistence.tables import metadata
from mpp.kit.migrations import run_env

run_env(metadata)
