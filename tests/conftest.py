"""Suite-wide set-up: funcnn imported first, and the Hypothesis settings profiles.

* ``default`` (what a plain ``python -m pytest`` uses): Hypothesis' own
  defaults (100 examples, example database in ``.hypothesis/``) but without a
  per-example deadline: MLX's first calls of an op compile kernels, so a
  wall-clock deadline only produces flaky ``DeadlineExceeded`` errors.
* ``long``: thousands of examples, for a soak run of the property-based tests
  of random module structures and operation sequences::

      python -m pytest tests/test_module_sequences.py --hypothesis-profile=long

  (add ``-x`` to stop at the first failure; it is shrunk and replayed from the
  database on the next run).
* ``ci``: Hypothesis' built-in profile (derandomized, no database), loaded
  automatically when a CI environment is detected; left as it is.

A test's own ``@settings(max_examples=...)`` overrides the profile, so the
small, fixed-size hypothesis tests of the other files stay as fast as they are
under every profile; ``tests/test_module_sequences.py`` hard-codes no example
count and therefore follows the profile (100 examples by default).
"""

from __future__ import annotations

# Before any test module imports mlx.core: the suite runs on the BLAS users get by
# default (funcnn loads OpenBLAS where it can; tests/test_blas.py covers both settings).
import funcnn  # noqa: F401
from hypothesis import HealthCheck, settings

settings.register_profile("default", parent=settings.get_profile("default"), deadline=None)
settings.register_profile(
    "long",
    parent=settings.get_profile("default"),
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
