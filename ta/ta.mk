# ta/ta.mk — `make ta`: build, check (no DT_NEEDED) and sign the SUIT TA into build/ta/<uuid>.ta.
# Included by the top-level Makefile; the work is done by ta/build-ta.sh.

# The TA's UUID is written once, in ta/uuid.
TA_MK_DIR     := $(dir $(lastword $(MAKEFILE_LIST)))
TA_UUID       ?= $(shell cat $(TA_MK_DIR)uuid)
# Measured in QEMU (full command set, 256 KiB chunks): the smallest passing sizes were a
# 24 KiB stack (P-384 verification) and a 544 KiB heap (two chunk copies for
# DECRYPT_FOR_INSTALL); these defaults keep about 2x / 1.4x margin.
TA_STACK_SIZE ?= 49152
TA_HEAP_SIZE  ?= 786432
# Compiled-in configuration (ta/build.rs): trust anchor (SPKI PEM), identity names or UUIDs,
# largest chunk and envelope. Empty means the build.rs default.
TRUST_ANCHOR    ?=
TA_VENDOR       ?=
TA_CLASS        ?=
TA_VENDOR_ID    ?=
TA_CLASS_ID     ?=
TA_MAX_CHUNK    ?=
TA_MAX_ENVELOPE ?=
# Who may change state (user:UID or any; empty: user:0) and whether PROVISION
# works (TA_FACTORY=1: a factory TA; empty: production, no PROVISION).
TA_CLIENT       ?=
TA_FACTORY      ?=
# Where the TA keeps its state, fixed at build time: rpmb (replay-protected; needs OP-TEE with
# CFG_RPMB_FS=y, the QEMU device's default) or ree-fs (boards without RPMB: no rollback
# protection). Empty: rpmb, or ree-fs when QEMU_RPMB=0 (stock Debian OP-TEE has no RPMB).
TA_STORAGE      ?=
# The TA's crypto provider, fixed at build time: gp (OP-TEE's GlobalPlatform crypto, the
# default) or rustcrypto (the portable RustCrypto code compiled into the TA).
TA_CRYPTO       ?= gp
TA_OUT_DIR    ?= $(CURDIR)/build/ta
TA_FILE        = $(TA_OUT_DIR)/$(TA_UUID).ta
QEMU_CACHE    ?= $(CURDIR)/build/qemu-cache

.PHONY: ta
ta:
	@TA_UUID=$(TA_UUID) TA_STACK_SIZE=$(TA_STACK_SIZE) TA_HEAP_SIZE=$(TA_HEAP_SIZE) \
	 TRUST_ANCHOR=$(if $(TRUST_ANCHOR),$(abspath $(TRUST_ANCHOR))) TA_VENDOR=$(TA_VENDOR) TA_CLASS=$(TA_CLASS) \
	 TA_VENDOR_ID=$(TA_VENDOR_ID) TA_CLASS_ID=$(TA_CLASS_ID) \
	 TA_MAX_CHUNK=$(TA_MAX_CHUNK) TA_MAX_ENVELOPE=$(TA_MAX_ENVELOPE) \
	 TA_CLIENT=$(TA_CLIENT) TA_FACTORY=$(TA_FACTORY) TA_STORAGE=$(TA_STORAGE) TA_CRYPTO=$(TA_CRYPTO) QEMU_RPMB=$(QEMU_RPMB) \
	 TA_OUT_DIR=$(TA_OUT_DIR) QEMU_CACHE=$(QEMU_CACHE) bash ta/build-ta.sh
