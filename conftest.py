"""Collection at the project root: the optional aeon module's doctests need aeon (the aeon
extra's environment, .ci/run's third step, runs them)."""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("aeon") else ["latticeprune/aeon_estimators.py"]
