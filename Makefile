# poold — top-level, non-recursive Makefile.
#
#   make            build the library and every program into build/
#   make check      install missing Debian packages, build an ASan+UBSan variant
#                   into build-san/ and run every test tier (unit, integration, its core
#                   again over a TLS-only ZooKeeper, fuzz smoke)
#   make fuzz       build libFuzzer targets into build-fuzz/ and run each FUZZ_SECONDS
#   make install    install into $(DESTDIR)$(PREFIX)
#   make deps       install the Debian packages the build and the tests need, and
#                   build the ZooKeeper C client with TLS from Debian's source
#   make up         install what the pool needs (deps-run), build, run poold/poold-local up
#
# Sources are found by wildcard, so a new module or test needs no Makefile edit:
#   shared/<subsystem>/*.c   -> libpool.a (linked into everything); subsystems:
#                               base, zk, model, config, providers
#   poold/poolctl*.c, poold/ctl_*.c -> poolctl
#   other poold/*.c          -> libpoold.a (the launcher's modules) + poold/main.c -> poold
#   builder/*.c              -> libbuilder.a + builder/main.c -> poold-builder
#   gitlab/*.c               -> libgitlab.a + gitlab/main.c -> poold-gitlab-executor
#   tests/unit/test_*.c      -> one cmocka program each, linked with every module
#                               library (only what a test uses is pulled in)
#   tests/unit/test_launcher_*.c -> the same, plus the in-process fake cloud
#                               (tests/unit/fake_provider.c); check-unit runs them
#                               beside a ZooKeeper of their own (tests/tools/with-zookeeper)
#   tests/tools/*.c          -> helper programs the integration tests drive
#   tests/fuzz/fuzz_*.c      -> one libFuzzer target each

PREFIX ?= /usr/local
SAN ?= 0
FUZZ_SECONDS ?= 30
PYTHON ?= /usr/bin/python3
PYTEST_ARGS ?=

ifeq ($(SAN),1)
BUILD := build-san
OPT := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
else
BUILD ?= build
OPT := -O2
endif

PKGS := yaml-0.1 jansson libcurl libvirt libguestfs libmicrohttpd
PKG_CONFIG ?= pkg-config
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)

# The ZooKeeper C client with TLS (Debian's libzookeeper-mt has none), built
# from Debian's source package by `make deps` (tools/zkclient/build.sh).
ZKC_VERSION := 3.8.0-11+deb12u2
ZKC_PREFIX ?= /var/cache/poold-zkclient/$(ZKC_VERSION)
ZKC_LIB := $(ZKC_PREFIX)/lib/libzookeeper.a
# HAVE_OPENSSL_H: the header's zsock_t layout and zookeeper_init_ssl depend on it.
ZKC_CFLAGS := -I$(ZKC_PREFIX)/include -DHAVE_OPENSSL_H
ZKC_LIBS := $(ZKC_LIB) $(ZKC_PREFIX)/lib/libhashtable.a -lssl -lcrypto

CC ?= cc
# Every libpool subsystem folder is on the include path: includes stay flat ("zk.h").
SHARED_INC := $(addprefix -I,$(sort $(patsubst %/,%,$(dir $(wildcard shared/*/*.h)))))
CFLAGS_ALL := -std=c11 -D_GNU_SOURCE -DTHREADED -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
	-Wformat=2 -Wno-format-nonliteral -g $(OPT) $(SHARED_INC) $(ZKC_CFLAGS) $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL := $(OPT) $(LDFLAGS)
LIBS := $(PKG_LIBS) $(ZKC_LIBS) -lpthread -lm

# Debian packages the pool needs to build and run the embedded default
# (`make up`: ZooKeeper, libvirt/QEMU, libguestfs, debootstrap, kazoo for
# poold-local's checks, and what the TLS ZooKeeper client is built with) ...
RUN_PKGS := build-essential pkg-config \
	libssl-dev cmake dpkg-dev patch libzookeeper-java libyaml-dev libjansson-dev libcurl4-openssl-dev libvirt-dev \
	libguestfs-dev libmicrohttpd-dev zookeeper default-jre-headless \
	python3 python3-kazoo openssh-client openssl \
	libvirt-daemon libvirt-daemon-driver-qemu libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils \
	supermin linux-image-amd64 debootstrap iproute2 procps
# ... and what only the tests add (`make check`); the OpenStack services are
# installed by their test fixture when that tier first runs.
TEST_PKGS := clang libclang-rt-14-dev libcmocka-dev python3-pytest python3-yaml openssh-server \
	python3-guestfs chromium
DEB_PKGS := $(RUN_PKGS) $(TEST_PKGS)

SHARED_SRC := $(sort $(wildcard shared/*/*.c))
CTL_SRC := $(sort $(wildcard poold/poolctl*.c poold/ctl_*.c))
POOLD_SRC := $(filter-out $(CTL_SRC),$(sort $(wildcard poold/*.c)))
BUILDER_SRC := $(sort $(wildcard builder/*.c))
GITLAB_SRC := $(sort $(wildcard gitlab/*.c))
# Headers of the programs' modules, for the tests.
MODULE_INC := -Ipoold -Ibuilder -Igitlab
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
LAUNCHER_UNIT_SRC := $(filter tests/unit/test_launcher_%,$(UNIT_SRC))
TOOL_SRC := $(sort $(wildcard tests/tools/*.c))
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
LIBPOOL := $(BUILD)/lib/libpool.a
# Each program's modules without main(), so unit tests link them instead of
# including .c files.
LIBPOOLD := $(BUILD)/lib/libpoold.a
LIBBUILDER := $(BUILD)/lib/libbuilder.a
LIBGITLAB := $(BUILD)/lib/libgitlab.a
MODULE_LIBS := $(LIBPOOLD) $(LIBBUILDER) $(LIBGITLAB)
PROGRAMS := $(BUILD)/bin/poold $(BUILD)/bin/poolctl $(BUILD)/bin/poold-builder
PROGRAMS += $(BUILD)/bin/poold-gitlab-executor
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
LAUNCHER_UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(LAUNCHER_UNIT_SRC))
TOOL_BINS := $(patsubst tests/tools/%.c,$(BUILD)/tests/tools/%,$(TOOL_SRC))

.PHONY: all programs tests check check-unit check-integration check-integration-tls fuzz fuzz-build deps deps-run \
	install clean up up-build down
.DELETE_ON_ERROR:

all: programs

programs: $(PROGRAMS)

tests: $(PROGRAMS) $(UNIT_BINS) $(TOOL_BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(BUILD)/obj/tests/%.o: CFLAGS_ALL += $(MODULE_INC)

$(LIBPOOL): $(call obj,$(SHARED_SRC))
$(LIBPOOLD): $(call obj,$(filter-out poold/main.c,$(POOLD_SRC)))
$(LIBBUILDER): $(call obj,$(filter-out builder/main.c,$(BUILDER_SRC)))
$(LIBGITLAB): $(call obj,$(filter-out gitlab/main.c,$(GITLAB_SRC)))
$(LIBPOOL) $(MODULE_LIBS):
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/bin/poold: $(BUILD)/obj/poold/main.o $(LIBPOOLD) $(LIBPOOL)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

$(BUILD)/bin/poolctl: $(call obj,$(CTL_SRC)) $(LIBPOOL)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

$(BUILD)/bin/poold-builder: $(BUILD)/obj/builder/main.o $(LIBBUILDER) $(LIBPOOL)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

$(BUILD)/bin/poold-gitlab-executor: $(BUILD)/obj/gitlab/main.o $(LIBGITLAB) $(LIBPOOL)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(MODULE_LIBS) $(LIBPOOL)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS) $(CMOCKA_LIBS)

# The fake cloud's object comes before libpool.a: its provider_libvirt_ops is the
# one the driver table gets (see tests/unit/fake_provider.c).
FAKE_PROVIDER_OBJ := $(BUILD)/obj/tests/unit/fake_provider.o
$(LAUNCHER_UNIT_BINS): $(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(FAKE_PROVIDER_OBJ) $(MODULE_LIBS) $(LIBPOOL)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS) $(CMOCKA_LIBS)

# The ZooKeeper recipes' unit tests run on a scripted in-memory ZooKeeper whose
# zk_* calls come before libpool.a (see tests/unit/scripted_zk.h).
SCRIPTED_ZK_OBJ := $(BUILD)/obj/tests/unit/scripted_zk.o
SCRIPTED_ZK_BINS := $(BUILD)/tests/test_zk_lock $(BUILD)/tests/test_zk_update
$(SCRIPTED_ZK_BINS): $(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(SCRIPTED_ZK_OBJ) $(MODULE_LIBS) $(LIBPOOL)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS) $(CMOCKA_LIBS)

$(BUILD)/tests/tools/%: $(BUILD)/obj/tests/tools/%.o $(MODULE_LIBS) $(LIBPOOL)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# A rebuilt client recompiles zk.o, so libpool.a and every program are relinked.
$(BUILD)/obj/shared/zk/zk.o: $(ZKC_LIB)
$(ZKC_LIB):
	@echo "$@ is missing: run 'make deps' (as root) to build the ZooKeeper C client with TLS" >&2; exit 1

# ---------------------------------------------------------------- tests
# `make check` is what CI and the README run. It installs what is missing,
# then builds and runs everything under AddressSanitizer + UBSan.
check: deps
	$(MAKE) SAN=1 tests
	$(MAKE) SAN=1 check-unit
	$(MAKE) SAN=1 check-integration
	$(MAKE) SAN=1 check-integration-tls
	$(MAKE) fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)
	@echo "make check: all tiers passed"

export ASAN_OPTIONS := abort_on_error=0:halt_on_error=1:detect_leaks=1:strict_string_checks=1:suppressions=$(CURDIR)/tests/asan.supp
export UBSAN_OPTIONS := print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS := suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0

# The launcher-core tests each get one ZooKeeper (stopped on exit, SIGTERM, Ctrl-C).
check-unit: $(UNIT_BINS)
	@fail=0; for t in $(UNIT_BINS); do \
		echo "== $$t"; \
		case " $(LAUNCHER_UNIT_BINS) " in *" $$t "*) zk="$(PYTHON) tests/tools/with-zookeeper";; *) zk=;; esac; \
		POOLD_SRCDIR=$(CURDIR) $$zk $$t || fail=1; \
	done; exit $$fail

check-integration: tests
	POOLD_BUILD=$(CURDIR)/$(BUILD) POOLD_SRCDIR=$(CURDIR) \
		$(PYTHON) -m pytest -p no:cacheprovider -v tests/integration $(PYTEST_ARGS)

# The core launcher, poolctl and session tiers once more against a TLS-only
# ZooKeeper (test_zk_tls.py runs in check-integration anyway). Any tier runs
# so with POOLD_TEST_ZK_TLS=1. Exit 5: PYTEST_ARGS deselected every test here.
TLS_TIER := $(addprefix tests/integration/,test_launcher_requests.py test_launcher_daemon.py \
	test_poolctl.py test_zk_session.py test_zk_cache.py)
check-integration-tls: tests
	POOLD_TEST_ZK_TLS=1 POOLD_BUILD=$(CURDIR)/$(BUILD) POOLD_SRCDIR=$(CURDIR) \
		$(PYTHON) -m pytest -p no:cacheprovider -v $(TLS_TIER) $(PYTEST_ARGS) || [ $$? -eq 5 ]

# ---------------------------------------------------------------- fuzz
FUZZ_BUILD := build-fuzz
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -DTHREADED -g -O1 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all $(SHARED_INC) $(MODULE_INC) $(ZKC_CFLAGS) $(PKG_CFLAGS)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(FUZZ_BUILD)/%,$(FUZZ_SRC))

# The program modules a target fuzzes, linked in as their own objects (a
# target includes only headers, as the unit tests do). They are compiled here
# with the fuzz flags like the shared sources, not taken from libpoold.a: gcc
# builds that without libFuzzer's coverage instrumentation.
FUZZ_MODULES_fuzz_webapp_req := poold/webapp_req.c
$(FUZZ_BUILD)/fuzz_webapp_req: $(FUZZ_MODULES_fuzz_webapp_req) poold/webapp_req.h

fuzz-build: $(FUZZ_BINS)

$(FUZZ_BUILD)/%: tests/fuzz/%.c $(SHARED_SRC) $(wildcard shared/*/*.h) $(ZKC_LIB)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_MODULES_$*) $(SHARED_SRC) $(LIBS)

fuzz: fuzz-build
	@for f in $(FUZZ_BINS); do \
		name=$$(basename $$f); corpus=tests/fuzz/corpus/$$name; \
		work=$(FUZZ_BUILD)/corpus-$$name; mkdir -p $$work; \
		echo "== fuzzing $$name for $(FUZZ_SECONDS)s (seeds: $$corpus)"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=1024 \
			-print_final_stats=1 $$work $$corpus 2>$(FUZZ_BUILD)/$$name.log \
			|| { tail -50 $(FUZZ_BUILD)/$$name.log; exit 1; }; \
		grep -E '^stat::number_of_executed_units|^Done' $(FUZZ_BUILD)/$$name.log | tail -2; \
	done

# ---------------------------------------------------------------- deps
# Installs whichever of PKGS is missing. pkg-config's answers above are taken
# when make reads this file, so every target that needs packages first runs
# deps and then builds in a new make (see `up`, `check`).
PKG_INSTALL = missing=""; for p in $(1); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "deps: installing$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

deps:
	@$(call PKG_INSTALL,$(DEB_PKGS))
	@tools/zkclient/build.sh $(ZKC_VERSION) $(ZKC_PREFIX)

deps-run:
	@$(call PKG_INSTALL,$(RUN_PKGS))
	@tools/zkclient/build.sh $(ZKC_VERSION) $(ZKC_PREFIX)

# ---------------------------------------------------------------- install
install: programs
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/poold
	install -m 0755 $(PROGRAMS) poold/poold-local $(DESTDIR)$(PREFIX)/bin/
	cp -R elements etc README.md $(DESTDIR)$(PREFIX)/share/poold/
	install -d $(DESTDIR)$(PREFIX)/share/poold/tools
	install -m 0755 tools/zk-tls-ca.sh $(DESTDIR)$(PREFIX)/share/poold/tools/

# ---------------------------------------------------------------- one machine
# The embedded default: ZooKeeper, libvirtd, poold-builder, poold and a ready VM.
# up-build is `make up` without starting anything: what a fresh machine needs
# to build the programs (tested by test_install.py).
up: up-build
	poold/poold-local up

up-build:
	$(MAKE) deps-run
	$(MAKE) programs

down:
	poold/poold-local down

clean:
	rm -rf build build-san build-fuzz
