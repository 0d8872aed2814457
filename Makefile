# robotac: the two set-up commands are `make demo` and `make test` (each creates .venv when missing).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.robotac-installed
# MuJoCo's OpenGL backend is chosen at run time by `import envs` (envs/gl.py), not here.

.PHONY: install gl demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned, so nothing pulls a multi-GB CUDA build through a loose range.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[train,dev]'
	touch $(STAMP)

install: $(STAMP)

# Headless rendering (libosmesa6) where this user may install it; a one-line note otherwise.
gl:
	@bash scripts/install_gl.sh $(PY)

demo: $(STAMP) gl
	$(PY) scripts/demo.py

test: $(STAMP) gl
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) runs .pytest_cache
