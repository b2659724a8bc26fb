"""The chapters read well on a laptop and a phone: a lint of the notebooks' sources.

What a reader sees in the rendered book follows from the notebook's source, so these rules are
checked on the source, before anything runs:

- code lines fit the book's column (79 characters), so no code cell scrolls sideways;
- markdown has no control characters (a ``\\t`` typed into ``\\times`` renders as "imes");
- tables are displayed as tables (a pandas ``DataFrame``), never printed as text;
- every figure goes through ``companion.plot`` with alt text, is made at most as wide as the
  column, and keeps its long alt text out of the visible code (in a cell tagged ``remove-cell``).

The rendered pages themselves are checked in a browser by ``tests/test_book_browser.py``.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from companion import plot

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("part*/*.ipynb"))
MAX_LINE = 79
MAX_VISIBLE_ALT = 60  # characters of a literal alt text allowed in a visible code cell
FIGURE_CALLS = {"show", "image_grid", "filters", "feature_maps", "learning_curves"}
HIDDEN_TAGS = {"remove-cell", "remove-input"}
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")  # a tab too, as in "\\times" typed as "\times"


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def _python(source: str) -> str:
    """The cell's source with IPython magics (``%pip ...``) replaced by ``pass``."""
    return "\n".join(line[: len(line) - len(line.lstrip())] + "pass"
                     if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines())


def _long_lines(cells: list[dict]) -> list[str]:
    return [f"cell {i}: {len(line)} chars: {line[:50]}..."
            for i, cell in enumerate(cells) if cell["cell_type"] == "code"
            for line in _source(cell).splitlines() if len(line) > MAX_LINE]


def _control_characters(cells: list[dict]) -> list[str]:
    return [f"cell {i}: {match.group()!r} in ...{_source(cell)[max(0, match.start() - 20):match.end() + 20]!r}"
            for i, cell in enumerate(cells) if cell["cell_type"] == "markdown"
            for match in CONTROL.finditer(_source(cell))]


def _string_value(node: ast.AST) -> str | None:
    """The text of a string literal or f-string (its literal parts), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant))
    return None


def _printed_tables(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name in ("to_markdown", "to_string", "tabulate"):
            found.append(f"line {node.lineno}: {name}() prints a table as text; display the DataFrame")
        if name == "print":
            for arg in node.args:
                text = _string_value(arg) or ""
                if text.lstrip().startswith("|") or "|---" in text or "---|" in text:
                    found.append(f"line {node.lineno}: a markdown table printed as text")
    return found


def _figure_problems(tree: ast.AST, visible: bool) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = getattr(func.value, "id", "") if isinstance(func, ast.Attribute) else ""
        if name == "show" and owner in ("plt", "fig"):
            found.append(f"line {node.lineno}: {owner}.show(); show figures with companion.plot")
        if name == "display" and any(getattr(a, "id", "").startswith("fig") for a in node.args):
            found.append(f"line {node.lineno}: display(fig); show figures with companion.plot")
        if owner == "plot" and name in FIGURE_CALLS:
            alt = next((k.value for k in node.keywords if k.arg == "alt"), None)
            if alt is None:
                found.append(f"line {node.lineno}: plot.{name}() without alt=")
            text = _string_value(alt) if alt is not None else None
            if visible and text is not None and len(text) > MAX_VISIBLE_ALT:
                found.append(f"line {node.lineno}: a {len(text)}-character alt text in the visible code; "
                             "define it in a cell tagged remove-cell and pass the name")
        for keyword in node.keywords:
            if keyword.arg == "figsize" and isinstance(keyword.value, ast.Tuple):
                width = keyword.value.elts[0]
                if isinstance(width, ast.Constant) and isinstance(width.value, (int, float)) \
                        and width.value > plot.COLUMN_WIDTH:
                    found.append(f"line {node.lineno}: figsize width {width.value} in, wider than the "
                                 f"{plot.COLUMN_WIDTH} in column (use plot.subplots or plot.COLUMN_WIDTH)")
    return found


def lint(path: Path) -> list[str]:
    """Every problem the rules above find in one notebook, as readable lines."""
    cells = _cells(path)
    problems = _long_lines(cells) + _control_characters(cells)
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        try:
            tree = ast.parse(_python(_source(cell)))
        except SyntaxError as error:
            problems.append(f"cell {i}: does not parse: {error}")
            continue
        visible = not HIDDEN_TAGS & set(cell.get("metadata", {}).get("tags", []))
        problems += [f"cell {i}: {p}" for p in _printed_tables(tree) + _figure_problems(tree, visible)]
    return problems


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_reads_well(path):
    problems = lint(path)
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def _notebook(tmp_path: Path, *cells: tuple[str, str, list[str]]) -> Path:
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": [
        {"cell_type": kind, "metadata": {"tags": tags}, "source": source,
         **({"outputs": [], "execution_count": None} if kind == "code" else {})}
        for kind, source, tags in cells]}))
    return path


def test_the_lint_catches_each_problem(tmp_path):
    long_alt = "A long description of the figure, " * 3
    bad = _notebook(
        tmp_path,
        ("markdown", "a $28\t imes 28$ image", []),
        ("code", "x = 1  # " + "a" * 80, []),
        ("code", "print(df.to_markdown())\nprint('| a | b |')\nprint(f'|---|{x}|')", []),
        ("code", "plt.show()\nplot.show(fig)\nfig, ax = plt.subplots(figsize=(12, 3))", []),
        ("code", f"plot.show(fig, alt={long_alt!r})", []),
    )
    problems = "\n".join(lint(bad))
    for expected in ("cell 0: '\\t'", "cell 1: 89 chars", "to_markdown() prints a table",
                     "cell 2: line 2: a markdown table", "cell 2: line 3: a markdown table",
                     "plt.show()", "plot.show() without alt=", "figsize width 12",
                     "alt text in the visible code"):
        assert expected in problems, expected
    good = _notebook(
        tmp_path,
        ("code", "ALT = (\n" + "".join(f"    {part!r}\n" for part in long_alt.split(", ")) + ")",
         ["remove-cell"]),
        ("code", "%pip install -q something\nfig, ax = plot.subplots()\nplot.show(fig, alt=ALT)\n"
                 "pd.DataFrame(rows)", []),
    )
    assert lint(good) == []
