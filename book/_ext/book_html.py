"""Three fixes to the book's HTML: MathJax served with the book, no script included twice, and
bibliography labels that read like the citations in the text.

**Maths offline.**
Sphinx loads MathJax from a CDN by default: offline (a learner's ``make book`` on a train, CI) every
equation of such a book stays raw TeX. The ``django-static-mathjax`` wheel (pinned in
``requirements-lock.txt``) ships MathJax 3's files; this extension copies the parts the book uses
(the TeX-to-HTML component, its fonts, the TeX extensions it loads on demand) into the built
book's ``_static/mathjax/``, where ``mathjax_path`` in ``_config.yml`` points.

**Each script once.** sphinx-thebe registers its inline configuration script twice under Jupyter
Book 1.x, and every page then logs ``SyntaxError: Identifier 'THEBE_JS_URL' has already been
declared``. Each page keeps the first of identical scripts.

**Author-year labels.** The text cites "He et al., 2016a" (``bibtex_reference_style:
author_year``); the bibliography's default labels would read "[HZRS16a]". The
``book_author_year`` style labels each entry the way the text cites it.
"""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path

import pybtex.plugin
from pybtex.richtext import Text
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from sphinx.application import Sphinx

PARTS = ("tex-chtml.js", "output/chtml/fonts/woff-v2", "input/tex/extensions")


def _mathjax_source() -> Path:
    try:
        return Path(str(files("mathjax"))) / "static" / "mathjax" / "es5"
    except ModuleNotFoundError as error:
        raise RuntimeError("MathJax is missing: pip install django-static-mathjax "
                           "(make book installs it from requirements-lock.txt)") from error


def copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    """After an HTML build, copy MathJax next to the pages (``_static/mathjax``)."""
    if exception is not None or app.builder.format != "html":
        return
    source, target = _mathjax_source(), Path(app.outdir) / "_static" / "mathjax"
    for part in PARTS:
        if (source / part).is_dir():
            shutil.copytree(source / part, target / part, dirs_exist_ok=True)
        else:
            (target / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / part, target / part)


def drop_duplicate_scripts(app: Sphinx, pagename: str, templatename: str, context: dict,
                           doctree: object) -> None:
    """Keep the first of identical ``<script>`` entries of a page (same file, same body)."""
    seen, kept = set(), []
    for script in context.get("script_files", []):
        # An inline script is registered once with filename None and once with "".
        key = (script.filename or "", tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    # In place: handlers after this one (MathJax's) add their scripts to the same list.
    context["script_files"][:] = kept


def _surname(person) -> str:
    return str(Text.from_latex(" ".join(person.last_names)))


class AuthorYearLabels(BaseLabelStyle):
    """Labels as the text cites: "Zhang, 2019", "Amidi and Amidi, 2018", "He et al., 2016a"."""

    def format_labels(self, sorted_entries):
        for entry in sorted_entries:
            persons = entry.persons.get("author") or entry.persons.get("editor") or []
            names = [_surname(p) for p in persons[:2]]
            who = (names[0] if len(persons) == 1 else " and ".join(names) if len(persons) == 2
                   else f"{names[0]} et al." if persons else entry.key)
            yield f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearStyle(UnsrtStyle):
    """``unsrt`` entries, sorted by author and year, labelled by :class:`AuthorYearLabels`."""

    default_label_style = AuthorYearLabels
    default_sorting_style = "author_year_title"


def setup(app: Sphinx) -> dict:
    pybtex.plugin.register_plugin("pybtex.style.formatting", "book_author_year", AuthorYearStyle)
    _mathjax_source()  # fail early, with the fix, when the wheel is missing
    app.connect("build-finished", copy_mathjax)
    # Early: a later handler that returns a template name ends the event for the rest.
    app.connect("html-page-context", drop_duplicate_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
