# ta/ta.mk — `make ta`: build, check (no DT_NEEDED) and sign the SUIT TA into build/ta/<uuid>.ta.
# Included by the top-level Makefile; the work is done by ta/build-ta.sh.

# The TA's UUID is written once, in ta/uuid.
TA_MK_DIR     := $(dir $(lastword $(MAKEFILE_LIST)))
TA_UUID       ?= $(shell cat $(TA_MK_DIR)uuid)
# Measured in QEMU (full command set): the smallest passing stack was 24 KiB (P-384
# verification, RustCrypto); the heap does not grow with the chunk: the TA reads a chunk
# piece by piece (16 KiB) from shared memory and writes its output the same way
# (docs/streaming.md), so the default 1 MiB chunks (TA_MAX_CHUNK, ta/build.rs) run on the
# 256 KiB default heap. Smallest heap (issue 12, 32 KiB steps), measured with the 250,608 B
# GP TA: 96 KiB passes qemu_update and qemu_streaming, 64 KiB fails qemu_update's install.
# Re-measure: `TA_HEAP_SIZE=N cargo test -p suit-tests --features qemu --test qemu_update`
# and `--test qemu_streaming` (the harness passes TA_* to ta/build-ta.sh and logs its [ta]
# line). The default keeps a margin over it. The stack's default is chosen by ta/build-ta.sh from TA_FEATURES:
# ML-DSA-65 verification (fips204, every buffer on the stack) alone needs about 140 KiB, so
# 192 KiB with it; 96 KiB with HSS-LMS (about 48 KiB) and without ML-DSA; 48 KiB for ECDSA and
# Ed25519 only.
TA_STACK_SIZE ?=
TA_HEAP_SIZE  ?= 262144
# Compiled-in configuration (ta/build.rs): the anchor set (SPKI PEM files, comma-separated) and
# its policy (any | all; TA_HYBRID=1: the development ES384 + ML-DSA-65 pair, all must sign),
# identity names or UUIDs, largest chunk and envelope. Empty means the build.rs default.
TRUST_ANCHOR    ?=
TA_ANCHOR_POLICY ?=
TA_HYBRID       ?=
# Signature verifiers linked in (ta/Cargo.toml features, e.g. ml-dsa-65,ed25519; "ecdsa": ECDSA
# only); empty: those the anchor set needs (ta/build-ta.sh reads the anchors' key types).
TA_FEATURES     ?=
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
# The key-agreement key's curve: p384 (empty, the default) or x25519 (the EdDSA profile).
TA_AGREEMENT    ?=
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
ta_comma := ,
ta_space := $(subst ,, )

.PHONY: ta
ta:
	@TA_UUID=$(TA_UUID) TA_STACK_SIZE=$(TA_STACK_SIZE) TA_HEAP_SIZE=$(TA_HEAP_SIZE) \
	 TRUST_ANCHOR=$(if $(TRUST_ANCHOR),$(subst $(ta_space),$(ta_comma),$(abspath $(subst $(ta_comma), ,$(TRUST_ANCHOR))))) \
	 TA_ANCHOR_POLICY=$(TA_ANCHOR_POLICY) TA_HYBRID=$(TA_HYBRID) TA_FEATURES=$(TA_FEATURES) TA_VENDOR=$(TA_VENDOR) TA_CLASS=$(TA_CLASS) \
	 TA_VENDOR_ID=$(TA_VENDOR_ID) TA_CLASS_ID=$(TA_CLASS_ID) \
	 TA_MAX_CHUNK=$(TA_MAX_CHUNK) TA_MAX_ENVELOPE=$(TA_MAX_ENVELOPE) \
	 TA_CLIENT=$(TA_CLIENT) TA_FACTORY=$(TA_FACTORY) TA_AGREEMENT=$(TA_AGREEMENT) TA_STORAGE=$(TA_STORAGE) TA_CRYPTO=$(TA_CRYPTO) QEMU_RPMB=$(QEMU_RPMB) \
	 TA_OUT_DIR=$(TA_OUT_DIR) QEMU_CACHE=$(QEMU_CACHE) bash ta/build-ta.sh
