from mpp.kit.migrations import run_env
from mpp.queue.persistence.tables import metadata

run_env(metadata)
