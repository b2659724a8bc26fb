"""Run budgets: the ``quick`` profile (CPU: CI, laptops) and the ``full`` profile (a GPU).

Every chapter runs the same code under both budgets. It asks the profile how much data and how
many epochs to use, and prints the profile it runs under, so that a reader knows whether the
numbers on the page came from a 90-second CPU run or a longer GPU one.

The profile is ``full`` when a CUDA GPU is present and ``quick`` otherwise; the environment
variable ``COMPANION_PROFILE`` (``quick`` or ``full``) overrides the choice.

Chapters ask for two kinds of sizes. :meth:`Profile.pick` chooses sizes that checks and data
use (how many random configurations a check tries, how many images a figure shows);
:meth:`Profile.train` chooses training budgets (epochs, training-set sizes, seeds of an
experiment). With ``COMPANION_SHORT_TRAINING=1`` the ``full`` profile keeps its checks but trains
on the ``quick`` budgets, so that every check of the full profile runs on a CPU in minutes
(``make full-checks``).

Used by every chapter; introduced in the book's introduction.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")

PROFILES = ("quick", "full")
ENV_VAR = "COMPANION_PROFILE"
SHORT_TRAINING_VAR = "COMPANION_SHORT_TRAINING"


@dataclass(frozen=True)
class Profile:
    """A run budget.

    Attributes:
        name: ``"quick"`` or ``"full"``.
        device: where models train (``cuda`` when present, else ``cpu``).
        seed: the seed :func:`seed_everything` uses.
        short_training: train on the quick budgets even in the full profile (checks unchanged).
    """

    name: str
    device: torch.device
    seed: int = 0
    short_training: bool = False

    @property
    def quick(self) -> bool:
        return self.name == "quick"

    def pick(self, quick: T, full: T) -> T:
        """Return ``quick`` or ``full`` according to this profile, e.g. ``P.pick(quick=2, full=20)``."""
        return quick if self.quick else full

    def train(self, quick: T, full: T) -> T:
        """Return a training budget (epochs, training images, seeds): like :meth:`pick`, except that
        ``COMPANION_SHORT_TRAINING=1`` keeps the quick budget in the full profile."""
        return quick if (self.quick or self.short_training) else full

    def __str__(self) -> str:
        threads = torch.get_num_threads()
        where = (f"{self.device.type}, {threads} CPU threads" if self.device.type == "cpu"
                 else f"{torch.cuda.get_device_name(self.device)}")
        short = ", short training" if self.short_training and not self.quick else ""
        return f"profile: {self.name}{short} ({where})\n(set {ENV_VAR}=quick|full to override)"


def current(seed: int = 0, *, verbose: bool = True) -> Profile:
    """Pick the profile for this run, seed every generator, and (by default) print it.

    Raises:
        ValueError: when ``COMPANION_PROFILE`` is set to something other than quick or full.
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = os.environ.get(ENV_VAR, "").strip().lower() or ("full" if device.type == "cuda" else "quick")
    if name not in PROFILES:
        raise ValueError(f"{ENV_VAR} must be one of {PROFILES}, got {os.environ[ENV_VAR]!r}")
    short = os.environ.get(SHORT_TRAINING_VAR, "").strip().lower() in ("1", "true", "yes")
    profile = Profile(name=name, device=device, seed=seed, short_training=short)
    seed_everything(seed)
    if verbose:
        print(profile)
    return profile


def seed_everything(seed: int = 0) -> None:
    """Seed Python's, NumPy's and torch's generators so that a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
