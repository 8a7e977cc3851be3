//! The TEE bridge: one trait, [`Tee`], with typed methods for every command of the TA⇄host
//! ABI ([`suit_shared::abi`]), and two backends:
//!
//! * [`optee`] (cargo feature `optee`): the real TA in OP-TEE through libteec;
//! * [`simulator`]: the same TA core (`suit-ta-core`) in-process, state in a directory. It is
//!   **not a TEE** and says so loudly on stderr.
//!
//! A [`Tee`] value is one TA session; an update runs on one session (DESIGN.md §4). Backends
//! only implement [`Tee::invoke`]; the typed methods are the ABI table's derived client
//! ([`abi::Client`]) over [`Tee::call`], which turns rejections into [`TeeError::Rejected`]
//! with the TA's category and message, plus the streaming loops built on them.

#[cfg(feature = "optee")]
pub mod optee;
#[cfg(any(feature = "optee", test))]
mod shm;
pub mod simulator;

use std::io::{Read, Write};

use suit_shared::abi::{
    self, Approval, Client, CommandId, Floors, Info, PendingInstall, Plan, Provisioning, Rejection,
    Reply, Request,
};
use suit_shared::Category;

/// Why a TEE call failed.
#[derive(Debug, thiserror::Error)]
pub enum TeeError {
    /// The TA rejected the request (authentication, applicability, rollback, ...).
    #[error("the TA rejected {command}: {rejection} [{category}]", category = .rejection.category)]
    Rejected {
        /// The command.
        command: &'static str,
        /// Category and message from the TA.
        rejection: Rejection,
    },
    /// The TEE or its driver failed (TEE return code, mapped to a readable message).
    #[error("{command}: TEE error {code:#010x}: {message}")]
    Tee {
        /// The command (or "open session").
        command: &'static str,
        /// The GlobalPlatform return code.
        code: u32,
        /// What it means.
        message: String,
    },
    /// The TA's answer does not follow the ABI (including an ABI version mismatch).
    #[error("{command}: {source}")]
    Protocol {
        /// The command.
        command: &'static str,
        /// The decoding error.
        source: suit_shared::Error,
    },
    /// The backend could not be set up or its local storage failed.
    #[error("{0}")]
    Backend(String),
    /// Reading the data to stream failed.
    #[error("reading the data to stream: {0}")]
    Io(#[from] std::io::Error),
}

impl TeeError {
    /// The category for the user: the TA's for rejections, `resource` for TEE and I/O
    /// failures, `policy` for ABI mismatches.
    pub fn category(&self) -> Category {
        match self {
            TeeError::Rejected { rejection, .. } => rejection.category,
            TeeError::Protocol { source, .. } => source.category(),
            TeeError::Tee { .. } | TeeError::Backend(_) | TeeError::Io(_) => Category::Resource,
        }
    }

    /// A TEE error for a GlobalPlatform code, with this project's message for it.
    pub fn from_code(command: &'static str, code: u32) -> Self {
        TeeError::Tee {
            command,
            code,
            message: abi::tee::message(code).to_string(),
        }
    }
}

/// Which backend a [`Tee`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// OP-TEE through libteec.
    Optee,
    /// The in-process simulator (not a TEE).
    Simulator,
}

/// The raw result of an invoke: the response bytes and bulk output.
#[derive(Debug, Clone, Default)]
pub struct RawOutput {
    /// The response (parameter 1).
    pub response: Vec<u8>,
    /// The bulk output (parameter 3), when the command has one.
    pub data: Vec<u8>,
}

/// One TA session.
pub trait Tee {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// Sends one command with the ABI's parameter layout: the request in parameter 0, a
    /// response buffer of `response_capacity` in 1, `data_in` in 2 and an output buffer of
    /// `data_out_capacity` in 3 (for commands that have them).
    fn invoke(
        &mut self,
        command: CommandId,
        request: &[u8],
        data_in: Option<&[u8]>,
        response_capacity: usize,
        data_out_capacity: Option<usize>,
    ) -> Result<RawOutput, TeeError>;

    /// Sends a typed request and decodes the reply.
    fn call(
        &mut self,
        request: &Request,
        data_in: Option<&[u8]>,
    ) -> Result<(Reply, Vec<u8>), TeeError> {
        let command = request.command();
        // STREAM_UPDATE may release a block held back from the previous chunk.
        let held = match command {
            CommandId::StreamUpdate => suit_shared::verity::BLOCK_SIZE,
            _ => 0,
        };
        let data_out_capacity = command
            .data_out()
            .then(|| data_in.map_or(0, <[u8]>::len) + abi::DECRYPT_OUTPUT_SLACK + held);
        let data_in = if command.data_in() {
            Some(data_in.unwrap_or_default())
        } else {
            None
        };
        let capacity = command.response_capacity();
        let out = self.invoke(
            command,
            &request.encode(),
            data_in,
            capacity,
            data_out_capacity,
        )?;
        match abi::decode_response(command, &out.response) {
            Ok(Ok(reply)) => Ok((reply, out.data)),
            Ok(Err(rejection)) => Err(TeeError::Rejected {
                command: command.name(),
                rejection,
            }),
            Err(source) => Err(TeeError::Protocol {
                command: command.name(),
                source,
            }),
        }
    }

    /// GET_INFO; refuses a TA of another ABI version.
    fn get_info(&mut self) -> Result<Info, TeeError> {
        let info = Typed(self).get_info()?;
        if info.abi_version != abi::ABI_VERSION {
            return Err(TeeError::Protocol {
                command: "GET_INFO",
                source: suit_shared::Error::Unsupported(format!(
                    "ABI version mismatch: the TA speaks version {}, this agent version {}",
                    info.abi_version,
                    abi::ABI_VERSION
                )),
            });
        }
        Ok(*info)
    }

    /// The chunk size to stream with: the TA's maximum, capped at what OP-TEE guarantees.
    fn chunk_size(&mut self) -> Result<usize, TeeError> {
        let info = self.get_info()?;
        // The decoder guarantees 1..=MAX_CHUNK_LIMIT.
        Ok((info.max_chunk as usize).min(abi::GUARANTEED_CHUNK))
    }

    /// The payload bytes per STREAM_UPDATE: the TA's `max-chunk` (up to 1 MiB: the TA's build
    /// announces what its OP-TEE allows), the hash blocks travelling in
    /// [`abi::STREAM_HASH_ROOM`] beside them.
    fn stream_chunk_size(&mut self) -> Result<usize, TeeError> {
        Ok(self.get_info()?.max_chunk as usize)
    }

    /// LOAD_MANIFEST: authenticates the envelope and returns the install plan for `target_slot`.
    fn load_manifest(&mut self, envelope: &[u8], target_slot: u64) -> Result<Plan, TeeError> {
        self.load_manifest_with_nonce(envelope, target_slot, None)
    }

    /// LOAD_MANIFEST with a verifier's nonce (at most [`abi::MAX_NONCE`] bytes) that every
    /// approval token of this update carries.
    fn load_manifest_with_nonce(
        &mut self,
        envelope: &[u8],
        target_slot: u64,
        nonce: Option<&[u8]>,
    ) -> Result<Plan, TeeError> {
        self.load_manifest_with_facts(envelope, target_slot, nonce, None)
    }

    /// LOAD_MANIFEST with a verifier's nonce and the device's facts, from which the TA
    /// answers minimum-battery and update-authorized (`None`: no battery, authorised).
    fn load_manifest_with_facts(
        &mut self,
        envelope: &[u8],
        target_slot: u64,
        nonce: Option<&[u8]>,
        facts: Option<abi::DeviceFacts>,
    ) -> Result<Plan, TeeError> {
        Typed(self).load_manifest(target_slot, nonce.map(<[u8]>::to_vec), facts, envelope)
    }

    /// PAYLOAD_UPDATE: the chunk at `offset` of component `component`'s payload (ciphertext
    /// if encrypted); offset 0 (re)starts the component.
    fn payload_update(
        &mut self,
        component: u32,
        offset: u64,
        chunk: &[u8],
    ) -> Result<(), TeeError> {
        Typed(self).payload_update(component, offset, chunk)
    }

    /// PAYLOAD_FINAL: checks size, digest and AEAD tag; returns the approval token.
    fn payload_final(&mut self, component: u32) -> Result<Approval, TeeError> {
        Typed(self).payload_final(component)
    }

    /// Streams `reader` through PAYLOAD_UPDATE in chunks of [`Tee::chunk_size`], then
    /// PAYLOAD_FINAL.
    fn approve(&mut self, component: u32, reader: &mut dyn Read) -> Result<Approval, TeeError> {
        let mut buf = vec![0u8; self.chunk_size()?];
        let mut offset = 0u64;
        loop {
            let n = read_full(reader, &mut buf)?;
            if n == 0 {
                break;
            }
            self.payload_update(component, offset, &buf[..n])?;
            offset += n as u64;
        }
        self.payload_final(component)
    }

    /// DECRYPT_FOR_INSTALL: decrypts the chunk at `offset` of an approved encrypted component
    /// (offset 0 restarts it); `last` ends it, and the TA then checks the plaintext against
    /// what it approved. The plaintext of earlier chunks is only final once that check passed.
    fn decrypt_for_install(
        &mut self,
        component: u32,
        token: &[u8],
        offset: u64,
        chunk: &[u8],
        last: bool,
    ) -> Result<Vec<u8>, TeeError> {
        let (reply, mut data) =
            Typed(self).decrypt_for_install(component, token.to_vec(), offset, last, chunk)?;
        data.truncate(reply.written as usize);
        Ok(data)
    }

    /// Streams the ciphertext from `reader` through DECRYPT_FOR_INSTALL into `writer`; returns
    /// the plaintext size. `writer` holds unverified plaintext until this returns `Ok`.
    fn decrypt_stream(
        &mut self,
        component: u32,
        token: &[u8],
        reader: &mut dyn Read,
        writer: &mut dyn Write,
    ) -> Result<u64, TeeError> {
        let size = self.chunk_size()?;
        let mut buf = vec![0u8; size];
        let mut next = vec![0u8; size];
        let mut n = read_full(reader, &mut buf)?;
        let (mut offset, mut written) = (0u64, 0u64);
        loop {
            // Read ahead one chunk to know whether this one is the last.
            let m = if n == 0 {
                0
            } else {
                read_full(reader, &mut next)?
            };
            let last = m == 0;
            let plain = self.decrypt_for_install(component, token, offset, &buf[..n], last)?;
            writer.write_all(&plain)?;
            written += plain.len() as u64;
            offset += n as u64;
            if last {
                return Ok(written);
            }
            std::mem::swap(&mut buf, &mut next);
            n = m;
        }
    }

    /// STREAM_UPDATE: `hashes` (the hash blocks the chunk's blocks need, see
    /// [`suit_shared::verity::HashFeed`]) and the chunk at `offset` of the payload as fetched;
    /// returns the plaintext of the blocks the TA checked against the manifest's tree, and
    /// whether the image is complete.
    fn stream_update(
        &mut self,
        component: u32,
        offset: u64,
        hashes: &[u8],
        chunk: &[u8],
    ) -> Result<(Vec<u8>, bool), TeeError> {
        let mut data = Vec::with_capacity(hashes.len() + chunk.len());
        data.extend_from_slice(hashes);
        data.extend_from_slice(chunk);
        self.stream_update_data(component, offset, hashes.len(), &data)
    }

    /// [`Tee::stream_update`] with the hash blocks and the chunk already in one buffer:
    /// `data` is `hashes` bytes of hash blocks, then the chunk.
    fn stream_update_data(
        &mut self,
        component: u32,
        offset: u64,
        hashes: usize,
        data: &[u8],
    ) -> Result<(Vec<u8>, bool), TeeError> {
        let hashes = u32::try_from(hashes).unwrap_or(u32::MAX);
        let (reply, mut plain) = Typed(self).stream_update(component, offset, hashes, data)?;
        plain.truncate(reply.written as usize);
        Ok((plain, reply.done))
    }

    /// STREAM_FINAL: every block checked (and the AEAD tag of a whole encrypted stream);
    /// returns the approval token.
    fn stream_final(&mut self, component: u32) -> Result<Approval, TeeError> {
        Typed(self).stream_final(component)
    }

    /// COMMIT with the tokens of every plan item, in plan order.
    fn commit(&mut self, tokens: &[Vec<u8>]) -> Result<PendingInstall, TeeError> {
        Typed(self).commit(tokens.to_vec())
    }

    /// CONFIRM_UPDATE: the chunk at `offset` of the running slot's component `component`
    /// (index in the pending install); offset 0 (re)starts the component.
    fn confirm_update(
        &mut self,
        component: u32,
        offset: u64,
        chunk: &[u8],
    ) -> Result<(), TeeError> {
        Typed(self).confirm_update(component, offset, chunk)
    }

    /// Streams `size` bytes of a running slot's component from `reader` through
    /// CONFIRM_UPDATE (a slot device is usually larger than the image: exactly the recorded
    /// size is read).
    fn confirm_stream(
        &mut self,
        component: u32,
        reader: &mut dyn Read,
        size: u64,
    ) -> Result<(), TeeError> {
        let mut buf = vec![0u8; self.chunk_size()?];
        let mut offset = 0u64;
        let mut limited = reader.take(size);
        loop {
            let n = read_full(&mut limited, &mut buf)?;
            if n == 0 && offset > 0 {
                return Ok(());
            }
            self.confirm_update(component, offset, &buf[..n])?;
            offset += n as u64;
            if n == 0 {
                return Ok(());
            }
        }
    }

    /// CONFIRM: checks the streamed slot content and raises the floors; returns them.
    fn confirm(&mut self) -> Result<Floors, TeeError> {
        Typed(self).confirm()
    }

    /// ROLLBACK: drops the pending install (idempotent); floors unchanged.
    fn rollback(&mut self) -> Result<(), TeeError> {
        Typed(self).rollback()
    }

    /// ABORT: drops this session's update in progress.
    fn abort(&mut self) -> Result<(), TeeError> {
        Typed(self).abort()
    }

    /// REPORT: a SUIT report of this session's last update attempt, signed by the device key
    /// (see [`suit_shared::report`]); `nonce` is included for a server's freshness check.
    fn report(&mut self, nonce: Option<&[u8]>) -> Result<Vec<u8>, TeeError> {
        Typed(self).report(nonce.map(<[u8]>::to_vec))
    }

    /// PROVISION (once): fleet KEK and identity overrides.
    fn provision(&mut self, provisioning: &Provisioning) -> Result<(), TeeError> {
        Typed(self).provision(provisioning.clone())
    }

    /// UPDATE_ANCHORS: applies a signed trust-anchor update envelope (docs/anchors.md).
    fn update_anchors(&mut self, envelope: &[u8]) -> Result<(), TeeError> {
        Typed(self).update_anchors(envelope)
    }

    /// BOOT_VERIFY: what `slot` (component-slot number) may boot, or the TA's refusal.
    fn boot_verify(&mut self, slot: u64) -> Result<suit_shared::boot::BootRecord, TeeError> {
        Typed(self).boot_verify(slot)
    }
}

/// The identity the Linux kernel gives a client that opens a session with the user login
/// (TEEC_LOGIN_USER) as effective uid `uid`: UUIDv5 of `"uid=<hex>"` in the kernel's client
/// namespace (drivers/tee/tee_core.c). A TA built with `TA_CLIENT=user:<uid>` obeys it.
pub fn linux_user_identity(uid: u32) -> suit_ta_core::ClientIdentity {
    let namespace = uuid::Uuid::from_bytes(abi::login::LINUX_CLIENT_NAMESPACE);
    let name = format!("uid={uid:x}");
    suit_ta_core::ClientIdentity {
        login: abi::login::USER,
        uuid: *uuid::Uuid::new_v5(&namespace, name.as_bytes()).as_bytes(),
    }
}

/// A session seen through the ABI's derived typed client.
struct Typed<'a, T: ?Sized>(&'a mut T);

impl<T: Tee + ?Sized> Client for Typed<'_, T> {
    type Error = TeeError;

    fn call(
        &mut self,
        request: &Request,
        data_in: Option<&[u8]>,
    ) -> Result<(Reply, Vec<u8>), TeeError> {
        self.0.call(request, data_in)
    }

    fn unexpected(command: CommandId) -> TeeError {
        TeeError::Protocol {
            command: command.name(),
            source: suit_shared::Error::InvalidValue {
                context: "ABI response",
                element: "reply",
                reason: "does not belong to the command",
            },
        }
    }
}

/// Reads until `buf` is full or the reader ends.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
