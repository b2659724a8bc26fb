"""Shared fixtures: small real data, loaded once per session, and the framework-as-oracle comparison."""

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


@pytest.fixture(scope="session")
def same_function():
    """``same_function(ours, theirs, x)``: equal outputs, and equal input gradients for one random upstream
    gradient (backpropagated through both, so parameter gradients can be compared afterwards); returns ours(x)."""

    def check(ours, theirs, x: torch.Tensor, **tolerance) -> torch.Tensor:
        x1, x2 = x.detach().clone().requires_grad_(), x.detach().clone().requires_grad_()
        out, expected = ours(x1), theirs(x2)
        torch.testing.assert_close(out, expected, **tolerance)
        w = torch.randn_like(out)
        (out * w).sum().backward()
        (expected * w).sum().backward()
        torch.testing.assert_close(x1.grad, x2.grad, **tolerance)
        return out

    return check
