# host/host.mk — cross-build of the normal-world programs for the aarch64 device (included by
# the top-level Makefile).
#   make verify-units   systemd-analyze verify + security of host/systemd/*.service
#   make host-aarch64   suit-host's binaries for aarch64-unknown-linux-gnu with the OP-TEE
#                       backend (feature `optee`), linked against Debian trixie's libteec;
#                       installs what it needs (see host/build-aarch64.sh)
# Variables: OPTEE_CLIENT_EXPORT (default build/optee-client-export), QEMU_CACHE.

OPTEE_CLIENT_EXPORT ?= $(CURDIR)/build/optee-client-export

.PHONY: host-aarch64
host-aarch64:
	@OPTEE_CLIENT_EXPORT=$(OPTEE_CLIENT_EXPORT) QEMU_CACHE=$(QEMU_CACHE) bash host/build-aarch64.sh

# The agent's systemd units checked with this machine's systemd (verify + offline security
# rating; skipped with a message when systemd-analyze is not installed), then with the target's
# (Debian trixie's, host/systemd/verify-trixie.sh). Also run by
# `cargo test -p suit-host --test hardening_agent` and `--test packaging`.
.PHONY: verify-units
verify-units:
	@bash host/systemd/verify.sh; rc=$$?; [ $$rc -eq 77 ] && rc=0; exit $$rc
	@bash host/systemd/verify-trixie.sh   # the target's systemd (trixie's 257), root cached in build/

# Debian packages (packaging/deb/build.sh): the agent for the device, the TA, suit-tool for this
# machine's architecture; lintian must report no error or warning. Output in build/deb.
.PHONY: deb
deb: ta host-aarch64 host
	@bash qemu/debian.sh host-tools lintian dpkg-dev binutils-aarch64-linux-gnu
	@bash packaging/deb/build.sh

# The gooseBit fleet server with the project's SUIT plugin (fleet/goosebit-suit), in a venv under
# build/: used by host/tests/ddi_goosebit.rs (make test) and for demos (serve.sh).
.PHONY: fleet-env
fleet-env:
	@bash fleet/goosebit-suit/setup.sh
