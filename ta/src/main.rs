//! SUIT trusted application: thin optee-utee glue around `suit-ta-core`.
//!
//! The glue only translates: GlobalPlatform parameters into the core's [`Param`]s (the
//! request is copied into TA memory first, REQ.SEC.MFST.CONST; the bulk data in stays in
//! shared memory and the core copies it piece by piece, each byte once, through
//! [`SharedBulk`]), the core's output back into the output memrefs, and the platform traits onto the TEE Internal Core API: persistent
//! objects (in the one storage chosen at build time, `TA_STORAGE`), TEE_GenerateRandom, time
//! (below), and the client identity of each session (`gpd.client.identity`). Every decision
//! is the core's.
//! The TA is single-instance and multi-session (build.rs), so the one core instance sees every
//! session. Inputs are capped per command before they are copied ([`Ta::input_limit`]).

#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::vec::Vec;

use optee_utee::prelude::*;
use optee_utee::property::{ClientIdentity as ClientIdentityKey, PropertyKey};
use optee_utee::{
    DataFlag, Error, ErrorKind, ObjectStorageConstants, PersistentObject, Random, Result, Time,
};
use suit_shared::abi::StorageKind;
use suit_shared::auth::{AnchorPolicy, TrustAnchor};
use suit_shared::crypto::SigAlg;
use suit_shared::error::Uuid;
use suit_ta_core::{
    Bulk, ClientIdentity, ClientPolicy, Clock, Config, DeviceCurve, Param, Rng, SessionId,
    Storage, StorageError, Ta, TeeError,
};

include!(concat!(env!("OUT_DIR"), "/ta_config.rs"));

#[cfg(ta_crypto = "gp")]
mod gp_crypto;

/// Secure storage through the TEE persistent-object API, in the one storage this TA was
/// built for ([`STORAGE`], `TA_STORAGE` in build.rs).
///
/// There is no run-time choice and no fallback: had the TA looked elsewhere when RPMB fails,
/// root could make the RPMB route fail (stop it, hide the eMMC) and get a fresh state with no
/// floors. Every failure, including "storage not available", is returned as it is; only
/// "item not found" from a storage that answered means "no object" (first use, for which
/// the core then needs a successful write).
struct TeeStorage;

fn storage_id() -> ObjectStorageConstants {
    match STORAGE {
        StorageKind::Rpmb => ObjectStorageConstants::PrivateRpmb,
        _ => ObjectStorageConstants::PrivateRee,
    }
}

fn storage_error(what: &str, name: &str, e: &Error) -> StorageError {
    StorageError(format!(
        "{what} {name} in {} failed: {} ({:#010x}); the TA refuses every command until its \
         state can be read and written there again (it never starts over with a new state)",
        STORAGE.as_str(),
        storage_failure(e.kind()),
        e.raw_code()
    ))
}

/// What a secure-storage error code means, for the codes storage calls return; the others are
/// named by their code alone. (optee-utee's `Error::message` would link its text for every
/// GP code, about 4 KB of the TA.)
fn storage_failure(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::StorageNotAvailable | ErrorKind::StorageNotAvailable2 => "storage not available",
        ErrorKind::CorruptObject | ErrorKind::CorruptObject2 => "object corrupt",
        ErrorKind::StorageNoSpace => "no space left",
        ErrorKind::AccessDenied | ErrorKind::AccessConflict => "access denied",
        ErrorKind::OutOfMemory => "out of memory",
        ErrorKind::Busy => "busy",
        _ => "TEE error",
    }
}

impl Storage for TeeStorage {
    fn read(&mut self, name: &str) -> core::result::Result<Option<Vec<u8>>, StorageError> {
        let read =
            || match PersistentObject::open(storage_id(), name.as_bytes(), DataFlag::ACCESS_READ) {
                Ok(mut object) => object.read_remaining_to_vec().map(Some),
                Err(e) if e.kind() == ErrorKind::ItemNotFound => Ok(None),
                Err(e) => Err(e),
            };
        read().map_err(|e| storage_error("reading", name, &e))
    }

    fn replace(&mut self, name: &str, data: &[u8]) -> core::result::Result<(), StorageError> {
        // Creating with OVERWRITE and initial data is atomic in OP-TEE: the new object is
        // written completely, then swapped in by one update of the storage's directory.
        let flags = DataFlag::ACCESS_READ | DataFlag::ACCESS_WRITE_META | DataFlag::OVERWRITE;
        PersistentObject::create(storage_id(), name.as_bytes(), flags, None, data)
            .map(drop)
            .map_err(|e| storage_error("writing", name, &e))
    }

    fn kind(&self) -> StorageKind {
        STORAGE
    }
}

struct TeeRng;

impl Rng for TeeRng {
    fn fill(&mut self, buf: &mut [u8]) {
        Random::generate(buf);
    }
}

/// Time for use-before: REE time, but never earlier than the latest time this TA has seen
/// since the TEE booted.
///
/// GlobalPlatform offers no trusted wall clock here: TEE_GetSystemTime has an arbitrary origin
/// (on OP-TEE the secure counter since boot), and TEE_GetTAPersistentTime only returns what
/// the TA itself set, advanced by that counter. OP-TEE keeps the latter in secure memory, so it
/// survives TA restarts but not a reboot. The TA therefore keeps its latest reading as its
/// persistent time: within one boot, root cannot set the REE clock back to pass a use-before
/// deadline already seen; across a reboot (no secure RTC on this platform) REE time is all
/// there is, and use-before binds honest devices only. Anti-rollback floors do not depend on
/// time.
struct GuardedReeClock;

impl Clock for GuardedReeClock {
    fn now(&self) -> Option<u64> {
        let mut ree = Time::new();
        ree.ree_time();
        let mut seen = Time::new();
        let floor = seen.ta_time().ok().map(|()| seen.seconds);
        let now = ree.seconds.max(floor.unwrap_or(0));
        if floor != Some(now) {
            // Best effort: without it the next reading is plain REE time again.
            let _ = Time {
                seconds: now,
                millis: 0,
            }
            .set_ta_time();
        }
        Some(u64::from(now))
    }
}

type Core = Ta<TeeStorage, TeeRng, GuardedReeClock>;

/// The TA's one core instance.
static mut CORE: Option<Core> = None;

fn core() -> Result<&'static mut Core> {
    // SAFETY: OP-TEE runs a TA instance on one thread and never enters it concurrently; with
    // TA_FLAG_SINGLE_INSTANCE every entry point of every session runs on that instance, one
    // after another, so no two references to CORE are ever alive at the same time.
    let slot = unsafe { &mut *core::ptr::addr_of_mut!(CORE) };
    slot.as_mut().ok_or_else(|| Error::new(ErrorKind::BadState))
}

/// Per-session context: the core's session id.
#[derive(Default)]
struct SessionContext {
    id: SessionId,
}

#[ta_create]
fn create() -> Result<()> {
    // The provider chosen at build time (TA_CRYPTO); without one the core uses RustCrypto.
    #[cfg(ta_crypto = "gp")]
    suit_shared::crypto::install_default(&gp_crypto::GP_CRYPTO);
    let mut anchors = Vec::with_capacity(TRUST_ANCHORS.len());
    for (alg, key) in TRUST_ANCHORS {
        anchors.push(
            TrustAnchor::signature(*alg, key, None)
                .map_err(|_| Error::new(ErrorKind::BadFormat))?,
        );
    }
    let config = Config {
        anchors,
        policy: ANCHOR_POLICY,
        vendor_id: Uuid(VENDOR_ID),
        class_id: Uuid(CLASS_ID),
        max_chunk: MAX_CHUNK,
        max_envelope: MAX_ENVELOPE,
        client: match CLIENT {
            Some((login, uuid)) => ClientPolicy::Only(ClientIdentity { login, uuid }),
            None => ClientPolicy::Any,
        },
        factory: FACTORY,
        agreement: AGREEMENT,
    };
    let ta = Ta::new(config, TeeStorage, TeeRng, GuardedReeClock);
    // SAFETY: see `core()`; create runs once, before any session entry point.
    unsafe { *core::ptr::addr_of_mut!(CORE) = Some(ta) };
    Ok(())
}

/// The UUID's 16 bytes, from its canonical text (optee-utee exposes no safe byte accessor).
fn uuid_bytes(uuid: &optee_utee::Uuid) -> Option<[u8; 16]> {
    let text = format!("{uuid}");
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| *b != b'-')
        .map(|b| {
            char::from(b)
                .to_digit(16)
                .and_then(|d| u8::try_from(d).ok())
        })
        .collect::<Option<_>>()?;
    let mut bytes = [0u8; 16];
    if digits.len() != 2 * bytes.len() {
        return None;
    }
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = pair[0] << 4 | pair[1];
    }
    Some(bytes)
}

/// The client identity OP-TEE vouches for.
fn client_identity() -> Result<ClientIdentity> {
    let identity = ClientIdentityKey.get()?;
    Ok(ClientIdentity {
        login: identity.login_type().into(),
        uuid: uuid_bytes(&identity.uuid()).ok_or_else(|| Error::new(ErrorKind::BadFormat))?,
    })
}

#[ta_open_session]
fn open_session(_params: &mut ParametersAny, ctx: &mut SessionContext) -> Result<()> {
    let client = client_identity()?;
    ctx.id = core()?
        .open_session(client)
        .map_err(|e| Error::from_raw_error(e.code()))?;
    Ok(())
}

#[ta_close_session]
fn close_session(ctx: &mut SessionContext) {
    if let Ok(core) = core() {
        core.close_session(ctx.id);
    }
}

#[ta_destroy]
fn destroy() {
    // SAFETY: see `core()`; destroy runs after the last session closed.
    unsafe { *core::ptr::addr_of_mut!(CORE) = None };
}

/// Copies an input memref into TA memory (REQ.SEC.MFST.CONST), failing cleanly when it is
/// larger than `limit` (what the command accepts in this parameter) or memory is short.
fn copy_in(m: &impl ParameterMemrefRead, limit: usize) -> Result<Vec<u8>> {
    let len = m.buffer_len();
    if len > limit {
        return Err(Error::new(ErrorKind::ExcessData));
    }
    let mut copy = Vec::new();
    copy.try_reserve_exact(len)
        .map_err(|_| Error::new(ErrorKind::OutOfMemory))?;
    copy.resize(len, 0);
    m.read_at(0, &mut copy)?;
    Ok(copy)
}

/// A GlobalPlatform parameter in the core's representation, inputs of at most `limit` bytes
/// copied.
fn param(p: &ParameterAny<'_>, limit: usize) -> Result<Param> {
    Ok(match p {
        ParameterAny::None => Param::None,
        ParameterAny::ValueInput(v) => Param::ValueInput(v.get_a(), v.get_b()),
        ParameterAny::ValueOutput(_) => Param::ValueOutput,
        ParameterAny::ValueInout(v) => Param::ValueInout(v.get_a(), v.get_b()),
        ParameterAny::MemrefInput(m) => Param::MemrefInput(copy_in(m, limit)?),
        ParameterAny::MemrefOutput(m) => Param::MemrefOutput(m.buffer_len()),
        ParameterAny::MemrefInout(m) => Param::MemrefInout(copy_in(m, limit)?),
        // An implementation-defined type never matches the ABI.
        ParameterAny::Unknown(..) => return Err(Error::new(ErrorKind::BadParameters)),
    })
}

/// Parameter 2 (the bulk data in) as the core sees it: a memref input of at most `limit`
/// bytes stays in shared memory ([`Param::MemrefShared`]); the core copies it piece by
/// piece through [`SharedBulk`], so a 1 MiB chunk never has a whole copy in the TA's heap.
fn data_param(p: &ParameterAny<'_>, limit: usize) -> Result<Param> {
    match p {
        ParameterAny::MemrefInput(m) if m.buffer_len() > limit => {
            Err(Error::new(ErrorKind::ExcessData))
        }
        ParameterAny::MemrefInput(m) => Ok(Param::MemrefShared(m.buffer_len())),
        other => param(other, limit),
    }
}

/// The bulk data of an invoke in OP-TEE's shared memory: parameter 2 (data in) and 3 (data
/// out). The core reads each byte of the input once, into TA memory, and checks only that
/// copy (no double fetch: the client may change shared memory at any time).
struct SharedBulk<'a, 'p> {
    input: Option<&'a ParameterMemrefInput<'p>>,
    output: Option<&'a mut ParameterMemrefOutput<'p>>,
}

impl Bulk for SharedBulk<'_, '_> {
    fn in_len(&self) -> usize {
        self.input.map_or(0, |m| m.buffer_len())
    }

    fn read(&self, offset: usize, buf: &mut [u8]) -> core::result::Result<(), TeeError> {
        match self.input.map(|m| m.read_at(offset, buf)) {
            Some(Ok(n)) if n == buf.len() => Ok(()),
            _ => Err(TeeError::BadParameters("read beyond the data in")),
        }
    }

    fn out_capacity(&self) -> usize {
        self.output.as_ref().map_or(0, |m| m.buffer_len())
    }

    fn write(&mut self, offset: usize, data: &[u8]) -> core::result::Result<(), TeeError> {
        let needed = offset.saturating_add(data.len());
        match self.output.as_mut().map(|m| m.write_at(offset, data)) {
            Some(Ok(())) => Ok(()),
            _ => Err(TeeError::ShortBuffer { param: 3, needed }),
        }
    }

    fn set_out_len(&mut self, len: usize) -> core::result::Result<(), TeeError> {
        match self.output.as_mut().map(|m| m.set_updated_size(len)) {
            Some(Ok(())) | None => Ok(()),
            Some(Err(_)) => Err(TeeError::ShortBuffer { param: 3, needed: len }),
        }
    }
}

fn write_output(p: &mut ParameterAny<'_>, data: &[u8]) -> Result<()> {
    p.as_memref_output()?.set_output(data)
}

#[ta_invoke_command]
fn invoke_command(ctx: &mut SessionContext, cmd_id: u32, params: &mut ParametersAny) -> Result<()> {
    let core = core()?;
    // Nothing is copied before its size is known to fit the command (a request carrying a
    // huge "token" must not cost TA heap).
    let limit = |i| core.input_limit(cmd_id, i);
    let copied = [
        param(&params.0, limit(0))?,
        param(&params.1, limit(1))?,
        data_param(&params.2, limit(2))?,
        param(&params.3, limit(3))?,
    ];
    let mut bulk = SharedBulk {
        input: params.2.as_memref_input().ok(),
        output: params.3.as_memref_output().ok(),
    };
    let result = core.invoke_bulk(ctx.id, cmd_id, &copied, &mut bulk);
    match result {
        Ok(response) => write_output(&mut params.1, &response),
        Err(TeeError::ShortBuffer { param, needed }) => {
            let target = match param {
                1 => params.1.as_memref_output(),
                _ => params.3.as_memref_output(),
            };
            if let Ok(out) = target {
                // SAFETY: GlobalPlatform defines that a TA returning TEE_ERROR_SHORT_BUFFER
                // puts the size it needs in the memref's size field; OP-TEE copies it back to
                // the client without touching the (smaller) buffer.
                unsafe { out.set_updated_size_unchecked(needed) };
            }
            Err(Error::new(ErrorKind::ShortBuffer))
        }
        Err(e) => Err(Error::from_raw_error(e.code())),
    }
}

include!(concat!(env!("OUT_DIR"), "/user_ta_header.rs"));

/// Replaces libutee's `_TEE_MathAPI_Init`, which its entry code calls to give mbedtls' bignums
/// (the GP `TEE_BigInt*` API) their memory pool. The TA calls no `TEE_BigInt*` function (its
/// crypto runs in OP-TEE's core or in Rust), so this no-op keeps libutee's bignum object and
/// mbedtls out of the link (build.rs links no libmbedtls). Should a `TEE_BigInt*` call ever be
/// linked, libutee's own definition comes with it and the link fails on the duplicate symbol.
#[allow(non_snake_case)]
#[no_mangle]
extern "C" fn _TEE_MathAPI_Init() {}
