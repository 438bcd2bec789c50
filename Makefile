# deltaserve Makefile (calm-style: pattern rules, -MMD -MP, one build dir per mode)
#
#   make run            set up (installs packages as root), build, serve the bundled model
#   make test           set up, build, run every CPU test (unit + e2e)
#   make CUDA=0         CPU-only binary (auto when nvcc is absent)
#   make MODE=asan|ubsan|debug|release
#   make test-gpu       GPU tests (needs a GPU)      make bench   GPU benchmark
#
# Sources are discovered by wildcard, one concern per file; adding a file needs
# no Makefile edit. Unit tests: every tests/unit/check_<name>.c exports
# Suite *<name>_suite(void) and is linked into one Check runner.

MODE ?= release
BUILD ?= build/$(MODE)
B := $(BUILD)
CC ?= cc
ifeq ($(origin CC),default)
CC := cc
endif
NVCC ?= nvcc
CUDA_HOME ?= $(shell dirname $$(dirname $$(command -v $(NVCC) 2>/dev/null || echo /usr/local/cuda/bin/nvcc)))
CUDA ?= $(shell command -v $(NVCC) >/dev/null 2>&1 && echo 1 || echo 0)
# Explicit architecture list (Docker and CI build without a GPU); override with CUARCH=...
CUARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
          -gencode arch=compute_90a,code=sm_90a

PKGS := libmicrohttpd libcjson libuv libpcre2-8
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

WARN := -Wall -Wextra -Werror -Wno-unused-parameter
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE $(WARN) -I. $(PKG_CFLAGS) -fopenmp -MMD -MP
LDLIBS := $(PKG_LIBS) -fopenmp -lm -lpthread

ifeq ($(MODE),release)
OPT := -O3 -march=x86-64-v3 -g
else ifeq ($(MODE),debug)
OPT := -O0 -g
else ifeq ($(MODE),asan)
OPT := -O1 -g -fsanitize=address -fno-omit-frame-pointer
LDLIBS += -fsanitize=address
else ifeq ($(MODE),ubsan)
OPT := -O1 -g -fsanitize=undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
LDLIBS += -fsanitize=undefined
else ifeq ($(MODE),fuzz)
CC := clang
OPT := -O1 -g -fsanitize=address,undefined,fuzzer-no-link -fno-omit-frame-pointer
LDLIBS += -fsanitize=address,undefined
else
$(error unknown MODE=$(MODE): use release, debug, asan, ubsan or fuzz)
endif
CFLAGS := $(CFLAGS_BASE) $(OPT) $(EXTRA_CFLAGS)

LIB_SRCS := $(wildcard engine/*.c scheduler/*.c kernels/cpu/*.c) \
            $(filter-out server/main.c,$(wildcard server/*.c))
CU_SRCS :=
ifeq ($(CUDA),1)
CFLAGS += -DDS_HAVE_CUDA -I$(CUDA_HOME)/include
LIB_SRCS += $(wildcard engine/cuda/*.c)
CU_SRCS := $(wildcard kernels/cuda/*.cu)
NVCCFLAGS := -std=c++17 -O3 -lineinfo -I. $(CUARCH) -MMD -MP -Xcompiler -Wall,-Werror \
             -DDS_HAVE_CUDA --expt-relaxed-constexpr $(EXTRA_NVCCFLAGS)
LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lcublasLt -lcublas -lstdc++
endif

LIB_OBJS := $(LIB_SRCS:%=$(B)/%.o) $(CU_SRCS:%=$(B)/%.o)
LIB := $(B)/libdeltaserve.a
BIN := $(B)/deltaserve

UNIT_SRCS := $(sort $(wildcard tests/unit/check_*.c))
UNIT_NAMES := $(patsubst tests/unit/check_%.c,%,$(UNIT_SRCS))
# tests/unit/util_*.c: shared test helpers (fixture readers, the fake engine)
UNIT_UTIL := $(wildcard tests/unit/util_*.c)
UNIT_OBJS := $(UNIT_SRCS:%=$(B)/%.o) $(UNIT_UTIL:%=$(B)/%.o) $(B)/tests/unit/runner.c.o
UNIT_BIN := $(B)/check_unit

GPU_SRCS := $(wildcard tests/gpu/*.c)
GPU_BIN := $(B)/check_gpu

.PHONY: all deps run test test-unit test-e2e test-gpu bench format clean fuzz lint-deploy
all: $(BIN)

deps:
	@bash tools/setup.sh

$(B)/%.c.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(B)/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BIN): $(B)/server/main.c.o $(LIB)
	$(CC) -o $@ $^ $(LDLIBS)

# The runner's suite list is generated from the file names (no hand-kept registry).
$(B)/tests/unit/suites.h: $(UNIT_SRCS) Makefile
	@mkdir -p $(dir $@)
	@( for n in $(UNIT_NAMES); do echo "SUITE($$n)"; done ) > $@.tmp && mv $@.tmp $@

$(B)/tests/unit/runner.c.o: tests/unit/runner.c $(B)/tests/unit/suites.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) -I$(B)/tests/unit -c $< -o $@

$(B)/tests/unit/%.c.o: tests/unit/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) -c $< -o $@

$(UNIT_BIN): $(UNIT_OBJS) $(LIB)
	$(CC) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

$(B)/tests/gpu/%.c.o: tests/gpu/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) -c $< -o $@

$(GPU_BIN): $(GPU_SRCS:%=$(B)/%.o) $(LIB)
	$(CC) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

# parallel build inside run/test (a fresh machine would otherwise compile serially)
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
MODEL ?= models/olmo-hybrid-tiny
# clients send "model": the directory's name (olmo-hybrid-tiny for the bundled one)
SERVED_NAME ?= $(notdir $(patsubst %/,%,$(MODEL)))
HOST ?= 127.0.0.1
PORT ?= 8000
run: deps
	@$(MAKE) --no-print-directory -j$(JOBS) $(BIN)
	$(BIN) serve --model $(MODEL) --served-model-name $(SERVED_NAME) --host $(HOST) --port $(PORT) $(ARGS)

test: deps
	@$(MAKE) --no-print-directory -j$(JOBS) $(BIN) $(UNIT_BIN)
	@bash tools/run-tests.sh $(B)

test-unit: $(UNIT_BIN)
	CK_DEFAULT_TIMEOUT=600 $(UNIT_BIN)

test-gpu: $(BIN) $(GPU_BIN)
	CK_FORK=no $(GPU_BIN)
	@if command -v node > /dev/null; then DS_BIN=$(BIN) DS_E2E_DEVICE=cuda bash tests/e2e/server_api.sh; \
	else echo "test-gpu: node absent: the curl API suite on the GPU is skipped (tools/gpu-check.sh serve runs a curl-only round)"; fi

# Deployment files (docker/, docker/k8s/) against the Kubernetes / Compose
# schemas plus Dockerfile lint; also part of `make test` (tests/e2e/deploy_lint.sh).
lint-deploy:
	@bash tools/setup.sh
	node tools/validate-deploy.mjs

bench: $(BIN)
	$(BIN) bench $(ARGS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cu')

clean:
	rm -rf build

-include $(LIB_OBJS:.o=.d) $(UNIT_OBJS:.o=.d) $(B)/server/main.c.d

# --- fuzzing (libFuzzer, clang, ASan+UBSan): `make fuzz` builds every
# tests/fuzz/fuzz_<name>.c against the MODE=fuzz library (CPU only) into
# build/fuzz and runs each for FUZZ_SECONDS from tests/fuzz/corpus_<name>
# (tools/run-fuzz.sh). Not part of `make test`.
FUZZ_BUILD ?= build/fuzz
FUZZ_SECONDS ?= 20
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(B)/%,$(FUZZ_SRCS))
.PHONY: fuzz-build
.SECONDARY: $(FUZZ_SRCS:%=$(B)/%.o)
$(B)/fuzz_%: $(B)/tests/fuzz/fuzz_%.c.o $(LIB)
	$(CC) -o $@ $^ -fsanitize=fuzzer $(LDLIBS)
fuzz-build: $(FUZZ_BINS)
-include $(FUZZ_SRCS:%=$(B)/%.d)
fuzz:
	@$(MAKE) --no-print-directory -j$(JOBS) MODE=fuzz CUDA=0 BUILD=$(FUZZ_BUILD) fuzz-build
	@bash tools/run-fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)
