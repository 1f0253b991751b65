# fpd / fpctl build.
#
#   make            build fpd, fpctl and the BPF objects (installs missing Debian packages)
#   make test       unit tests (plain and ASan/UBSan), short fuzz runs, integration tests
#   make demo       start fpd and the demo service, show the main commands against it
#   make bench      benchmarks side by side with peers -> bench/RESULTS.md
#   make fuzz       long fuzz runs (FUZZ_SECONDS each, default 600)
#   make stress     attach/command/detach cycles on every interpreter and target state
#                   (STRESS_CYCLES, default 10000; STRESS_WORKERS in parallel, default 4)
#   make install    install into PREFIX (default /usr/local) with the systemd unit
#
# Objects go to build/ (build/san/ for the sanitizer build, build/fuzz/ for fuzzers).

CC       ?= gcc
CLANG    ?= clang
BPFTOOL  ?= bpftool
PYTHON   ?= /usr/bin/python3
PREFIX   ?= /usr/local
ARCH     := $(shell uname -m)
BUILD    ?= build
SAN      ?= 0

CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -g -Wall -Wextra -Werror -Wshadow -Wno-missing-field-initializers \
	       -I. -Iinclude -I$(BUILD)/bpf -I$(BUILD)/gen
ifeq ($(SAN),1)
CFLAGS_MODE := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS_MODE := -fsanitize=address,undefined
else
CFLAGS_MODE := -O2
LDFLAGS_MODE :=
endif
CFLAGS  += $(CFLAGS_BASE) $(CFLAGS_MODE)
LDLIBS_FPD   := -lbpf -ldw -lelf -llzma -lz -ljansson -lpthread
LDLIBS_FPCTL := -ljansson -ledit -lncurses -lprotobuf-c -lz

# Debian packages the build, the tests and the demo need.
DEB_PACKAGES := gcc make clang libclang-rt-14-dev libbpf-dev bpftool libelf-dev libdw-dev \
	zlib1g-dev liblzma-dev libjansson-dev libedit-dev libncurses-dev libcmocka-dev pkg-config \
	python3-pytest gdb util-linux procps protobuf-c-compiler libprotobuf-c-dev protobuf-compiler \
	chromium tmux python3-torch systemd
DEPS_STAMP := build/.deps-$(shell echo $(DEB_PACKAGES) | md5sum | cut -c1-8)

COMMON_SRC := $(wildcard common/*.c)
DAEMON_SRC := $(wildcard daemon/*.c daemon/py/*.c)
CLI_SRC    := $(wildcard cli/*.c)
# C code protoc-c generates from cli/*.proto (pprof output).
GEN_SRC    := $(patsubst cli/%.proto,$(BUILD)/gen/%.pb-c.c,$(wildcard cli/*.proto))
GEN_H      := $(GEN_SRC:.c=.h)
BPF_SRC    := $(wildcard bpf/*.bpf.c)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
COMMON_OBJ := $(call obj,$(COMMON_SRC))
DAEMON_OBJ := $(call obj,$(filter-out daemon/fpd.c,$(DAEMON_SRC)))
CLI_OBJ    := $(call obj,$(filter-out cli/fpctl.c,$(CLI_SRC)) $(GEN_SRC))
BPF_OBJ    := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.bpf.o,$(BPF_SRC))
BPF_SKEL   := $(patsubst bpf/%.bpf.c,$(BUILD)/bpf/%.skel.h,$(BPF_SRC))
UNIT_BIN   := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
FUZZ_BIN   := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRC))

.PHONY: all deps test unit unit-san fuzz-smoke integration fuzz stress demo bench install clean format
.DELETE_ON_ERROR:
# Keep objects and skeletons that pattern chains would otherwise delete as intermediates.
.SECONDARY:

all: $(DEPS_STAMP) $(BUILD)/fpd $(BUILD)/fpctl $(BUILD)/libfpagent.so

deps: $(DEPS_STAMP)

# Installs what is missing, once; `apt-get update` only when something is.
$(DEPS_STAMP):
	@missing=""; for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages:$$missing (run make as root to install them)"; exit 1; fi; \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	fi
	@mkdir -p build && touch $@

# BPF: vmlinux.h from the running kernel's BTF, clang -target bpf, skeletons.
$(BUILD)/bpf/vmlinux.h: | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c $(BUILD)/bpf/vmlinux.h $(wildcard include/fp/*.h)
	$(CLANG) -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_x86 -Iinclude -I$(BUILD)/bpf \
		-I/usr/include/$(ARCH)-linux-gnu -c $< -o $@

$(BUILD)/bpf/%.skel.h: $(BUILD)/bpf/%.bpf.o
	$(BPFTOOL) gen skeleton $< > $@

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: cli/%.proto | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	protoc-c --c_out=$(BUILD)/gen --proto_path=cli $<

$(BUILD)/obj/%.o: %.c $(BPF_SKEL) | $(DEPS_STAMP) $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/fpd: $(BUILD)/obj/daemon/fpd.o $(DAEMON_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS_MODE) -o $@ $^ $(LDLIBS_FPD)

$(BUILD)/fpctl: $(BUILD)/obj/cli/fpctl.o $(CLI_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS_MODE) -o $@ $^ $(LDLIBS_FPCTL)

# The helper injected into targets: position-independent, never sanitized
# (it lives in someone else's process), only libc, only fpagent_start
# exported, the Python of agent/py/ embedded (core.py first).
AGENT_PY     := $(wildcard agent/py/*.py)
AGENT_SRC    := $(wildcard agent/*.c) common/agentlink.c
AGENT_OBJ    := $(patsubst %.c,$(BUILD)/agent-obj/%.o,$(AGENT_SRC)) $(BUILD)/agent-obj/agent_py.o
AGENT_CFLAGS := $(CFLAGS_BASE) -O2 -fPIC -fvisibility=hidden -pthread
$(BUILD)/gen/agent_py.c: $(AGENT_PY) tools/embed_py.py | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(PYTHON) tools/embed_py.py $@ $(AGENT_PY)
$(BUILD)/agent-obj/agent_py.o: $(BUILD)/gen/agent_py.c
	@mkdir -p $(dir $@)
	$(CC) $(AGENT_CFLAGS) -c $< -o $@
$(BUILD)/agent-obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(AGENT_CFLAGS) -Iagent -MMD -MP -c $< -o $@
$(BUILD)/libfpagent.so: $(AGENT_OBJ) agent/libfpagent.map
	$(CC) -shared -pthread -Wl,--version-script=agent/libfpagent.map -Wl,-z,now -o $@ $(AGENT_OBJ)

# Each unit test links every daemon, cli and common object but the two mains.
$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(DAEMON_OBJ) $(CLI_OBJ) $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_MODE) -o $@ $^ -lcmocka $(LDLIBS_FPD) -ledit -lncurses -lprotobuf-c

-include $(shell find $(BUILD)/obj $(BUILD)/agent-obj -name '*.d' 2>/dev/null)

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

unit-san:
	$(MAKE) --no-print-directory SAN=1 BUILD=build/san unit

# libFuzzer harnesses: clang, ASan + UBSan, every object but the two mains.
FUZZ_LIB_SRC := $(filter-out daemon/fpd.c cli/fpctl.c,$(DAEMON_SRC) $(CLI_SRC) $(COMMON_SRC)) $(GEN_SRC)
FUZZ_LIB_OBJ := $(patsubst %.c,build/fuzz/obj/%.o,$(FUZZ_LIB_SRC))
FUZZ_CFLAGS := $(CFLAGS_BASE) -O1 -g -fsanitize=fuzzer-no-link,address,undefined \
	       -fno-sanitize-recover=undefined
build/fuzz/obj/%.o: %.c $(BPF_SKEL) | $(DEPS_STAMP) $(GEN_H)
	@mkdir -p $(dir $@)
	$(CLANG) $(FUZZ_CFLAGS) -c $< -o $@

build/fuzz/%: build/fuzz/obj/tests/fuzz/%.o $(FUZZ_LIB_OBJ)
	$(CLANG) -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS_FPD) -ledit -lncurses -lprotobuf-c

FUZZ_SECONDS ?= 600
FUZZ_SMOKE_SECONDS ?= 15
fuzz-smoke: $(FUZZ_BIN)
	@set -e; for f in $(FUZZ_BIN); do n=$$(basename $$f); mkdir -p build/fuzz/corpus-$$n; \
		seeds=tests/fuzz/seeds/$$n; [ -d $$seeds ] || seeds=; \
		echo "== $$n ($(FUZZ_SMOKE_SECONDS) s)"; \
		$$f -max_total_time=$(FUZZ_SMOKE_SECONDS) build/fuzz/corpus-$$n $$seeds >build/fuzz/$$n.log 2>&1 \
			|| { tail -n 40 build/fuzz/$$n.log; exit 1; }; tail -n 1 build/fuzz/$$n.log; done

fuzz: $(FUZZ_BIN)
	@set -e; for f in $(FUZZ_BIN); do n=$$(basename $$f); mkdir -p build/fuzz/corpus-$$n; \
		seeds=tests/fuzz/seeds/$$n; [ -d $$seeds ] || seeds=; \
		echo "== $$n ($(FUZZ_SECONDS) s)"; $$f -max_total_time=$(FUZZ_SECONDS) build/fuzz/corpus-$$n $$seeds; done

integration: all
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

# The integration suite runs twice: on the plain build, then on the ASan/UBSan
# one (the harness fails a run whose fpd printed a sanitizer report).
# The sanitizer pass runs the files that drive fpd's and fpctl's own C paths
# (protocol, stacks, BPF, injection, helper sessions and their relaying,
# console input, authorization, limits, session directories, thread churn);
# the helper commands' logic is Python inside the target, which the plain
# pass covers on every interpreter.
SAN_INTEGRATION := $(addprefix tests/integration/,test_agent.py test_auth.py test_cli.py \
	test_console.py test_errors.py test_getglobal.py test_gilstat.py test_harness.py \
	test_inject.py test_layout.py test_limits.py test_perf.py test_sampler.py \
	test_session_race.py test_stack.py test_stack_churn.py test_top.py)

test: all unit unit-san fuzz-smoke
	$(PYTHON) -m pytest -p no:cacheprovider -q tests/agent
	$(PYTHON) -m pytest -p no:cacheprovider -ra tests/integration
	FPD_BUILD=$(BUILD) $(PYTHON) tests/stress/stress.py --cycles 300 --workers 4
	$(MAKE) --no-print-directory SAN=1 BUILD=build/san build/san/fpd build/san/fpctl build/san/libfpagent.so
	FPD_BUILD=build/san $(PYTHON) -m pytest -p no:cacheprovider -ra $(SAN_INTEGRATION)

# tests/stress/stress.py: the summary tables also go to $(BUILD)/stress.md
# (bench/RESULTS.md, section "Stress", holds a recorded run).
STRESS_CYCLES ?= 10000
STRESS_WORKERS ?= 4
stress: all
	FPD_BUILD=$(BUILD) $(PYTHON) tests/stress/stress.py --cycles $(STRESS_CYCLES) \
		--workers $(STRESS_WORKERS) --progress 500 --markdown $(BUILD)/stress.md

demo: all
	tools/demo.sh

bench: all
	bench/run.sh

install: all
	install -D -m 0755 $(BUILD)/fpd $(DESTDIR)$(PREFIX)/sbin/fpd
	install -D -m 0755 $(BUILD)/fpctl $(DESTDIR)$(PREFIX)/bin/fpctl
	install -D -m 0644 $(BUILD)/libfpagent.so $(DESTDIR)$(PREFIX)/lib/fpd/libfpagent.so
	install -D -m 0644 tools/fpd.service $(DESTDIR)/etc/systemd/system/fpd.service

# Generated fixtures keep the generator's layout.
format:
	clang-format -i $$(find common daemon cli agent tests/unit tests/fuzz include bpf -name '*.[ch]' \
		! -name 'fixtures_*' 2>/dev/null)

clean:
	rm -rf build

# gpu: libfpcupti.so, the CUPTI side of `gpu`, a library of its own that the
# helper loads into a target only when it already runs CUDA (libfpagent.so
# stays libc-only).  CUDA_HOME: /usr/local/cuda, else the toolkit of the nvcc
# on PATH; without CUPTI there the build goes on and `gpu` says so.
CUDA_HOME ?= $(firstword $(wildcard /usr/local/cuda) \
	$(patsubst %/bin/nvcc,%,$(realpath $(shell command -v nvcc 2>/dev/null))))
CUPTI_H := $(firstword $(wildcard $(CUDA_HOME)/include/cupti.h $(CUDA_HOME)/extras/CUPTI/include/cupti.h))
CUPTI_SO := $(firstword $(wildcard $(CUDA_HOME)/lib64/libcupti.so $(CUDA_HOME)/lib/libcupti.so \
	$(CUDA_HOME)/extras/CUPTI/lib64/libcupti.so))
GPU_OBJ := $(BUILD)/gpu-obj/gpu/fpcupti.o $(BUILD)/gpu-obj/gpu/gpu_trace.o
$(BUILD)/tests/test_gpu_trace: $(BUILD)/obj/gpu/gpu_trace.o
ifneq ($(and $(CUPTI_H),$(CUPTI_SO)),)
all: $(BUILD)/libfpcupti.so
$(BUILD)/gpu-obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) -O2 -fPIC -fvisibility=hidden -pthread -I$(dir $(CUPTI_H)) -MMD -MP -c $< -o $@
# The rpath finds this toolkit's libcupti wherever the target runs from.
$(BUILD)/libfpcupti.so: $(GPU_OBJ) gpu/libfpcupti.map
	$(CC) -shared -pthread -Wl,--version-script=gpu/libfpcupti.map -Wl,-rpath,$(dir $(CUPTI_SO)) \
		-o $@ $(GPU_OBJ) -L$(dir $(CUPTI_SO)) -lcupti -ldl
install: install-gpu
.PHONY: install-gpu
install-gpu: $(BUILD)/libfpcupti.so
	install -D -m 0644 $< $(DESTDIR)$(PREFIX)/lib/fpd/libfpcupti.so
-include $(shell find $(BUILD)/gpu-obj -name '*.d' 2>/dev/null)
else
$(info gpu: no CUPTI under CUDA_HOME=$(CUDA_HOME): building without it, `gpu` will say so)
endif
