# The front door. `make help` lists the targets.
SHELL       := /bin/bash
CARGO       ?= cargo
VECTORS     ?= $(abspath $(CURDIR)/../shared/suit-vectors)
FUZZ_TIME   ?= 600
# envelope: decode + authenticate + process; ta_command: the TA's command entry (simulator);
# encryption_info: COSE_Encrypt decoding and key unwrap.
FUZZ_TARGETS ?= envelope ta_command encryption_info
# Where each fuzz target keeps the input it is running (rewritten per input: tmpfs if there is one).
FUZZ_SCRATCH ?= $(if $(wildcard /dev/shm),/dev/shm,$(CURDIR)/fuzz/artifacts)
export SUIT_VECTORS := $(VECTORS)

.PHONY: help run tool-demo test fmt-check clippy unit host fuzz fuzz-smoke bench clean
help:
	@echo "make run         the main job in OP-TEE under QEMU: boot v1, install an encrypted v2, reboot, confirm"
	@echo "make test        format check, clippy (warnings denied), all tests"
	@echo "make qemu-test   xtest smoke, TA preflight, then every end-to-end scenario in OP-TEE under QEMU"
	@echo "make tool-demo   walk through suit-tool alone: keys, create, sign, verify, inspect, process"
	@echo "make host        release build of suit-tool and suit-agent (this machine)"
	@echo "make host-aarch64  suit-agent for the device (aarch64, OP-TEE backend)"
	@echo "make ta          build and sign the OP-TEE TA (build/ta/<uuid>.ta)"
	@echo "make qemu-smoke  boot the OP-TEE QEMUv8 environment and run xtest"
	@echo "make fuzz        fuzz each target: $(FUZZ_TARGETS) (FUZZ_TIME=$(FUZZ_TIME) s each)"
	@echo "make bench       benchmarks, each as a ratio to a baseline measured in the same run (build/bench/summary.json)"
	@echo "make verify-units  systemd-analyze verify and security rating of the agent's units"
	@echo "make deb           Debian packages in build/deb: suit-agent (arm64), suit-ta (arm64), suit-tool (amd64); lintian"

include ta/ta.mk
include qemu/qemu.mk
include host/host.mk

# The main job, end to end in the OP-TEE QEMU environment (tests/bin/demo.rs, build/demo/).
run: ta host-aarch64 host qemu-env
	$(CARGO) run -p suit-tests --bin demo

# suit-tool alone, on this machine: keys, a signed update, its checks.
DEMO := build/tool-demo
tool-demo: host
	@mkdir -p $(DEMO) && head -c 1048576 /dev/urandom > $(DEMO)/firmware-v2.bin
	@printf '%s\n' 'sequence-number = 2' 'vendor = "example.com"' 'class = "gateway-rev-b"' \
	  '[text]' 'description = "demo firmware v2"' '[[component]]' 'id = ["rootfs"]' \
	  'image = "firmware-v2.bin"' 'uri = "http://10.0.2.100:8080/firmware-v2.bin"' > $(DEMO)/spec.toml
	@T=target/release/suit-tool; set -x; \
	$$T keygen --alg ES384 --out $(DEMO)/vendor && \
	$$T create --spec $(DEMO)/spec.toml --out $(DEMO)/unsigned.suit && \
	$$T sign --key $(DEMO)/vendor.priv.pem $(DEMO)/unsigned.suit --out $(DEMO)/update.suit && \
	$$T verify --trust-anchor $(DEMO)/vendor.pub.pem $(DEMO)/update.suit && \
	$$T inspect $(DEMO)/update.suit && \
	$$T process $(DEMO)/update.suit --trust-anchor $(DEMO)/vendor.pub.pem \
	  --vendor-id $$(python3 -c 'import uuid;print(uuid.uuid5(uuid.NAMESPACE_DNS,"example.com"))') \
	  --class-id $$(python3 -c 'import uuid;print(uuid.uuid5(uuid.uuid5(uuid.NAMESPACE_DNS,"example.com"),"gateway-rev-b"))') \
	  --image 0=$(DEMO)/firmware-v2.bin && \
	! $$T process $(DEMO)/update.suit --trust-anchor $(DEMO)/vendor.pub.pem --sequence-floor 3 --image 0=$(DEMO)/firmware-v2.bin

test: fmt-check clippy unit

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	@bash qemu/debian.sh host-tools cryptsetup-bin   # veritysetup, for shared/tests/verity_veritysetup.rs
	@bash qemu/debian.sh host-tools libssl-dev pkg-config   # the host crypto provider (host/src/crypto.rs)
	@bash fleet/goosebit-suit/setup.sh   # gooseBit for host/tests/ddi_goosebit.rs
	$(CARGO) test --workspace

host:
	@bash qemu/debian.sh host-tools libssl-dev pkg-config
	$(CARGO) build --release -p suit-host

fuzz-seed:
	@mkdir -p fuzz/corpus/envelope fuzz/corpus/encryption_info
	@for f in $(VECTORS)/*/*.suit; do cp "$$f" "fuzz/corpus/envelope/$$(basename $$(dirname $$f))-$$(basename $$f)"; done
	@# encryption_info inputs are framed: a 2-byte big-endian length, the COSE structure, a payload.
	@for f in $(VECTORS)/*/*.cose; do n=$$(stat -c %s "$$f"); \
	  { printf "$$(printf '\\x%02x\\x%02x' $$((n >> 8 & 255)) $$((n & 255)))"; cat "$$f"; } \
	    > "fuzz/corpus/encryption_info/$$(basename $$(dirname $$f))-$$(basename $$f)"; done

# cargo-fuzz needs unstable rustc flags; RUSTC_BOOTSTRAP lets the pinned stable toolchain take them.
# Each input runs on a thread with the TA's stack and a CBOR-aware mutator
# (fuzz/fuzz_targets/common); no sanitizer (safe Rust), so that stack frames are the size
# they have in the TA; a dictionary of SUIT/COSE tokens.
fuzz: fuzz-seed
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@mkdir -p $(FUZZ_SCRATCH)
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz $$t for $(FUZZ_TIME) s"; \
	  last=$(FUZZ_SCRATCH)/suit-fuzz-$$t-last-input; \
	  SUIT_FUZZ_LAST_INPUT=$$last \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --sanitizer none $$t -- -max_total_time=$(FUZZ_TIME) \
	    -dict=dict/suit.dict -print_final_stats=1 \
	    || { mkdir -p artifacts/$$t && cp $$last artifacts/$$t/last-input; \
	         echo "fuzz $$t failed; the input it ran last (a stack overflow kills the process before" \
	              "libFuzzer saves it): fuzz/artifacts/$$t/last-input"; exit 1; }; \
	done

fuzz-smoke:
	$(MAKE) fuzz FUZZ_TIME=20

# Each bench also writes its figures to build/bench/<bench>.json and merges them all into the
# flat object build/bench/summary.json; emptied first, so no figure of an earlier run survives.
# The QEMU figures (ta_invokes_per_mib: STREAM_UPDATE invokes per MiB with the default TA,
# ta_invokes_total_per_mib_64m, qemu_stream_seconds_per_mib) are measured first, in this run,
# by tests/qemu_streaming.rs's streamed 64 MiB install in OP-TEE (it writes
# build/bench/qemu_streaming.json when SUIT_BENCH_DIR is set); BENCH_QEMU=0 skips them.
BENCH_QEMU ?= 1
bench:
	@bash qemu/debian.sh host-tools time openssl curl libssl-dev pkg-config
	rm -rf build/bench
	$(if $(filter 1,$(BENCH_QEMU)),SUIT_BENCH_DIR=$(CURDIR)/build/bench QEMU_CACHE=$(QEMU_CACHE) \
	  $(CARGO) test -p suit-tests --features qemu --test qemu_streaming -- --exact streamed_encrypted_update_of_64_mib)
	$(CARGO) bench -p suit-host --bench tool
	$(CARGO) bench -p suit-host --bench decrypt
	$(CARGO) bench -p suit-host --bench agent
	$(CARGO) bench -p suit-host --bench ta_stream
	$(CARGO) bench -p suit-host --bench pq
	$(CARGO) bench -p suit-host --bench ta_size
	@echo "== build/bench/summary.json" && cat build/bench/summary.json

clean:
	$(CARGO) clean
	rm -rf build fuzz/target
