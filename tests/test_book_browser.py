"""The rendered book, read in a real browser on a laptop and on a phone, offline.

The book is built without executing the notebooks (the pages' text, code, maths and links are
what is checked; ``make book`` builds the executed book) and served on 127.0.0.1. Headless
Chromium (Debian's ``chromium`` and ``chromium-driver``, which ``make test`` installs as root)
opens every page at 390x844 (a phone) and 1280x900 (a laptop), with every host but 127.0.0.1
unresolvable, and checks that

- nothing widens the page: no horizontal page scroll, and no element sticks out of the viewport
  unless it sits in a box that scrolls by itself (a code cell, a wide table);
- MathJax, served with the book, typesets every equation with no error and no network;
- no script fails (a duplicate declaration, a missing file);
- every internal link and its anchor resolve (checked on the HTML files);
- every chapter links to its exercise notebook (GitHub and Colab) and to the previous and the
  next page.
"""

from __future__ import annotations

import functools
import html.parser
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest
import yaml

import companion

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SIZES = ((390, 844), (1280, 900))
HOW_TO_INSTALL = ("headless Chromium is missing: run 'make test' as root (it installs Debian's "
                  "chromium and chromium-driver) or 'sudo apt-get install chromium chromium-driver'")

if not (CHROMIUM and CHROMEDRIVER):
    if os.environ.get("CI"):
        pytest.fail(HOW_TO_INSTALL, pytrace=False)
    pytest.skip(HOW_TO_INSTALL, allow_module_level=True)

from selenium import webdriver  # noqa: E402  (only once the browser is known to be there)
from selenium.webdriver.chrome.service import Service  # noqa: E402


def _toc_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]


PAGES = _toc_pages()
CHAPTERS = [p for p in PAGES if p.startswith("book/part")]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The book built without execution; the folder of its HTML."""
    out = tmp_path_factory.mktemp("book")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    config["sphinx"]["local_extensions"] = {name: str(ROOT / path)
                                            for name, path in config["sphinx"]["local_extensions"].items()}
    config_file = out / "_config.yml"
    config_file.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT), "--all", "--config",
         str(config_file), "--path-output", str(out), "--builder", "html", "-W", "--keep-going"],
        capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return out / "_build" / "html"


@pytest.fixture(scope="module")
def server(site):
    """The built book served on 127.0.0.1 (MathJax's fonts need http, not file://)."""
    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=site))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def make_driver() -> webdriver.Chrome:
    """Headless Chromium that can reach 127.0.0.1 only (also used by benchmarks/reading.py)."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-extensions", "--hide-scrollbars",
                     # No network: every host but the local server is unresolvable.
                     "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(30)
    return driver


@pytest.fixture(scope="module")
def browser():
    driver = make_driver()
    yield driver
    driver.quit()


# Elements that stick out of the viewport without a scrolling box around them.
WIDENERS = """
const limit = document.documentElement.clientWidth + 1;
const clipped = (e) => {
  for (let a = e.parentElement; a; a = a.parentElement) {
    const o = getComputedStyle(a).overflowX;
    if (o === 'auto' || o === 'scroll' || o === 'hidden' || o === 'clip') return true;
  }
  return false;
};
return [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > limit && !clipped(e))
  .filter(e => ![...e.children].some(c => c.getBoundingClientRect().right > limit))
  .slice(0, 5)
  .map(e => `<${e.tagName.toLowerCase()} class="${e.className}">` +
            (e.textContent || '').trim().slice(0, 60));
"""

MATH = """
const done = arguments[arguments.length - 1];
const report = () => done({
  version: window.MathJax ? MathJax.version : null,
  maths: document.querySelectorAll('span.math, div.math').length,
  typeset: document.querySelectorAll('mjx-container').length,
  errors: [...document.querySelectorAll('mjx-merror')].map(e => e.textContent.slice(0, 80)),
  remote: performance.getEntriesByType('resource').map(r => r.name)
            .filter(n => !n.startsWith(location.origin)),
});
const start = Date.now();
(function wait() {  // MathJax loads after the page: wait for it, then for its typesetting
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    MathJax.startup.promise.then(report).catch(error => done({error: String(error)}));
  } else if (!document.querySelector('script[src*="mathjax"]') || Date.now() - start > 20000) {
    report();
  } else {
    setTimeout(wait, 50);
  }
})();
"""


def _page_url(server: str, page: str) -> str:
    return urljoin(server, page + ".html")


@pytest.mark.parametrize("width,height", SIZES, ids=lambda v: str(v))
def test_pages_fit_the_screen_typeset_offline_and_run_cleanly(browser, server, width, height):
    browser.set_window_size(width, height)
    problems = []
    for page in PAGES:
        browser.get(_page_url(server, page))
        maths = browser.execute_async_script(MATH)
        if maths.get("error") or maths["errors"] or maths["typeset"] < maths["maths"]:
            problems.append(f"{page}: MathJax {maths}")
        if maths.get("remote"):
            problems.append(f"{page}: loads from the network: {maths['remote'][:3]}")
        if maths["maths"] and not str(maths.get("version", "")).startswith("3"):
            problems.append(f"{page}: MathJax 3 did not load (version {maths.get('version')})")
        scroll, client = browser.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        if scroll > client + 1:
            culprits = browser.execute_script(WIDENERS)
            problems.append(f"{page}: the page is {scroll} px wide at {client} px: {culprits}")
        errors = [entry["message"] for entry in browser.get_log("browser")
                  if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]
                  and "Got invalid theme mode" not in entry["message"]]  # the theme's first visit
        if errors:
            problems.append(f"{page}: console errors: {errors[:3]}")
    assert not problems, "\n".join(problems)


class _Links(html.parser.HTMLParser):
    """The hrefs and the ids of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"])
        if tag == "a" and values.get("href"):
            self.hrefs.append(values["href"])


@functools.lru_cache(maxsize=None)
def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def broken_links(site: Path, pages: list[str]) -> list[str]:
    """Internal links of the pages whose file or anchor does not exist (also used by benchmarks/reading.py)."""
    problems = []
    for page in pages:
        path = site / (page + ".html")
        for href in _parse(path).hrefs:
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or href.startswith(("mailto:", "javascript:")):
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{page}: {href} -> no such file")
            elif parts.fragment and target.suffix == ".html" \
                    and unquote(parts.fragment) not in _parse(target).ids:
                problems.append(f"{page}: {href} -> no anchor #{parts.fragment}")
    return problems


def test_every_internal_link_and_anchor_resolves(site):
    problems = broken_links(site, PAGES)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", CHAPTERS, ids=lambda p: Path(p).name)
def test_chapter_links_its_exercise_and_its_neighbours(site, page):
    name = Path(page).name
    exercise = f"exercises/{name}/{name}.ipynb"
    hrefs = _parse(site / (page + ".html")).hrefs
    assert f"{companion.REPOSITORY}/blob/main/{exercise}" in hrefs, f"no link to {exercise} on GitHub"
    colab = f"https://colab.research.google.com/github/{companion.REPOSITORY.split('github.com/')[1]}"
    assert f"{colab}/blob/main/{exercise}" in hrefs, f"no Colab link to {exercise}"
    index = PAGES.index(page)
    for neighbour in (PAGES[index - 1], PAGES[index + 1] if index + 1 < len(PAGES) else None):
        if neighbour is None:
            continue
        wanted = os.path.relpath(site / (neighbour + ".html"), (site / page).parent)
        assert wanted in hrefs, f"{page} does not link to its neighbour {neighbour} ({wanted})"


def test_intro_links_every_written_chapter(site):
    hrefs = _parse(site / (PAGES[0] + ".html")).hrefs
    for page in CHAPTERS:
        wanted = os.path.relpath(site / (page + ".html"), (site / PAGES[0]).parent)
        assert wanted in hrefs, f"the introduction's chapter table does not link {page}"
