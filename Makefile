# robotac: the two set-up commands are `make demo` and `make test` (each creates .venv when missing).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.robotac-installed
# MuJoCo's OpenGL backend is chosen at run time by `import envs` (envs/gl.py), not here.

.PHONY: install gl demo test test-kernels lint bench clean

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

# The numeric tests (float results of torch/onnxruntime/MuJoCo kernels) under other kernels than
# the machine's defaults, one pass per setting; each pass first prints whether its setting really
# changes float32 results on this host (scripts/kernel_variants.py), so a pass that repeats the
# default kernels is said so, not mistaken for coverage.
# - MKL's Intel dispatch (scripts/mkl_intel_dispatch.c, preloaded): on AMD, MKL runs the AVX2 or
#   AVX-512 kernels an Intel CPU with the same instruction set runs (MKL otherwise ignores the
#   settings below on AMD); skipped with a note where no C compiler is found;
# - the same with MKL_ENABLE_INSTRUCTIONS=SSE4_2 (MKL's SSE4.2 kernels) and =AVX2;
# - MKL_CBWR=COMPATIBLE ATEN_CPU_CAPABILITY=default: MKL's reproducibility path and ATen's
#   non-vectorised kernels.
MKL_SHIM := $(abspath $(VENV))/mkl_intel_dispatch.so
KERNEL_SETTINGS := "LD_PRELOAD=$(MKL_SHIM)" \
	"LD_PRELOAD=$(MKL_SHIM) MKL_ENABLE_INSTRUCTIONS=SSE4_2" \
	"LD_PRELOAD=$(MKL_SHIM) MKL_ENABLE_INSTRUCTIONS=AVX2" \
	"MKL_CBWR=COMPATIBLE ATEN_CPU_CAPABILITY=default"
test-kernels: $(STAMP)
	@cc -shared -fPIC -O2 -o $(MKL_SHIM) scripts/mkl_intel_dispatch.c 2>/dev/null \
	  || echo "no C compiler: the passes under MKL's Intel dispatch are skipped"
	@set -e; for s in $(KERNEL_SETTINGS); do \
	  case "$$s" in LD_PRELOAD=*) test -f $(MKL_SHIM) || continue;; esac; \
	  env $$s $(PY) scripts/kernel_variants.py; \
	  env $$s $(PY) -m pytest -q -m numeric -p no:cacheprovider; \
	done

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) runs .pytest_cache
