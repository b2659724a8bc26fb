"""Shared fixtures: small real data, loaded once per session."""

from __future__ import annotations

import pytest
import torch

from companion import data


@pytest.fixture(scope="session")
def fashion_small() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """3,000 Fashion-MNIST training images and 1,000 test images as tensors."""
    x_train, y_train = data.tensors(data.fashion_mnist(train=True), limit=3000)
    x_test, y_test = data.tensors(data.fashion_mnist(train=False), limit=1000)
    return x_train, y_train, x_test, y_test
