"""Moved: the ``dspy-turbo top`` dashboard is ``dspy_turbo_prometheus.dashboard``
(``pip install dspy-turbo-prometheus``). This path works for one more release, with a
DeprecationWarning."""

from ._moved import moved_module

moved_module(__name__, "dspy_turbo_prometheus.dashboard", "dspy-turbo-prometheus")
