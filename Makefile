# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test test-slow test-android test-arm64 bench-accuracy install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml setup.py
	$(BIN)/python -m pip install --quiet -e ".[tf,test]"
	touch $(STAMP)

install: $(STAMP)

DEMO_DIR := demo_output

# Trains mobilenet_v2 (alpha 0.35, 64 px) on the built-in digits (real images, offline):
# float epochs, QAT, int8; prints float vs int8 (QAT and post-training) validation accuracy,
# converts mobilenet alpha 0.75 to int8 with its validation report (the design card's example),
# then benchmarks both int8 models: 203 s measured for the training on this 2-core machine.
DEMO_RUN := $(DEMO_DIR)/mobilenet_v2_digits

demo: $(STAMP)
	rm -rf $(DEMO_RUN)
	mkdir -p $(DEMO_DIR)
	$(BIN)/edgecnn train mobilenet_v2 --dataset digits --alpha 0.35 --resolution 64 \
		--epochs 20 --lr 2e-3 --qat-epochs 2 --compare-ptq -o $(DEMO_RUN)
	$(BIN)/edgecnn convert mobilenet --alpha 0.75 --int8 -o $(DEMO_DIR)/mobilenet_0.75_224_int8.tflite
	$(BIN)/edgecnn bench $(DEMO_RUN)/model_int8.tflite $(DEMO_DIR)/mobilenet_0.75_224_int8.tflite

# the real phone photos some tests read (pillow-heif's sdist from the package index, once,
# checked against its SHA-256: tools/phone_photos.py)
PHOTOS := $(BIN)/python tools/phone_photos.py --fetch

test: $(STAMP)
	$(PHOTOS)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PHOTOS)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m slow --timeout 1500 -rf $(PYTEST_ARGS)

# android_demo's Android-free Kotlin (app/src/main/.../core) compiled with the real Kotlin
# compiler and its JUnit tests run on the JVM, against cards, input tensors and benchmark JSON
# the Python side writes (tests/test_android_jvm.py). Installs the compiler wheel (the android
# extra) and, when missing, Debian's JDK, junit4 and libandroid-json-java (apt-get, as root).
ANDROID_STAMP := $(VENV)/.installed-android
$(ANDROID_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[tf,test,android]"
	touch $(ANDROID_STAMP)

test-android: $(ANDROID_STAMP)
	$(BIN)/python tools/kotlin_jvm.py --setup
	$(BIN)/python -m pytest -n 2 -m android -p no:cacheprovider tests/test_android_jvm.py $(PYTEST_ARGS)

# The light install and edgecnn's int8 models on aarch64 (qemu-user emulation, a Debian root
# cached in .cache/arm64-root): needs root and binfmt, checked first, before any install.
# ARM64_ARGS: e.g. --images DIR --limit 100 --results benchmarks/results (tools/arm64/run.py)
ARM64_ARGS ?=
test-arm64:
	@$(PYTHON) tools/arm64/run.py --check-host
	$(MAKE) --no-print-directory $(STAMP)
	$(BIN)/python tools/arm64/run.py $(ARM64_ARGS)

# float vs every quantized form of EfficientNet-Lite0/1/2 on real ImageNet photos (about an
# hour on 2 cores); DATA: an ImageNet-style folder (see benchmarks/README.md)
DATA ?= ../shared/data/imagenet_sample_500
bench-accuracy: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[tf,test,bench]"
	$(BIN)/python benchmarks/imagenet_accuracy.py --data $(DATA)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache $(DEMO_DIR)
