# The README's two commands: `make demo` (export the embedded defaults, build, serve) and `make test`.
# Everything runs in the project venv that scripts/install.sh creates (PEP 668: never the system python).
PYTHON ?= .venv/bin/python
PORT ?= 8000
ARTIFACTS ?= artifacts

.PHONY: install demo test test-heavy bench constraints screenshots

.install.stamp: pyproject.toml constraints.txt requirements-data.txt web/package-lock.json bench/peer/package-lock.json scripts/install.sh
	bash scripts/install.sh
	touch $@

install: .install.stamp

demo: .install.stamp
	$(PYTHON) -m scripts.demo --artifacts $(ARTIFACTS) --port $(PORT)

test: .install.stamp
	$(PYTHON) -m pytest

# Real models beyond the embedded defaults (Gemma 3 270M): 10-20 minutes, not part of `make test`.
test-heavy: .install.stamp
	$(PYTHON) -m pytest -m heavy

bench: .install.stamp
	$(PYTHON) -m bench

# The README's screenshots, taken from the running app (docs/screenshot-*.png).
screenshots: .install.stamp
	$(PYTHON) -m scripts.screenshots --artifacts $(ARTIFACTS)

# After an upgrade that `make test` passed on: record the .venv's versions for scripts/install.sh.
constraints:
	{ sed -n '1,3p' constraints.txt; $(PYTHON) -m pip list --format=freeze | grep -v -i -E '^(lumen-local|pip|setuptools|wheel|torch)=='; } > constraints.tmp
	mv constraints.tmp constraints.txt
