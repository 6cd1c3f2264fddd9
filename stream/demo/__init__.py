"""The seeded fintech demo: a scenario generator (:mod:`.scenario`) and the run of ``hotpath demo`` (:mod:`.run`;
its command line is :mod:`stream.commands.demo`).

The defaults live here, not in :mod:`.scenario`, so ``hotpath --help`` can show them without
importing the OpenTelemetry SDK that the scenario needs.
"""

DEFAULT_SEED = 7
DEFAULT_MINUTES = 10
MIN_MINUTES = 2
