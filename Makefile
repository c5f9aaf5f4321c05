# The README's two commands: `make demo` (export the embedded defaults, build, serve) and `make test`.
# Everything runs in the project venv that scripts/install.sh creates (PEP 668: never the system python).
PYTHON ?= .venv/bin/python
PORT ?= 8000
ARTIFACTS ?= artifacts

.PHONY: install demo test bench

.install.stamp: pyproject.toml requirements-data.txt web/package-lock.json bench/peer/package-lock.json scripts/install.sh
	bash scripts/install.sh
	touch $@

install: .install.stamp

demo: .install.stamp
	$(PYTHON) -m scripts.demo --artifacts $(ARTIFACTS) --port $(PORT)

test: .install.stamp
	$(PYTHON) -m pytest

bench: .install.stamp
	$(PYTHON) -m bench
