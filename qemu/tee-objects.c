// SPDX-License-Identifier: Apache-2.0
/*
 * qemu/tee-objects.c — write and read GlobalPlatform persistent objects from the guest's shell,
 * through the storage TA that Debian's optee-test ships (xtest's b689f2a7-...; its command
 * interface: CREATE 4, OPEN 0, READ 2, CLOSE 1, UNLINK 6). Used by the RPMB variant's checks
 * (tests/qemu_rpmb.rs) to show where secure objects live and that they survive restarts.
 *
 *   tee-objects put rpmb|ree ID DATA    create (or overwrite) object ID holding DATA
 *   tee-objects get rpmb|ree ID         print "TEE-OBJ: get STORAGE ID = DATA"
 *   tee-objects del rpmb|ree ID         delete object ID
 *
 * Every outcome is one line "TEE-OBJ: ..." on stdout; errors carry the TEE result code and
 * origin, and the exit status is 0 only on success.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tee_client_api.h>

#define CMD_OPEN 0
#define CMD_CLOSE 1
#define CMD_READ 2
#define CMD_CREATE 4
#define CMD_UNLINK 6

#define STORAGE_PRIVATE_REE 0x80000000u
#define STORAGE_PRIVATE_RPMB 0x80000100u

#define FLAG_READ 0x001u
#define FLAG_WRITE 0x002u
#define FLAG_WRITE_META 0x004u
#define FLAG_OVERWRITE 0x400u

static const TEEC_UUID storage_ta = {
	0xb689f2a7, 0x8adf, 0x477a,
	{ 0x9f, 0x99, 0x32, 0xe9, 0x0c, 0x0a, 0xd0, 0xa2 }
};

static int fail(const char *what, const char *storage, const char *id,
		TEEC_Result res, uint32_t origin)
{
	printf("TEE-OBJ: %s %s %s error 0x%08x origin %u\n", what, storage, id,
	       (unsigned int)res, (unsigned int)origin);
	return 1;
}

/* OPEN the object with flags; on success *handle is the TA's handle for this session. */
static TEEC_Result open_object(TEEC_Session *s, uint32_t storage, const char *id,
			       uint32_t flags, uint32_t *handle, uint32_t *origin)
{
	TEEC_Operation op;
	TEEC_Result res;

	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_MEMREF_TEMP_INPUT, TEEC_VALUE_INOUT,
					 TEEC_VALUE_INPUT, TEEC_NONE);
	op.params[0].tmpref.buffer = (void *)id;
	op.params[0].tmpref.size = strlen(id);
	op.params[1].value.a = flags;
	op.params[2].value.a = storage;
	res = TEEC_InvokeCommand(s, CMD_OPEN, &op, origin);
	*handle = op.params[1].value.b;
	return res;
}

static void close_object(TEEC_Session *s, uint32_t handle)
{
	TEEC_Operation op;
	uint32_t origin;

	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_VALUE_INPUT, TEEC_NONE, TEEC_NONE, TEEC_NONE);
	op.params[0].value.a = handle;
	TEEC_InvokeCommand(s, CMD_CLOSE, &op, &origin);
}

static int put(TEEC_Session *s, uint32_t storage, const char *name, const char *id,
	       const char *data)
{
	TEEC_Operation op;
	TEEC_Result res;
	uint32_t origin = 0;

	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_MEMREF_TEMP_INPUT, TEEC_VALUE_INOUT,
					 TEEC_VALUE_INPUT, TEEC_MEMREF_TEMP_INPUT);
	op.params[0].tmpref.buffer = (void *)id;
	op.params[0].tmpref.size = strlen(id);
	op.params[1].value.a = FLAG_READ | FLAG_WRITE | FLAG_WRITE_META | FLAG_OVERWRITE;
	op.params[2].value.a = 0; /* no attributes */
	op.params[2].value.b = storage;
	op.params[3].tmpref.buffer = (void *)data;
	op.params[3].tmpref.size = strlen(data);
	res = TEEC_InvokeCommand(s, CMD_CREATE, &op, &origin);
	if (res != TEEC_SUCCESS)
		return fail("put", name, id, res, origin);
	close_object(s, op.params[1].value.b);
	printf("TEE-OBJ: put %s %s ok\n", name, id);
	return 0;
}

static int get(TEEC_Session *s, uint32_t storage, const char *name, const char *id)
{
	TEEC_Operation op;
	TEEC_Result res;
	uint32_t origin = 0, handle = 0;
	char buf[257];

	res = open_object(s, storage, id, FLAG_READ, &handle, &origin);
	if (res != TEEC_SUCCESS)
		return fail("get", name, id, res, origin);
	memset(&op, 0, sizeof(op));
	memset(buf, 0, sizeof(buf));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_MEMREF_TEMP_OUTPUT, TEEC_VALUE_INOUT,
					 TEEC_NONE, TEEC_NONE);
	op.params[0].tmpref.buffer = buf;
	op.params[0].tmpref.size = sizeof(buf) - 1;
	op.params[1].value.a = handle;
	res = TEEC_InvokeCommand(s, CMD_READ, &op, &origin);
	close_object(s, handle);
	if (res != TEEC_SUCCESS)
		return fail("get", name, id, res, origin);
	if (op.params[1].value.b < sizeof(buf))
		buf[op.params[1].value.b] = '\0';
	printf("TEE-OBJ: get %s %s = %s\n", name, id, buf);
	return 0;
}

static int del(TEEC_Session *s, uint32_t storage, const char *name, const char *id)
{
	TEEC_Operation op;
	TEEC_Result res;
	uint32_t origin = 0, handle = 0;

	res = open_object(s, storage, id, FLAG_READ | FLAG_WRITE_META, &handle, &origin);
	if (res != TEEC_SUCCESS)
		return fail("del", name, id, res, origin);
	memset(&op, 0, sizeof(op));
	op.paramTypes = TEEC_PARAM_TYPES(TEEC_VALUE_INPUT, TEEC_NONE, TEEC_NONE, TEEC_NONE);
	op.params[0].value.a = handle;
	res = TEEC_InvokeCommand(s, CMD_UNLINK, &op, &origin);
	if (res != TEEC_SUCCESS)
		return fail("del", name, id, res, origin);
	printf("TEE-OBJ: del %s %s ok\n", name, id);
	return 0;
}

int main(int argc, char **argv)
{
	TEEC_Context ctx;
	TEEC_Session sess;
	TEEC_Result res;
	uint32_t origin = 0, storage;
	int rc;

	if (argc < 4 || (strcmp(argv[1], "put") == 0 && argc != 5) ||
	    (strcmp(argv[1], "put") != 0 && argc != 4)) {
		fprintf(stderr, "usage: %s put|get|del rpmb|ree ID [DATA]\n", argv[0]);
		return 2;
	}
	if (strcmp(argv[2], "rpmb") == 0)
		storage = STORAGE_PRIVATE_RPMB;
	else if (strcmp(argv[2], "ree") == 0)
		storage = STORAGE_PRIVATE_REE;
	else {
		fprintf(stderr, "storage must be rpmb or ree, not %s\n", argv[2]);
		return 2;
	}
	res = TEEC_InitializeContext(NULL, &ctx);
	if (res != TEEC_SUCCESS)
		return fail("context", argv[2], argv[3], res, 0);
	res = TEEC_OpenSession(&ctx, &sess, &storage_ta, TEEC_LOGIN_PUBLIC, NULL, NULL,
			       &origin);
	if (res != TEEC_SUCCESS) {
		TEEC_FinalizeContext(&ctx);
		return fail("session", argv[2], argv[3], res, origin);
	}
	if (strcmp(argv[1], "put") == 0)
		rc = put(&sess, storage, argv[2], argv[3], argv[4]);
	else if (strcmp(argv[1], "get") == 0)
		rc = get(&sess, storage, argv[2], argv[3]);
	else if (strcmp(argv[1], "del") == 0)
		rc = del(&sess, storage, argv[2], argv[3]);
	else {
		fprintf(stderr, "unknown command %s\n", argv[1]);
		rc = 2;
	}
	TEEC_CloseSession(&sess);
	TEEC_FinalizeContext(&ctx);
	return rc;
}
