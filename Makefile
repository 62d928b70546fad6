# modeld: one Makefile, no recursion. `make run` and `make test` are the
# whole set-up on a fresh Debian machine: both install what is missing.

CC      ?= gcc
PKGS    := libmicrohttpd gnutls jansson sqlite3 libpq libcrypto libzstd libcurl
WARN    := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes \
           -Wmissing-prototypes -Wvla -Wpointer-arith -Wcast-qual \
           -Wnull-dereference -Wundef
CSTD    := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null)
CFLAGS  ?= -O2 -g
ALL_CFLAGS = $(CSTD) $(CFLAGS) $(WARN) -I. $(PKG_CFLAGS) -MMD -MP
LDLIBS  = $(PKG_LIBS) -lpthread -lm
SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all \
           -fno-omit-frame-pointer

LIB_SRC    := $(sort $(wildcard fileio/*.c proto/*.c policy/*.c store/*.c \
                client/*.c))
# libmodeld-client.a: the UE client (client/) with the proto/ and fileio/
# it uses, so that an app links it alone (plus libcurl, jansson, libcrypto,
# libzstd).
CLIENT_LIB_SRC := $(sort $(wildcard client/*.c proto/*.c fileio/*.c))
SERVER_SRC := $(sort $(wildcard server/*.c))
UNIT_SRC   := $(sort $(wildcard tests/unit/check_*.c))
UNIT_NAMES := $(patsubst tests/unit/%.c,%,$(UNIT_SRC))

OBJ_LIB    := $(LIB_SRC:%.c=build/obj/%.o)
OBJ_SERVER := $(SERVER_SRC:%.c=build/obj/%.o)
ASAN_LIB    := $(LIB_SRC:%.c=build/asan/%.o)
ASAN_SERVER := $(SERVER_SRC:%.c=build/asan/%.o)
# Unit tests link everything but main().
OBJ_TESTABLE  := $(OBJ_LIB) $(filter-out build/obj/server/main.o,$(OBJ_SERVER))
ASAN_TESTABLE := $(ASAN_LIB) $(filter-out build/asan/server/main.o,$(ASAN_SERVER))

UNIT_BINS      := $(UNIT_NAMES:%=build/tests/%)
ASAN_UNIT_BINS := $(UNIT_NAMES:%=build/asan/tests/%)

.PHONY: all deps check e2e crash pg deploy-check install asan tsan test run bench fuzz fuzz-build \
        fuzz-smoke fuzz-seeds format clean valgrind sanitize spec

all: build/modeld build/libmodeld-client.a build/modeld-apply

# ---- system packages ---------------------------------------------------
# Installs, with apt-get, whatever pkg-config or command -v cannot find.
deps:
	@./deploy/install-deps.sh

# ---- build -------------------------------------------------------------
build/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

build/asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN) -O1 -c $< -o $@

build/modeld: $(OBJ_LIB) $(OBJ_SERVER)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# build/modeld-apply: `modeld patch`/`decode` alone, with only what
# applying needs (what a UE ships; tools/modeld_apply.c says why): libzstd
# and libcrypto linked statically (libzstd-dev and libssl-dev ship the .a),
# as Debian's zstd binary links libzstd, so that only SHA-256's code comes
# along and nothing is relocated at start.
APPLY_OBJ := build/obj/tools/modeld_apply.o build/obj/server/cmd_patch.o \
             build/obj/fileio/fileio.o build/obj/proto/delta.o \
             build/obj/proto/digest.o build/obj/proto/tensor_code.o \
             build/obj/proto/tensor_rc.o
build/modeld-apply: $(APPLY_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ -Wl,-Bstatic -lcrypto -lzstd -Wl,-Bdynamic

build/libmodeld-client.a: $(CLIENT_LIB_SRC:%.c=build/obj/%.o)
	rm -f $@
	$(AR) rcs $@ $^

build/asan/modeld: $(ASAN_LIB) $(ASAN_SERVER)
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS)

# check_server sees every free() of the server's objects (--wrap), to
# check that secrets are wiped before their memory goes back.
LDWRAP_check_server := -Wl,--wrap=free
# check_store makes strdup fail on demand (the SQL layer's binds).
LDWRAP_check_store := -Wl,--wrap=strdup

build/tests/%: tests/unit/%.c $(OBJ_TESTABLE)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(OBJ_TESTABLE) $(CHECK_LIBS) $(LDLIBS) \
	    $(LDWRAP_$*)

build/asan/tests/%: tests/unit/%.c $(ASAN_TESTABLE)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN) -o $@ $< $(ASAN_TESTABLE) $(CHECK_LIBS) \
	    $(LDLIBS) $(LDWRAP_$*)

# ---- tests -------------------------------------------------------------
# Each runner appends "passed failed" to build/results; `test` sums them.
check: $(UNIT_BINS)
	@./tests/run-unit.sh build/tests $(UNIT_NAMES)
	@./tests/source_rules.sh

e2e: build/modeld
	@./tests/e2e/run.sh build/modeld

# The PostgreSQL catalog: the store suite on a throw-away server, then
# daemons sharing one, and edges (tests/pg/run.sh; the pull-through case
# runs its edge on the ASan build).
pg: build/modeld build/asan/modeld build/tests/check_store
	@./tests/pg/run.sh build/modeld build/tests/check_store

# nginx in front (deploy/nginx-modeld-cache.conf), make install,
# systemd-analyze verify, the container and Kubernetes files.
deploy-check: build/modeld
	@./tests/deploy/run.sh build/modeld

# SIGKILL at random moments, then a full disk (a tmpfs: needs root).
crash: build/modeld
	@./tests/crash/run.sh build/modeld

# check_policy (pure: no files, no globals, no signals) runs in one process
# under ASan: LeakSanitizer at the exit of each of its ~1600 forked checks
# took 126 s of make test, 26 s unforked; leaks are still checked once, at
# the end, and any ASan/UBSan report still fails the run.
ASAN_NOFORK_UNITS := check_policy

asan: $(ASAN_UNIT_BINS) build/asan/modeld
	@./tests/run-unit.sh build/asan/tests $(filter-out $(ASAN_NOFORK_UNITS),$(UNIT_NAMES))
	@CK_FORK=no ./tests/run-unit.sh build/asan/tests $(ASAN_NOFORK_UNITS)
	@MODELD_E2E_QUICK=1 ./tests/e2e/run.sh build/asan/modeld

sanitize: asan

# ThreadSanitizer on the tests of the code that threads share without a
# global lock (the access log's per-thread buffers against its close and
# reopen), built apart in build/tsan/ from only what they need.
TSAN := -fsanitize=thread -fno-omit-frame-pointer
TSAN_UNIT_NAMES := check_access_log
build/tsan/tests/check_access_log: tests/unit/check_access_log.c \
        server/access_log.c server/log.c fileio/fileio.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(TSAN) -O1 -o $@ $(filter %.c,$^) $(CHECK_LIBS) -lpthread -lm

tsan: $(TSAN_UNIT_NAMES:%=build/tsan/tests/%)
	@rm -f build/tsan/report.*
	@TSAN_OPTIONS="halt_on_error=1 exitcode=66 log_path=$(CURDIR)/build/tsan/report" \
	    ./tests/run-unit.sh build/tsan/tests $(TSAN_UNIT_NAMES) || \
	    { cat build/tsan/report.* 2>/dev/null; exit 1; }

# The API description: redocly lint (the pinned @redocly/cli, installed by
# npm into build/redocly: the only network use, at install time) with 0
# errors and only the warnings README.md justifies.
REDOCLY_VERSION := 2.77.0
REDOCLY := build/redocly/node_modules/.bin/redocly
$(REDOCLY):
	@mkdir -p build/redocly
	npm install --prefix build/redocly --no-audit --no-fund \
	    --loglevel=error @redocly/cli@$(REDOCLY_VERSION)
	@touch $@

spec: $(REDOCLY)
	@./tests/spec/lint.sh $(REDOCLY)

test: deps
	@rm -f build/results
	@$(MAKE) --no-print-directory all $(UNIT_BINS) build/asan/modeld \
	    $(ASAN_UNIT_BINS)
	@status=0; \
	$(MAKE) --no-print-directory check || status=1; \
	$(MAKE) --no-print-directory spec || status=1; \
	$(MAKE) --no-print-directory e2e || status=1; \
	$(MAKE) --no-print-directory crash || status=1; \
	$(MAKE) --no-print-directory pg || status=1; \
	$(MAKE) --no-print-directory deploy-check || status=1; \
	$(MAKE) --no-print-directory asan || status=1; \
	$(MAKE) --no-print-directory tsan || status=1; \
	$(MAKE) --no-print-directory fuzz-smoke || status=1; \
	./tests/summary.sh build/results || status=1; \
	exit $$status

valgrind: $(UNIT_BINS)
	@for t in $(UNIT_BINS); do \
	    CK_FORK=no valgrind -q --error-exitcode=1 --leak-check=full $$t \
	    || exit 1; done

# ---- install -----------------------------------------------------------
# `make install [PREFIX=/usr/local] [DESTDIR=]`: the binary, the systemd
# unit (pointing at the installed binary), the default config (kept when
# one is already there), the README and the deployment examples.
PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
UNITDIR    ?= /lib/systemd/system
install: build/modeld
	install -D -m 0755 build/modeld $(DESTDIR)$(PREFIX)/bin/modeld
	install -d $(DESTDIR)$(UNITDIR)
	sed 's#/usr/local/bin/modeld#$(PREFIX)/bin/modeld#g; s#/usr/local/share/doc#$(PREFIX)/share/doc#g' \
	    deploy/modeld.service >$(DESTDIR)$(UNITDIR)/modeld.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/modeld.service
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/modeld
	[ -e $(DESTDIR)$(SYSCONFDIR)/modeld/modeld.conf ] || \
	    install -m 0644 configs/modeld.conf $(DESTDIR)$(SYSCONFDIR)/modeld/modeld.conf
	install -d $(DESTDIR)$(PREFIX)/share/doc/modeld/k8s
	install -m 0644 README.md deploy/nginx-modeld-cache.conf deploy/Dockerfile \
	    $(DESTDIR)$(PREFIX)/share/doc/modeld/
	install -m 0644 deploy/k8s/*.yaml $(DESTDIR)$(PREFIX)/share/doc/modeld/k8s/

# ---- demo ---------------------------------------------------------------
run: deps
	@$(MAKE) --no-print-directory all
	@./deploy/run-demo.sh

format:
	clang-format -i --style='{BasedOnStyle: LLVM, IndentWidth: 4, ColumnLimit: 80}' \
	    $(LIB_SRC) $(SERVER_SRC) $(UNIT_SRC) */*.h

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)

# ---- fuzzing ----
# libFuzzer targets (clang) for every parser that takes client bytes, one
# per tests/fuzz/fuzz_*.c, seeded from tests/fuzz/corpus/<target>/. Their
# objects live apart in build/fuzz/obj (coverage + ASan + UBSan).
# `make fuzz FUZZ_SECONDS=N` runs each target N seconds; `make fuzz-smoke`
# runs each 3 seconds after replaying its corpus, crash regressions
# included. `make fuzz-seeds` rewrites the delta seeds (run once, commit).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all \
                -fno-omit-frame-pointer
FUZZ_CFLAGS   = $(CSTD) -O1 -g $(WARN) -I. $(PKG_CFLAGS) $(FUZZ_SAN) -MMD -MP
FUZZ_SRC     := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS    := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
# fuzz_route needs the server (and so store/ and policy/); the rest proto/.
FUZZ_PROTO_OBJ  := $(patsubst %.c,build/fuzz/obj/%.o,\
                     $(sort $(wildcard proto/*.c)))
FUZZ_SERVER_OBJ := $(patsubst %.c,build/fuzz/obj/%.o,\
                     $(LIB_SRC) $(filter-out server/main.c,$(SERVER_SRC)))


build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

build/fuzz/fuzz_route: tests/fuzz/fuzz_route.c $(FUZZ_SERVER_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< \
	    $(FUZZ_SERVER_OBJ) $(LDLIBS)

# fuzz_client: what the UE client parses (client/ and proto/).
build/fuzz/fuzz_client: tests/fuzz/fuzz_client.c \
                        $(patsubst %.c,build/fuzz/obj/%.o,$(CLIENT_LIB_SRC))
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< \
	    $(patsubst %.c,build/fuzz/obj/%.o,$(CLIENT_LIB_SRC)) $(LDLIBS)

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_PROTO_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< \
	    $(FUZZ_PROTO_OBJ) $(LDLIBS)

build/fuzz/make_seeds: tests/fuzz/make_seeds.c \
                       $(filter build/obj/proto/%,$(OBJ_LIB))
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

build/fuzz/make_tensor_seeds: tests/fuzz/make_tensor_seeds.c \
                              $(filter build/obj/proto/%,$(OBJ_LIB))
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS)

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	@./tests/fuzz/run.sh $(FUZZ_SECONDS)

fuzz-smoke: fuzz-build
	@./tests/fuzz/run.sh 3

fuzz-seeds: build/fuzz/make_seeds build/fuzz/make_tensor_seeds
	@./build/fuzz/make_seeds tests/fuzz/corpus/fuzz_delta
	@mkdir -p tests/fuzz/corpus/fuzz_tensor_map tests/fuzz/corpus/fuzz_tensor_dec
	@./build/fuzz/make_tensor_seeds tests/fuzz/corpus

# ---- benchmarks ----
# `make bench`: modeld against nginx, sha256sum + cp, zstd, xdelta3 and
# bsdiff, measured in the same run on 127.0.0.1 (tests/bench/run.sh
# installs the tools it lacks; under 10 minutes on 2 cores). Prints a table
# of ratios and writes build/bench/results.json.
bench: deps all
	@./tests/bench/run.sh build/modeld
