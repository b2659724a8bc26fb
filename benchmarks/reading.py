"""How the rendered book reads: sideways scrolling on a phone, long code lines, shrunk figures, broken links.

Usage (after ``make book``, or on any built copy of the book):

    python benchmarks/reading.py --site _build/html --repo .

It opens every page of the table of contents in headless Chromium (as ``tests/test_book_browser.py``
does) at 390x844 and 1280x900 and prints one table:

- pages that scroll sideways at 390 px;
- code lines longer than 79 characters in the chapters' notebooks;
- figures drawn smaller than they were made (a figure wider than the column is shrunk with its
  text; a figure made at the column's width is shown at 1x, or at 2x resolution in 1x space);
- internal links or anchors that resolve to nothing.

Run it on an executed build: figures only exist where the notebooks ran.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

FIGURES = """
return [...document.querySelectorAll('.cell_output img')].map(img => {
  const declared = img.getAttribute('width') ? Number(img.getAttribute('width')) : img.naturalWidth;
  return {src: img.src.slice(0, 40), shown: img.getBoundingClientRect().width, declared};
});
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=Path("_build/html"))
    parser.add_argument("--repo", type=Path, default=Path("."))
    args = parser.parse_args()

    import test_book_browser as browser_test  # noqa: E402  (the checks of the browser test)
    from test_notebook_lint import MAX_LINE, _cells, _source  # noqa: E402

    toc = yaml.safe_load((args.repo / "_toc.yml").read_text())
    pages = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    notebooks = [args.repo / (p + ".ipynb") for p in pages if (args.repo / (p + ".ipynb")).exists()]
    long_lines = sum(len(line) > MAX_LINE for nb in notebooks for cell in _cells(nb)
                     if cell["cell_type"] == "code" for line in _source(cell).splitlines())
    code_lines = sum(len(_source(cell).splitlines()) for nb in notebooks for cell in _cells(nb)
                     if cell["cell_type"] == "code")

    import functools
    import http.server
    import threading

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=args.site))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    server = f"http://127.0.0.1:{httpd.server_address[1]}/"
    driver = browser_test.make_driver()
    wide_pages, shrunk, figures = [], [], 0
    for width, height in browser_test.SIZES:
        driver.set_window_size(width, height)
        for page in pages:
            driver.get(f"{server}{page}.html")
            scroll, client = driver.execute_script(
                "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            if width == 390 and scroll > client + 1:
                wide_pages.append(f"{page} ({scroll} px)")
            if width == 1280:
                for figure in driver.execute_script(FIGURES):
                    figures += 1
                    if figure["declared"] and figure["shown"] < 0.99 * figure["declared"]:
                        shrunk.append(f"{page}: {figure['shown']:.0f}/{figure['declared']} px")
    driver.quit()
    broken = browser_test.broken_links(args.site, pages)
    print(json.dumps({
        "pages that scroll sideways at 390 px": f"{len(wide_pages)} of {len(pages)}",
        "code lines over 79 characters": f"{long_lines} of {code_lines}",
        "figures shown below 1x at 1280 px": f"{len(shrunk)} of {figures}",
        "broken internal links": len(broken),
    }, indent=1))
    for name, items in (("wide", wide_pages), ("shrunk", shrunk), ("broken", broken)):
        for item in items[:40]:
            print(f"  {name}: {item}")


if __name__ == "__main__":
    main()
