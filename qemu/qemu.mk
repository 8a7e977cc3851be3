# qemu/qemu.mk — OP-TEE QEMUv8 environment targets, included by the top-level Makefile.
#   make qemu-env      assemble the environment from Debian packages into $(QEMU_CACHE)
#   make qemu-smoke    boot it and run OP-TEE's xtest smoke (regression 1001 4001 6001)
#   make qemu-selftest the harness's own checks (A/B boot decisions, power cut, networking, panic/timeout detection)
#   make qemu-run      boot it interactively (shell on the console; AGENT_BIN/AGENT_CONFIG/TA
#                      from build/ta are added; disks in build/qemu-run)
# Variables: QEMU_CACHE (default build/qemu-cache), DEBIAN_MIRROR (default: the machine's apt
# mirror), AGENT_BIN, AGENT_CONFIG, TA_OUT_DIR. See qemu/README.md.

QEMU_CACHE   ?= $(CURDIR)/build/qemu-cache
AGENT_BIN    ?=
AGENT_CONFIG ?=
export QEMU_CACHE AGENT_BIN AGENT_CONFIG
ifneq ($(DEBIAN_MIRROR),)
export DEBIAN_MIRROR
endif

.PHONY: qemu-env qemu-smoke qemu-selftest qemu-run
qemu-env:
	@bash qemu/build-env.sh

qemu-smoke:
	@bash qemu/smoke.sh

qemu-selftest: qemu-env
	cargo test -p suit-tests --features qemu --test qemu_env -- --test-threads=1

qemu-run: qemu-env
	@bash qemu/run.sh --shell --timeout 3600
