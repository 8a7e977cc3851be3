//! SUIT trusted application: thin optee-utee glue around `suit-ta-core`.
//!
//! The glue only translates: GlobalPlatform parameters into the core's [`Param`]s (every
//! input memref is copied into TA memory first, REQ.SEC.MFST.CONST), the core's output back
//! into the output memrefs, and the platform traits onto the TEE Internal Core API: persistent
//! objects (RPMB when the platform has it, else REE-FS), TEE_GenerateRandom, TEE_GetREETime.
//! Every decision is the core's. The TA is single-instance and multi-session (build.rs), so
//! the one core instance sees every session.

#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::vec::Vec;

use optee_utee::prelude::*;
use optee_utee::{
    DataFlag, Error, ErrorKind, ObjectStorageConstants, PersistentObject, Random, Result, Time,
};
use suit_shared::abi::StorageKind;
use suit_shared::auth::TrustAnchor;
use suit_shared::error::Uuid;
use suit_ta_core::{Clock, Config, Param, Rng, SessionId, Storage, StorageError, Ta, TeeError};

include!(concat!(env!("OUT_DIR"), "/ta_config.rs"));

/// Secure storage through the TEE persistent-object API.
struct TeeStorage {
    /// Chosen on first use: RPMB when an object can live there, else REE-FS.
    kind: Option<StorageKind>,
}

fn storage_id(kind: StorageKind) -> ObjectStorageConstants {
    match kind {
        StorageKind::Rpmb => ObjectStorageConstants::PrivateRpmb,
        _ => ObjectStorageConstants::PrivateRee,
    }
}

fn storage_error(what: &str, name: &str, e: &Error) -> StorageError {
    StorageError(format!(
        "{what} {name}: {} ({:#010x})",
        e.message(),
        e.raw_code()
    ))
}

impl TeeStorage {
    fn open(kind: StorageKind, name: &str) -> Result<Option<Vec<u8>>> {
        match PersistentObject::open(storage_id(kind), name.as_bytes(), DataFlag::ACCESS_READ) {
            Ok(mut object) => object.read_remaining_to_vec().map(Some),
            Err(e) if e.kind() == ErrorKind::ItemNotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Storage for TeeStorage {
    fn read(&mut self, name: &str) -> core::result::Result<Option<Vec<u8>>, StorageError> {
        let read = |kind| Self::open(kind, name).map_err(|e| storage_error("reading", name, &e));
        if let Some(kind) = self.kind {
            return read(kind);
        }
        // RPMB first: an object there means the platform has it. OP-TEE without RPMB answers
        // "not found" (or "not available") for that storage; then REE-FS. A corrupt object
        // is an error, never a reason to look elsewhere.
        match Self::open(StorageKind::Rpmb, name) {
            Ok(Some(data)) => {
                self.kind = Some(StorageKind::Rpmb);
                return Ok(Some(data));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::CorruptObject | ErrorKind::CorruptObject2
                ) =>
            {
                return Err(storage_error("reading", name, &e))
            }
            Ok(None) | Err(_) => {}
        }
        let found = read(StorageKind::ReeFs)?;
        if found.is_some() {
            self.kind = Some(StorageKind::ReeFs);
        }
        Ok(found)
    }

    fn replace(&mut self, name: &str, data: &[u8]) -> core::result::Result<(), StorageError> {
        // Creating with OVERWRITE and initial data is atomic in OP-TEE: the new object is
        // written completely, then swapped in by one update of the storage's directory.
        let create = |kind| {
            let flags = DataFlag::ACCESS_READ | DataFlag::ACCESS_WRITE_META | DataFlag::OVERWRITE;
            PersistentObject::create(storage_id(kind), name.as_bytes(), flags, None, data)
        };
        match self.kind {
            Some(kind) => create(kind)
                .map(drop)
                .map_err(|e| storage_error("writing", name, &e)),
            None => match create(StorageKind::Rpmb) {
                Ok(_) => {
                    self.kind = Some(StorageKind::Rpmb);
                    Ok(())
                }
                Err(_) => {
                    create(StorageKind::ReeFs).map_err(|e| storage_error("writing", name, &e))?;
                    self.kind = Some(StorageKind::ReeFs);
                    Ok(())
                }
            },
        }
    }

    fn kind(&self) -> StorageKind {
        self.kind.unwrap_or(StorageKind::ReeFs)
    }
}

struct TeeRng;

impl Rng for TeeRng {
    fn fill(&mut self, buf: &mut [u8]) {
        Random::generate(buf);
    }
}

/// REE time: as trustworthy as the normal world (use-before guards honest devices only).
struct ReeClock;

impl Clock for ReeClock {
    fn now(&self) -> Option<u64> {
        let mut t = Time::new();
        t.ree_time();
        Some(u64::from(t.seconds))
    }
}

type Core = Ta<TeeStorage, TeeRng, ReeClock>;

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
    let anchor = TrustAnchor::from_sec1(&TRUST_ANCHOR_SEC1, None)
        .map_err(|_| Error::new(ErrorKind::BadFormat))?;
    let config = Config {
        anchors: alloc::vec![anchor],
        vendor_id: Uuid(VENDOR_ID),
        class_id: Uuid(CLASS_ID),
        max_chunk: MAX_CHUNK,
        max_envelope: MAX_ENVELOPE,
    };
    let ta = Ta::new(config, TeeStorage { kind: None }, TeeRng, ReeClock);
    // SAFETY: see `core()`; create runs once, before any session entry point.
    unsafe { *core::ptr::addr_of_mut!(CORE) = Some(ta) };
    Ok(())
}

#[ta_open_session]
fn open_session(_params: &mut ParametersAny, ctx: &mut SessionContext) -> Result<()> {
    ctx.id = core()?.open_session();
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

/// Largest input memref the glue copies: anything larger cannot be a valid request, chunk or
/// envelope and is refused before it costs TA memory.
const MAX_INPUT: usize = if MAX_CHUNK > MAX_ENVELOPE {
    MAX_CHUNK
} else {
    MAX_ENVELOPE
};

/// Copies an input memref into TA memory (REQ.SEC.MFST.CONST), failing cleanly when it is too
/// large or memory is short.
fn copy_in(m: &impl ParameterMemrefRead) -> Result<Vec<u8>> {
    let len = m.buffer_len();
    if len > MAX_INPUT {
        return Err(Error::new(ErrorKind::ExcessData));
    }
    let mut copy = Vec::new();
    copy.try_reserve_exact(len)
        .map_err(|_| Error::new(ErrorKind::OutOfMemory))?;
    copy.resize(len, 0);
    m.read_at(0, &mut copy)?;
    Ok(copy)
}

/// A GlobalPlatform parameter in the core's representation, inputs copied.
fn param(p: &ParameterAny<'_>) -> Result<Param> {
    Ok(match p {
        ParameterAny::None => Param::None,
        ParameterAny::ValueInput(v) => Param::ValueInput(v.get_a(), v.get_b()),
        ParameterAny::ValueOutput(_) => Param::ValueOutput,
        ParameterAny::ValueInout(v) => Param::ValueInout(v.get_a(), v.get_b()),
        ParameterAny::MemrefInput(m) => Param::MemrefInput(copy_in(m)?),
        ParameterAny::MemrefOutput(m) => Param::MemrefOutput(m.buffer_len()),
        ParameterAny::MemrefInout(m) => Param::MemrefInout(copy_in(m)?),
        // An implementation-defined type never matches the ABI.
        ParameterAny::Unknown(..) => return Err(Error::new(ErrorKind::BadParameters)),
    })
}

fn write_output(p: &mut ParameterAny<'_>, data: &[u8]) -> Result<()> {
    p.as_memref_output()?.set_output(data)
}

#[ta_invoke_command]
fn invoke_command(ctx: &mut SessionContext, cmd_id: u32, params: &mut ParametersAny) -> Result<()> {
    let copied = [
        param(&params.0)?,
        param(&params.1)?,
        param(&params.2)?,
        param(&params.3)?,
    ];
    match core()?.invoke(ctx.id, cmd_id, &copied) {
        Ok(out) => {
            write_output(&mut params.1, &out.response)?;
            if let Some(data) = out.data {
                write_output(&mut params.3, &data)?;
            }
            Ok(())
        }
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
