"""Run a service module with an on-demand cProfile, for ``tools.bench --profile``.

``python -m tools.bench_profile_server OUTPUT.pstats mpp.licensing``

Runs the module as ``python -m MODULE`` would. SIGUSR1 starts profiling (CPU time of the main thread,
where uvicorn runs the event loop), SIGUSR2 stops it and writes OUTPUT.pstats. Until SIGUSR1 the
process runs unprofiled, so start-up and warm-up stay out of the profile.
"""

from __future__ import annotations

import cProfile
import os
import runpy
import signal
import sys
import time
from types import FrameType


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    output, module = sys.argv[1], sys.argv[2]
    profiler = cProfile.Profile(time.process_time)

    def start(_sig: int, _frame: FrameType | None) -> None:
        profiler.enable()

    def stop(_sig: int, _frame: FrameType | None) -> None:
        profiler.disable()
        profiler.dump_stats(output + ".tmp")
        os.replace(output + ".tmp", output)  # appears complete or not at all

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    sys.argv = [module]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
