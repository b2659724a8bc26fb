"""The ``grade`` extra: what authoring and batch grading need beyond a learner's install.

Learners' check cells (:mod:`companion.grade.exercise`) need only the companion's own
requirements. Building the exercise notebooks (``python -m companion.grade.build``, otter assign)
and grading a folder of submissions (``python -m companion.grade``) also need otter-grader and the
notebook tools it brings (nbformat, IPython), installed with ``pip install "dlcv-companion[grade]"``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

#: The command that installs what the instructor's tools need.
INSTALL = 'pip install "dlcv-companion[grade]"'


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or blocked package counts as missing
        return False


def require(purpose: str, modules: Sequence[str] = ("otter", "nbformat", "IPython")) -> None:
    """Raise a clear error when a module of the ``grade`` extra is missing.

    Raises:
        ModuleNotFoundError: naming the missing modules, ``purpose`` and :data:`INSTALL`.
    """
    missing = [name for name in modules if not _installed(name)]
    if missing:
        raise ModuleNotFoundError(f"{purpose} needs {', '.join(missing)}, which the companion installs only "
                                  f"with its grade extra: {INSTALL}", name=missing[0])


__all__ = ["INSTALL", "require"]
