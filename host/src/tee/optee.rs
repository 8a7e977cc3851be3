//! The OP-TEE backend: the SUIT TA in the secure world, through libteec.
//!
//! A session owns one buffer of shared memory, allocated (and registered with the driver) on
//! its first invoke and grown, rarely, when an invoke needs more: every invoke passes its four
//! parameters as partial memory references into it (request, response, bulk data in, bulk
//! data out), so a stream of any size registers shared memory a few times per session, not
//! once per parameter and chunk as libteec's temporary memrefs do ([`libteec`]). The TA copies
//! every input it parses, and each block of bulk data before it checks it, into its own memory
//! (docs/streaming.md). The TA answers rejections inside the response, so a TEE error code
//! here always means a transport problem, mapped to a readable message
//! ([`suit_shared::abi::tee::message`]).

// The only unsafe code of the normal-world programs: libteec's C API, each call explained.
#[allow(unsafe_code)]
mod libteec;

use suit_shared::abi::{self, CommandId};

use self::libteec::{Context, Memref, Session, SharedMemory};
use super::shm::{grown, layout, Region};
use super::{Backend, RawOutput, Tee, TeeError};

/// A session with the SUIT TA.
pub struct OpteeSession {
    session: Session,
    /// The session's shared memory, once an invoke needed it.
    shm: Option<SharedMemory>,
    context: Context,
}

impl OpteeSession {
    /// Opens a session with the TA `uuid` (e.g. [`abi::DEFAULT_TA_UUID`]) with the user login
    /// (TEEC_LOGIN_USER): the kernel vouches for this process's effective uid, and the TA only
    /// obeys the uid it was built for (`TA_CLIENT`, default root; see
    /// [`super::linux_user_identity`]).
    pub fn open(uuid: &str) -> Result<Self, TeeError> {
        let uuid = uuid::Uuid::parse_str(uuid)
            .map_err(|_| TeeError::Backend(format!("{uuid:?} is not a TA UUID")))?;
        let context = Context::new().map_err(|code| TeeError::Tee {
            command: "initialize context",
            code,
            message: format!(
                "{} (is the OP-TEE driver loaded and /dev/tee0 accessible?)",
                abi::tee::message(code)
            ),
        })?;
        let session = context
            .open_session(&uuid, optee_teec_sys::TEEC_LOGIN_USER)
            .map_err(open_session_error)?;
        Ok(OpteeSession {
            session,
            shm: None,
            context,
        })
    }
}

/// The session buffer `shm` of `context`, replaced by a larger one ([`grown`]) when it holds
/// fewer than `needed` bytes.
fn buffer<'a>(
    context: &Context,
    shm: &'a mut Option<SharedMemory>,
    needed: usize,
) -> Result<&'a mut SharedMemory, TeeError> {
    let kept = match shm.take() {
        Some(kept) if kept.size() >= needed => kept,
        old => {
            let size = grown(old.as_ref().map_or(0, SharedMemory::size), needed);
            // The old buffer goes first: at most one is registered at a time.
            drop(old);
            context.allocate(size).map_err(|code| TeeError::Tee {
                command: "allocate shared memory",
                code,
                message: format!("{} ({size} bytes)", abi::tee::message(code)),
            })?
        }
    };
    Ok(shm.insert(kept))
}

/// A failed open session, explained. OP-TEE loads a TA only after checking its signature and
/// its version record in OP-TEE's own secure storage (REE-FS files whose integrity is anchored
/// in RPMB): when those files were wiped or rolled back, or RPMB cannot be reached, no TA
/// loads and the code alone (e.g. "security violation") would point at the TA's signature.
fn open_session_error(code: u32) -> TeeError {
    let mut message = abi::tee::message(code).to_string();
    if code == abi::tee::ERROR_ITEM_NOT_FOUND {
        message.push_str(
            "; or OP-TEE cannot reach its secure storage (RPMB: is the eMMC there?), without \
             which it loads no TA (see the secure console)",
        );
    } else if matches!(
        code,
        abi::tee::ERROR_SECURITY
            | abi::tee::ERROR_CORRUPT_OBJECT
            | abi::tee::ERROR_STORAGE_NOT_AVAILABLE
    ) {
        message.push_str(
            "; OP-TEE refused to load the TA: either its signature, or OP-TEE's secure storage \
             (its files in /data/tee wiped or rolled back, or RPMB unreachable) failed a check; \
             the TA does not run rather than start without its state (see the secure console)",
        );
    }
    TeeError::Tee {
        command: "open session",
        code,
        message,
    }
}

fn tee_error(command: CommandId, code: u32, short: Option<(usize, usize)>) -> TeeError {
    let mut message = abi::tee::message(code).to_string();
    if let Some((param, needed)) = short.filter(|_| code == abi::tee::ERROR_SHORT_BUFFER) {
        message.push_str(&format!(" (parameter {param} needs {needed} bytes)"));
    }
    TeeError::Tee {
        command: command.name(),
        code,
        message,
    }
}

impl Tee for OpteeSession {
    fn backend(&self) -> Backend {
        Backend::Optee
    }

    fn invoke(
        &mut self,
        command: CommandId,
        request: &[u8],
        data_in: Option<&[u8]>,
        response_capacity: usize,
        data_out_capacity: Option<usize>,
    ) -> Result<RawOutput, TeeError> {
        let lens = [
            request.len(),
            response_capacity,
            data_in.map_or(0, <[u8]>::len),
            data_out_capacity.unwrap_or(0),
        ];
        let ([req, resp, input, output], needed) = layout(lens);
        let shm = buffer(&self.context, &mut self.shm, needed)?;
        let bytes = shm.as_mut_slice();
        let outside = || TeeError::Backend("an invoke's parameter outside its buffer".into());
        req.of_mut(bytes)
            .ok_or_else(outside)?
            .copy_from_slice(request);
        if let Some(data) = data_in {
            input
                .of_mut(bytes)
                .ok_or_else(outside)?
                .copy_from_slice(data);
        }
        let params = [
            Memref::Input(req),
            Memref::Output(resp),
            data_in.map_or(Memref::None, |_| Memref::Input(input)),
            data_out_capacity.map_or(Memref::None, |_| Memref::Output(output)),
        ];
        let invoked = self.session.invoke(command as u32, shm, &params);
        let [_, response_len, _, data_len] = invoked.sizes;
        if invoked.code != abi::tee::SUCCESS {
            // A short buffer names the parameter the TA found too small.
            let short = match data_out_capacity {
                Some(capacity) if data_len > capacity => (3, data_len),
                _ => (1, response_len),
            };
            return Err(tee_error(command, invoked.code, Some(short)));
        }
        let bytes = shm.as_slice();
        let take = |region: Region, len: usize| {
            Region {
                len: len.min(region.len),
                ..region
            }
            .of(bytes)
            .map(<[u8]>::to_vec)
            .unwrap_or_default()
        };
        Ok(RawOutput {
            response: take(resp, response_len),
            data: take(output, data_len),
        })
    }
}
