# Two commands: `make book` builds the executed book, `make test` runs every test.
# Both install what they need first: a virtual environment with the pinned versions and the
# companion package (editable), and the offline data where this machine allows it.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements-lock.txt pyproject.toml | cksum | cut -d' ' -f1)
# One thread per process: nbval runs two notebooks at a time on two cores.
TEST_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MPLBACKEND=Agg PYDEVD_DISABLE_FILE_VALIDATION=1

.PHONY: install data browser book test benchmark full-checks compat exercises lock clean

install: $(STAMP)

$(STAMP): requirements-lock.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-lock.txt "setuptools>=77"
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

# Fashion-MNIST from Debian's dataset-fashion-mnist package (offline); the loaders fall back to
# torchvision's download where a network exists.
data:
	@if [ -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then \
		echo "Fashion-MNIST: found the Debian package's files"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null; } || \
		echo "Fashion-MNIST: apt-get failed; the loaders will try torchvision's download"; \
	else \
		echo "Fashion-MNIST: run 'sudo apt-get install dataset-fashion-mnist' to work offline;" \
		     "otherwise the loaders download it with torchvision"; \
	fi

# Headless Chromium for the book's browser test (tests/test_book_browser.py): Debian's packages,
# installed as root; otherwise the test says how.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
		echo "Chromium: found $$(chromium --version 2>/dev/null)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null; } || \
		echo "Chromium: apt-get failed; the browser test will say so"; \
	else \
		echo "Chromium: run 'sudo apt-get install chromium chromium-driver' for the browser test"; \
	fi

book: install data
	$(BIN)/jupyter-book build . --builder html -W --keep-going
	@echo "The book is in _build/html/index.html"

test: install data browser
	$(TEST_ENV) $(BIN)/python -m pytest -n 2 --dist loadfile --nbval-lax --nbval-current-env \
		--nbval-cell-timeout=900 -p no:cacheprovider tests book exercises

# Wall time and headline result of every notebook, the Fashion-MNIST speed run, conv speed.
benchmark: install data
	$(BIN)/python benchmarks/run.py

# Every chapter's check cells with the full profile's settings on this CPU, training on the quick budgets.
full-checks: install data
	$(TEST_ENV) COMPANION_PROFILE=full COMPANION_SHORT_TRAINING=1 $(BIN)/python -m pytest -n 2 --dist loadfile \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=1800 -p no:cacheprovider book

# Learners' environments (Colab-like, the ranges' floor, the newest): install the companion from a clean
# clone as the install cell does and run every notebook; not part of `make test` (tools/compat.py).
compat: install data
	$(BIN)/python tools/compat.py

# Rebuild the student exercise notebooks from the masters.
exercises: install
	$(BIN)/python -m companion.grade.build --verify

# Re-pin requirements-lock.txt from requirements.in (needs the package registry).
lock:
	rm -rf /tmp/lock-venv && $(PYTHON) -m venv /tmp/lock-venv
	/tmp/lock-venv/bin/pip install --quiet -r requirements.in
	{ head -n 2 requirements-lock.txt; /tmp/lock-venv/bin/pip freeze; } > requirements-lock.new
	mv requirements-lock.new requirements-lock.txt

clean:
	rm -rf _build
