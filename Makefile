# portcullis build. Targets:
#   make            release build (-O2)           -> build/release/portcullis
#   make asan       ASan + UBSan build             -> build/asan/portcullis
#   make run        install deps, build, start the stack on embedded defaults
#   make test       install deps, build, run unit + integration + fuzz smoke
#   make unit       unit tests (cmocka) on the sanitizer build
#   make rl-memory  the rate limiter's 64 bytes/key bound, by RSS (release build)
#   make integration  pytest black-box tests on the sanitizer build
#   make fuzz       build the libFuzzer targets    -> build/fuzz/
#   make fuzz-smoke run each fuzz target briefly (FUZZ_SECONDS, default 30)
#   make bench      portcullis vs nginx (not a test; prints figures)
#   make bench-as   token endpoint vs oidc-provider
#   make bench-gw   gateway vs nginx as a TLS reverse proxy
#   make bench-abuse  gateway throughput with abuse resistance on vs off
#   make sim        traffic simulator: benign partners + attacks (SIM_ARGS=--quick)
#   make format     clang-format the tree
.DEFAULT_GOAL := release

# Quiet by default; V=1 shows the full commands.
ifeq ($(V),1)
Q :=
say =
else
Q := @
say = @echo "  $(1)"
endif

PKGS      := libssl libcrypto libevent libevent_pthreads libevent_openssl jansson yaml-0.1 sqlite3
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lhttp_parser -lpthread -lm

WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wformat-security -Wvla \
        -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith -Wundef \
        -Wimplicit-fallthrough -Wnull-dereference -Wcast-align \
        -Wno-unused-parameter
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -Isrc $(WARN) $(PKG_CFLAGS) -g \
        -fstack-protector-strong -fno-common -MMD -MP
HARDEN_LDFLAGS := -Wl,-z,relro,-z,now

CC ?= cc
SANCC ?= clang
FUZZCC ?= clang

LIB_SRC  := $(sort $(shell find src -name '*.c' ! -path 'src/cli/main.c'))
MAIN_SRC := src/cli/main.c
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))
BENCH_SRC := $(sort $(wildcard bench/*.c))

# ---- one build flavour: $(1)=name $(2)=cc $(3)=cflags $(4)=ldflags --------
define flavour
$(1)_DIR  := build/$(1)
$(1)_OBJ  := $$(patsubst %.c,build/$(1)/%.o,$$(LIB_SRC))
$(1)_LIB  := build/$(1)/libportcullis.a

build/$(1)/%.o: %.c
	@mkdir -p $$(dir $$@)
	$$(Q)$(2) $(BASE_CFLAGS) $(3) -c $$< -o $$@
	$$(call say,CC [$(1)] $$<)

# Built aside and renamed into place, so a concurrent link never sees a
# half-written archive.
$$($(1)_LIB): $$($(1)_OBJ)
	$$(Q)rm -f $$@.$$$$$$$$.tmp && ar rcs $$@.$$$$$$$$.tmp $$^ && mv -f $$@.$$$$$$$$.tmp $$@

build/$(1)/portcullis: build/$(1)/src/cli/main.o $$($(1)_LIB)
	$$(Q)$(2) $(3) $$^ -o $$@ $(4) $(PKG_LIBS)
	$$(call say,LD $$@)

-include $$(patsubst %.o,%.d,$$($(1)_OBJ))
endef

REL_CFLAGS  := -O2 -D_FORTIFY_SOURCE=2 -fPIE
ASAN_CFLAGS := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
               -fno-sanitize-recover=undefined
$(eval $(call flavour,release,$(CC),$(REL_CFLAGS),-pie $(HARDEN_LDFLAGS)))
$(eval $(call flavour,asan,$(SANCC),$(ASAN_CFLAGS),-fsanitize=address,undefined))

release: build/release/portcullis
asan: build/asan/portcullis

# ---- unit tests (cmocka), sanitizer build ---------------------------------
UNIT_BIN := $(patsubst tests/unit/%.c,build/asan/tests/%,$(UNIT_SRC))
build/asan/tests/%: tests/unit/%.c $(asan_LIB)
	@mkdir -p $(dir $@)
	$(call say,LD $@)
	$(Q)$(SANCC) $(BASE_CFLAGS) $(ASAN_CFLAGS) -Itests/unit $< $(asan_LIB) -o $@ \
		-fsanitize=address,undefined $(PKG_LIBS) -lcmocka

unit-build: $(UNIT_BIN)
unit: $(UNIT_BIN)
	@fail=0; for t in $(UNIT_BIN); do \
		echo "== $$t"; $$t 2>&1 || fail=1; done; \
	if [ $$fail -ne 0 ]; then echo "unit tests FAILED"; exit 1; fi

# ---- memory bound of the rate limiter, release build -------------------------
# Measured by RSS, so not on the sanitizer build (shadow memory, redzones).
RLMEM_BIN := build/release/tests/rl_memory
$(RLMEM_BIN): tests/memory/rl_memory.c $(release_LIB)
	@mkdir -p $(dir $@)
	$(call say,LD $@)
	$(Q)$(CC) $(BASE_CFLAGS) $(REL_CFLAGS) $< $(release_LIB) -o $@ -pie $(HARDEN_LDFLAGS) $(PKG_LIBS)

rl-memory: $(RLMEM_BIN)
	@if $(RLMEM_BIN); then echo "== check rl-memory ok"; \
	else echo "== check rl-memory FAILED"; exit 1; fi

# ---- integration tests (pytest, Debian's python3) ---------------------------
integration: build/asan/portcullis
	PORTCULLIS_BIN=$(CURDIR)/build/asan/portcullis \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=86 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration $(PYTEST_ARGS)

# ---- fuzzing (libFuzzer, clang) ---------------------------------------------
FUZZ_CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
               -DPC_FUZZING=1
$(eval $(call flavour,fuzzlib,$(FUZZCC),$(FUZZ_CFLAGS),))
FUZZ_BIN := $(patsubst fuzz/%.c,build/fuzz/%,$(FUZZ_SRC))
build/fuzz/%: fuzz/%.c $(fuzzlib_LIB)
	@mkdir -p $(dir $@)
	$(call say,LD $@)
	$(Q)$(FUZZCC) $(BASE_CFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(fuzzlib_LIB) -o $@ $(PKG_LIBS)

fuzz: $(FUZZ_BIN)
FUZZ_SECONDS ?= 30
fuzz-smoke: $(FUZZ_BIN)
	@fail=0; for f in $(FUZZ_BIN); do \
		n=$$(basename $$f); mkdir -p build/fuzz/corpus/$$n fuzz/corpus/$$n; \
		if $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -print_final_stats=1 \
		    build/fuzz/corpus/$$n fuzz/corpus/$$n 2>build/fuzz/$$n.log; then \
			echo "== fuzz $$n ($(FUZZ_SECONDS)s, $$(grep -Eo 'number_of_executed_units: *[0-9]+' build/fuzz/$$n.log | grep -Eo '[0-9]+$$') runs) ok"; \
		else \
			tail -50 build/fuzz/$$n.log; echo "== fuzz $$n FAILED"; fail=1; \
		fi; \
	done; exit $$fail

# ---- bench tools ------------------------------------------------------------
BENCH_BIN := $(patsubst bench/%.c,build/bench/%,$(BENCH_SRC))
build/bench/%: bench/%.c
	@mkdir -p $(dir $@)
	$(call say,LD $@)
	$(Q)$(CC) $(BASE_CFLAGS) -O2 $< -o $@ $(PKG_LIBS)
bench-build: build/release/portcullis $(BENCH_BIN)
bench: bench-build
	bench/run.sh
bench-as: bench-build
	bench/as/run.sh
bench-gw: bench-build
	bench/gw/run.sh
sim: build/release/portcullis
	/usr/bin/python3 bench/sim/sim.py --json bench/out/sim.json $(SIM_ARGS)

bench-abuse: bench-build
	bench/abuse/run.sh

# ---- the two commands ---------------------------------------------------------
deps:
	@scripts/install-deps

run: deps
	$(MAKE) release
	scripts/run-dev

test: deps
	@scripts/run-tests

format:
	clang-format -i $$(find src tests/unit tests/memory fuzz bench -name '*.[ch]')

clean:
	rm -rf build

.PHONY: release asan unit unit-build rl-memory integration fuzz fuzz-smoke bench bench-as bench-gw bench-abuse sim bench-build deps run test format clean
