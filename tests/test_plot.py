from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch

from companion import plot
from companion.train import History


def test_render_carries_alt_text_into_html():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    figure = plot.render(fig, alt='A falling line, "from 1 to 0"')
    assert figure.png.startswith(b"\x89PNG")
    html = figure._repr_html_()
    assert 'alt="A falling line, &quot;from 1 to 0&quot;"' in html and html.startswith("<img")
    assert not plt.get_fignums()  # the figure was closed


def test_alt_text_is_required():
    fig, _ = plt.subplots()
    with pytest.raises(ValueError, match="alt must be a non-empty description"):
        plot.render(fig, alt="  ")
    plt.close(fig)


def test_grids_accept_the_usual_layouts():
    for images in (torch.rand(5, 1, 8, 8), torch.rand(5, 3, 8, 8), torch.rand(5, 8, 8), [torch.rand(3, 8, 8)] * 2):
        assert plot.image_grid(images, alt="random images").alt == "random images"
    assert plot.filters(torch.randn(6, 3, 3, 3), alt="filters").png
    assert plot.feature_maps(torch.randn(1, 4, 8, 8), alt="maps").png
    with pytest.raises(ValueError, match=r"\(N, 1 or 3, H, W\)"):
        plot.image_grid(torch.rand(2, 5, 8, 8), alt="x")
    with pytest.raises(ValueError, match="titles has 1 entries for 2 images"):
        plot.image_grid(torch.rand(2, 8, 8), alt="x", titles=["a"])
    with pytest.raises(ValueError, match=r"\(C_out, C_in, kH, kW\)"):
        plot.filters(torch.rand(3, 3, 3), alt="x")


def test_learning_curves_of_one_or_several_runs():
    h = History(epoch=[1, 2], train_loss=[1.0, 0.5], train_acc=[0.5, 0.8], val_loss=[1.1, 0.7], val_acc=[0.4, 0.7])
    assert plot.learning_curves(h, alt="curves").png
    assert plot.learning_curves({"a": h, "b": h}, alt="two runs").alt == "two runs"
