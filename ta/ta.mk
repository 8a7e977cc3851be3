# ta/ta.mk — `make ta`: build, check (no DT_NEEDED) and sign the SUIT TA into build/ta/<uuid>.ta.
# Included by the top-level Makefile; the work is done by ta/build-ta.sh.

TA_UUID       ?= 5f8b4d1e-2c3a-4b7e-9d6f-1a2b3c4d5e6f
TA_STACK_SIZE ?= 65536
TA_HEAP_SIZE  ?= 524288
TA_OUT_DIR    ?= $(CURDIR)/build/ta
TA_FILE        = $(TA_OUT_DIR)/$(TA_UUID).ta
QEMU_CACHE    ?= $(CURDIR)/build/qemu-cache

.PHONY: ta
ta:
	@TA_UUID=$(TA_UUID) TA_STACK_SIZE=$(TA_STACK_SIZE) TA_HEAP_SIZE=$(TA_HEAP_SIZE) \
	 TA_OUT_DIR=$(TA_OUT_DIR) QEMU_CACHE=$(QEMU_CACHE) bash ta/build-ta.sh
