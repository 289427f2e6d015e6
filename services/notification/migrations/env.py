from mpp.kit.migrations import run_env
from mpp.notification.persistence.tables import metadata

run_env(metadata)
