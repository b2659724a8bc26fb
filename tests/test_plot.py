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


@pytest.fixture
def shown(monkeypatch):
    """The figures the helpers show, rendered as they would be in a notebook."""
    figures = []
    monkeypatch.setattr(plot, "show", lambda fig, alt: figures.append(plot.render(fig, alt)))
    return figures


def test_show_returns_nothing_so_a_cell_shows_each_figure_once():
    fig, _ = plt.subplots()
    assert plot.show(fig, alt="empty axes") is None
    assert not plt.get_fignums()


def test_grids_accept_the_usual_layouts(shown):
    for images in (torch.rand(5, 1, 8, 8), torch.rand(5, 3, 8, 8), torch.rand(5, 8, 8), [torch.rand(3, 8, 8)] * 2):
        plot.image_grid(images, alt="random images")
    plot.filters(torch.randn(6, 3, 3, 3), alt="filters")
    plot.feature_maps(torch.randn(1, 4, 8, 8), alt="maps")
    assert [f.alt for f in shown] == ["random images"] * 4 + ["filters", "maps"]
    assert all(f.png.startswith(b"\x89PNG") for f in shown)
    with pytest.raises(ValueError, match=r"\(N, 1 or 3, H, W\)"):
        plot.image_grid(torch.rand(2, 5, 8, 8), alt="x")
    with pytest.raises(ValueError, match="titles has 1 entries for 2 images"):
        plot.image_grid(torch.rand(2, 8, 8), alt="x", titles=["a"])
    with pytest.raises(ValueError, match=r"\(C_out, C_in, kH, kW\)"):
        plot.filters(torch.rand(3, 3, 3), alt="x")


def test_learning_curves_of_one_or_several_runs(shown):
    h = History(epoch=[1, 2], train_loss=[1.0, 0.5], train_acc=[0.5, 0.8], val_loss=[1.1, 0.7], val_acc=[0.4, 0.7])
    plot.learning_curves(h, alt="curves")
    plot.learning_curves({"a": h, "b": h}, alt="two runs")
    h.plot()
    assert [f.alt for f in shown][:2] == ["curves", "two runs"] and shown[2].alt.startswith("Learning curves")


def test_a_legend_of_long_run_names_wraps_into_more_rows_instead_of_widening_the_figure(shown):
    # Four columns of these labels are wider than the column in every matplotlib release; the
    # figure used to come out 6.90 in wide with Colab's matplotlib (chapter 3's three runs).
    h = History(epoch=[1, 2], train_loss=[1.0, 0.5], train_acc=[0.5, 0.8], val_loss=[1.1, 0.7], val_acc=[0.4, 0.7])
    # Names of every length, so that some legend falls just short of the column and its saved
    # padding would push it over.
    for length in range(4, 40, 3):
        runs = {f"{i}" * length: h for i in range(3)}
        plot.learning_curves(runs, alt=f"three runs with names of {length} characters")
    for figure in shown:
        assert figure.size[0] <= plot.COLUMN_WIDTH * plot.PX_PER_INCH * plot.SCALE + 1


def test_figures_are_made_at_the_column_width_and_drawn_at_twice_the_resolution():
    fig, ax = plot.subplots(height=2.0)
    ax.plot([0, 1], [1, 0])
    ax.set_xlabel("x")
    figure = plot.render(fig, alt="a line")
    width, height = figure.size
    assert plot.COLUMN_WIDTH * plot.PX_PER_INCH * 1.5 < width <= plot.COLUMN_WIDTH * plot.PX_PER_INCH * plot.SCALE
    assert f'width="{width // plot.SCALE}"' in figure._repr_html_()


def test_a_figure_wider_than_the_column_is_refused():
    fig, _ = plt.subplots(figsize=(12, 3))
    with pytest.raises(ValueError, match=r"12.00 in wide, wider than the book's column \(6.88 in\)"):
        plot.render(fig, alt="too wide")
    assert not plt.get_fignums()
    with pytest.raises(TypeError, match="give height="):
        plot.subplots(figsize=(3, 3))


def test_text_smaller_than_the_minimum_is_refused():
    fig, ax = plot.subplots()
    ax.set_title("tiny title", fontsize=6)
    with pytest.raises(ValueError, match="'tiny title' is 6 pt"):
        plot.render(fig, alt="small text")
    fig, ax = plot.subplots()
    ax.text(0.5, 0.5, "readable", fontsize=plot.MIN_FONT_PT)
    plot.render(fig, alt="9 pt text")


def test_a_legend_sticking_far_out_of_the_column_is_refused():
    fig, ax = plot.subplots()
    ax.plot([0, 1], label="a label long enough to push the figure out of the column " * 2)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    with pytest.raises(ValueError, match="drawn, the figure is"):
        plot.render(fig, alt="legend outside")


def test_image_grids_fit_the_column(shown):
    plot.image_grid(torch.rand(16, 1, 8, 8), alt="sixteen images", ncols=16, scale=2.0)
    assert shown[-1].size[0] <= plot.COLUMN_WIDTH * plot.PX_PER_INCH * plot.SCALE


def test_a_label_sticking_out_a_little_narrows_the_figure_instead_of_shrinking_it():
    fig, ax = plot.subplots()
    ax.plot([0, 1], [0, 1e7])
    ax.set_ylabel("a label")
    ax.text(1.01, 0.5, "a longer note", transform=ax.transAxes)  # outside the axes: about 7.0 in drawn
    figure = plot.render(fig, alt="a line with a note outside the axes")
    assert plot.COLUMN_WIDTH - 0.2 < figure.size[0] / (plot.PX_PER_INCH * plot.SCALE) <= plot.COLUMN_WIDTH + 0.005
