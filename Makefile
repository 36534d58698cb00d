# Two commands on a fresh machine: `make demo` and `make test`. Both set everything up first.
VENV    := .venv
PYTHON  := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
# The CPU build of torch for this machine; CUDA users install their own torch first (see README).
TORCH   ?= torch==2.13.0
# The Blender extension is tested in each of these Blender releases, each in its own environment
# (.venv-blender-<version>: the bpy wheels pin numpy < 2, the engine's environment has numpy 2).
BLENDER_VERSIONS ?= 4.2 4.5 5.0
# The release whose bundled extension tool builds the zip.
BLENDER_BUILD    := 4.5
BLENDER_STAMPS   := $(foreach version,$(BLENDER_VERSIONS),.venv-blender-$(version)/.installed)
BLENDER_TESTS     = BETTERDEPTH_ENGINE_PYTHON=$(abspath $(PYTHON)) .venv-blender-$(1)/bin/python -m pytest \
                    tests/blender --confcutdir tests/blender

.PHONY: setup demo demo-engine test test-fast test-blender blender3 screenshot extension tiny-models bench clean

$(STAMP): pyproject.toml scripts/setup_system.sh
	bash scripts/setup_system.sh
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet "$(TORCH)"
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

.venv-blender-%/.installed:
	python3 -m venv .venv-blender-$*
	.venv-blender-$*/bin/python -m pip install --quiet --upgrade pip
	.venv-blender-$*/bin/python -m pip install --quiet "bpy==$*.*" "pytest>=8"
	touch $@

extension: .venv-blender-$(BLENDER_BUILD)/.installed
	.venv-blender-$(BLENDER_BUILD)/bin/python scripts/build_extension.py

# The product: the extension built, installed into a fresh Blender profile (the bpy wheel), and the headless
# batch over samples/: a .blend and an oblique picture of the mesh per photo in demo_output/blender/.
demo: setup extension
	BLENDER_USER_RESOURCES=$(abspath demo_output/blender/.blender_profile) \
	BETTERDEPTH_ENGINE_PYTHON=$(abspath $(PYTHON)) .venv-blender-$(BLENDER_BUILD)/bin/python \
		scripts/batch_reconstruct.py --input samples --output demo_output/blender --formats blend,png
	@echo "Results: demo_output/blender/<photo>.blend (open in Blender 4.2+) and <photo>.png (pictures)"

# The engine alone: refined depth for one sample photo, with pictures, in demo_output/.
demo-engine: setup
	bash scripts/demo.sh

# Debian's Blender 3.4 (+ numpy, Xvfb) for the legacy add-on test and the screenshot; where it cannot be
# installed (no apt), that test is skipped.
blender3:
	-bash scripts/setup_blender3.sh

# The README's picture of the panel: Blender 3.4's window under Xvfb (needs `make blender3`).
screenshot: setup blender3
	bash scripts/screenshot_blender.sh docs/images/blender_panel.jpg

test: setup $(BLENDER_STAMPS) blender3
	$(PYTHON) -m pytest
	$(foreach version,$(BLENDER_VERSIONS),$(call BLENDER_TESTS,$(version)) &&) true

test-fast: setup
	$(PYTHON) -m pytest -m "not slow"

# The extension's tests alone, in every Blender release (or: make test-blender BLENDER_VERSIONS=4.5).
test-blender: setup $(BLENDER_STAMPS) blender3
	$(foreach version,$(BLENDER_VERSIONS),$(call BLENDER_TESTS,$(version)) &&) true

tiny-models: setup
	$(PYTHON) scripts/make_tiny_models.py build/tiny-models

bench: setup
	$(PYTHON) scripts/bench_pipeline.py

clean:
	rm -rf $(VENV) .venv-blender-* build dist demo_output
