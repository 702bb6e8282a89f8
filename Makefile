# Fathom: `make run` and `make test` work on a fresh Debian machine as root; both install what
# is missing first (`make deps`).
SHELL := /bin/bash
CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
# Third-party captures and vectors with known answers (read by the L7 tests).
export FATHOM_CORPUS ?= $(abspath $(CURDIR)/../shared/corpus)

# Build: clang/llvm compile bpf/*.bpf.c; libelf/zlib/pkg-config for libbpf-sys; bpftool for vmlinux.h.
# Test peers: real servers and clients the lab tests run against.
DEB_PACKAGES := iputils-ping nmap hping3 clang llvm libelf-dev zlib1g-dev pkg-config bpftool iproute2 make gcc \
	curl nginx iperf3 python3 tcpdump tshark dnsutils procps iptables prometheus tmux chromium chromium-driver \
	dnsmasq-base redis-server redis-tools postgresql postgresql-client mariadb-server mariadb-client \
	libdbd-mariadb-perl python3-grpcio nghttp2-client g++ wrk openssl

.PHONY: all deps build release run test check-clean bench bench-l7 bench-policy-pps bench-replay bench-shield-flood fuzz vmlinux fmt clippy lint clean

all: build

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "make deps: installing $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "make deps: cargo not found (install Rust with rustup)"; exit 1; }
	@mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
	@mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing || true

build: deps
	$(CARGO) build --workspace

release: deps
	$(CARGO) build --release -p fathom-cli

# Starts the agent on this host with the embedded defaults and shows its live flows.
run: release
	./scripts/run.sh $(TARGET_DIR)/release/fathom

# Every test, the privileged kernel and lab tests included, then proof nothing was left behind.
test: deps
	$(CARGO) build --workspace --all-targets
	FATHOM_REQUIRE_PEERS=1 $(CARGO) test --workspace --no-fail-fast
	./scripts/check-clean.sh $(TARGET_DIR)/debug/fathom

# Every cargo-fuzz target of the L7 engine for FUZZ_SECONDS each; fails on a crash, an
# over-limit allocation or a slow input.
FUZZ_SECONDS ?= 30
fuzz: deps
	./scripts/fuzz.sh $(FUZZ_SECONDS)

# fathom replay against tshark on the same large capture (also part of `make bench`).
bench-replay: deps
	./scripts/bench-replay.sh

check-clean: build
	./scripts/check-clean.sh $(TARGET_DIR)/debug/fathom

bench: deps
	$(CARGO) bench --workspace
	./scripts/bench-l7.sh
	./scripts/bench-policy-pps.sh

# Live L7 capture overhead in the lab: wrk and iperf3 with capture on vs off (also part of `make bench`).
bench-l7: deps
	./scripts/bench-l7.sh

# Lab packets/s through a router: no filter vs 10k iptables rules vs fathom's policy datapath
# with 10k entries (also part of `make bench`).
bench-policy-pps: deps
	./scripts/bench-policy-pps.sh

# A legit client's request rate under an hping3 SYN flood in a lab, XDP shield off vs on.
bench-shield-flood: build
	./scripts/bench-shield-flood.sh $(TARGET_DIR)/debug/fathom

# Regenerate bpf/vmlinux.h from this kernel's BTF (committed; CO-RE keeps it portable).
vmlinux: deps
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > bpf/vmlinux.h

fmt:
	$(CARGO) fmt --all

clippy lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --manifest-path crates/fathom-l7/fuzz/Cargo.toml --all-targets -- -D warnings

clean:
	$(CARGO) clean
