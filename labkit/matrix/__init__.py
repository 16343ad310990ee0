"""``labkit matrix``: axes vary a base topology; every combination (a cell) runs as a real lab.

The data flows one way, one module per step:

    MATRIX.yaml → spec (load + validate) → cells (product − exclusions, patched topologies,
    validated, written as directories) → run (one pytest session over the cells, pytest-xdist,
    the VM sandbox when needed) → results (JUnit per cell, versions) → report (HTML + JUnit)

``export`` turns the matrix into a CI system's own job matrix and merges the jobs' results.
"""

from .spec import MatrixError, load_matrix

__all__ = ["MatrixError", "load_matrix"]
