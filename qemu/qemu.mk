# qemu/qemu.mk — OP-TEE QEMUv8 environment targets, included by the top-level Makefile.
#   make qemu-env      assemble the environment from Debian packages into $(QEMU_CACHE)
#   make qemu-smoke    boot it and run OP-TEE's xtest smoke (regression 1001 4001 6001)
#   make qemu-selftest the harness's own checks (A/B boot decisions, power cut, networking, panic/timeout detection)
#   make qemu-test     everything in OP-TEE under QEMU: builds the TA, the aarch64 agent,
#                      suit-tool and the environment; the xtest smoke; the TA preflight (the
#                      TA loads and answers; a wrongly signed TA is caught); then every
#                      tests/qemu_*.rs scenario, serially, verdicts from the serial console
#   make qemu-rpmb-test the RPMB variant's own checks alone (tests/qemu_rpmb.rs; also in qemu-test)
#   make qemu-systemd-env  the systemd device's cached trixie root (qemu/systemd-root.sh base; its
#                      kernel is the RPMB variant's); tests/qemu_systemd.rs builds it itself too
#   make qemu-systemd-test the systemd device's scenario alone (tests/qemu_systemd.rs; needs
#                      make deb and make fleet-env; also in qemu-test)
#   make qemu-run      boot it interactively (shell on the console; AGENT_BIN/AGENT_CONFIG/TA
#                      from build/ta are added; disks in build/qemu-run)
# Variables: QEMU_RPMB (1, the default: the RPMB variant; 0: stock Debian OP-TEE without RPMB,
# with a TA built for REE-FS, see TA_STORAGE in ta/ta.mk), QEMU_CACHE (default build/qemu-cache),
# DEBIAN_MIRROR (default: the machine's apt mirror), AGENT_BIN, AGENT_CONFIG, TA_OUT_DIR.
# See qemu/README.md.

QEMU_CACHE   ?= $(CURDIR)/build/qemu-cache
AGENT_BIN    ?=
AGENT_CONFIG ?=
export QEMU_CACHE AGENT_BIN AGENT_CONFIG
# QEMU_RPMB=1 (default): the RPMB variant (qemu/build-rpmb.sh) for every target below;
# QEMU_RPMB=0: the base environment (Debian's OP-TEE, no RPMB; the TA then defaults to REE-FS).
QEMU_RPMB    ?= 1
export QEMU_RPMB
ifneq ($(DEBIAN_MIRROR),)
export DEBIAN_MIRROR
endif

# The scenario test files after the preflight: every tests/qemu_*.rs; on the base environment
# (QEMU_RPMB=0) without those that need RPMB (the variant's own checks, the attacks on the
# TA's state, which only RPMB withstands; the systemd device, whose kernel is the variant's).
QEMU_RPMB_TESTS := qemu_rpmb qemu_state_attacks
QEMU_TESTS := $(filter-out qemu_preflight $(if $(filter 0,$(QEMU_RPMB)),$(QEMU_RPMB_TESTS) qemu_systemd),$(basename $(notdir $(wildcard tests/qemu_*.rs))))
QEMU_CARGO_TEST = cargo test -p suit-tests --features qemu

.PHONY: qemu-env qemu-smoke qemu-selftest qemu-run qemu-test qemu-rpmb-test qemu-systemd-env qemu-systemd-test
qemu-env:
	@bash qemu/build-env.sh

qemu-smoke:
	@bash qemu/smoke.sh

qemu-selftest: qemu-env
	cargo test -p suit-tests --features qemu --test qemu_env -- --test-threads=1

qemu-run: qemu-env
	@bash qemu/run.sh --shell --timeout 3600

# --nocapture shows each scenario's phases and measurements (QEMU-PHASE / QEMU-MEASURE lines).
qemu-test: ta host-aarch64 host qemu-env
	@bash qemu/smoke.sh
	$(QEMU_CARGO_TEST) --test qemu_preflight -- --test-threads=1 --nocapture
	$(QEMU_CARGO_TEST) $(addprefix --test ,$(QEMU_TESTS)) -- --test-threads=1 --nocapture

# The RPMB checks alone (kernel RPMB route, xtest, objects across restarts and a power cut;
# the attacks on the TA's state); they select the variant themselves, whatever QEMU_RPMB says.
qemu-rpmb-test: ta host-aarch64 host
	$(QEMU_CARGO_TEST) $(addprefix --test ,$(QEMU_RPMB_TESTS)) -- --test-threads=1 --nocapture

# The systemd-booted device (qemu/README.md, "systemd device"): cached kernel and root, then its
# scenario with gooseBit (the packages of `make deb` installed into a copy of the root).
qemu-systemd-env:
	@bash qemu/systemd-root.sh base

qemu-systemd-test: deb fleet-env qemu-env qemu-systemd-env
	$(QEMU_CARGO_TEST) --test qemu_systemd -- --test-threads=1 --nocapture
