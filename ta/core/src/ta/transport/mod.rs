//! Transport and dispatch: the GlobalPlatform parameter layout of every invoke (abi.rs
//! "Transport"), the per-command request caps, the response encoding, and the dispatch of a
//! decoded request to its command through the ABI table ([`abi::Handler`]).

use alloc::vec;
use alloc::vec::Vec;

use suit_shared::abi::{self, encode_response, Arg, CommandId, Refusal, Reply, Request};

use super::session::SessionId;
use super::Ta;
use crate::error::{Result, TaError};
use crate::platform::{Clock, Rng, Storage};

mod handlers;

use handlers::Exec;

/// One GlobalPlatform parameter as the core sees it: inputs already copied into TA memory,
/// outputs as capacities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// TEE_PARAM_TYPE_NONE.
    None,
    /// A value input.
    ValueInput(u32, u32),
    /// A value output.
    ValueOutput,
    /// A value inout.
    ValueInout(u32, u32),
    /// A memref input, copied.
    MemrefInput(Vec<u8>),
    /// A memref input of this size left in shared memory: the bulk data in (parameter 2),
    /// which the core reads piece by piece through the invoke's [`Bulk`].
    MemrefShared(usize),
    /// A memref output of this capacity.
    MemrefOutput(usize),
    /// A memref inout, copied, with its capacity.
    MemrefInout(Vec<u8>),
}

/// Transport-level failures; nothing changed in the TA when one is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TeeError {
    /// Unknown command or parameter types that do not match the ABI.
    #[error("bad parameters: {0}")]
    BadParameters(&'static str),
    /// An output buffer is too small; `needed` bytes are required in parameter `param`.
    #[error("parameter {param} needs a buffer of {needed} bytes")]
    ShortBuffer {
        /// The parameter index.
        param: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// The session id is not open.
    #[error("no such session")]
    NoSession,
    /// An input is larger than this command ever needs; refused before it is parsed.
    #[error("parameter {param} holds {size} bytes, more than the {limit} this command accepts")]
    ExcessData {
        /// The parameter index.
        param: usize,
        /// Its size.
        size: usize,
        /// The command's limit for it.
        limit: usize,
    },
    /// Too many sessions are open.
    #[error("too many sessions are open")]
    Busy,
}

impl TeeError {
    /// The GlobalPlatform return code for this error.
    pub fn code(&self) -> u32 {
        match self {
            TeeError::BadParameters(_) => abi::tee::ERROR_BAD_PARAMETERS,
            TeeError::ShortBuffer { .. } => abi::tee::ERROR_SHORT_BUFFER,
            TeeError::NoSession => abi::tee::ERROR_BAD_STATE,
            TeeError::ExcessData { .. } => abi::tee::ERROR_EXCESS_DATA,
            TeeError::Busy => abi::tee::ERROR_BUSY,
        }
    }
}

/// What an invoke produced: the response for parameter 1, bulk output for parameter 3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The encoded response.
    pub response: Vec<u8>,
    /// Bulk output (DECRYPT_FOR_INSTALL).
    pub data: Option<Vec<u8>>,
}

/// The bulk data of an invoke where the client put it: data in (parameter 2, a
/// [`Param::MemrefShared`]) and data out (parameter 3). In the TA these are OP-TEE's shared
/// memory: the core copies the input piece by piece (a few KiB) into TA memory, checks and
/// decrypts only that copy — every byte of shared memory is read once, never twice (no
/// double fetch) — and writes its output piece by piece, so a 1 MiB chunk costs the heap
/// a few KiB, not two copies of the chunk.
pub trait Bulk {
    /// Size of the data in (0 without one).
    fn in_len(&self) -> usize;
    /// Copies `buf.len()` bytes at `offset` of the data in into `buf`.
    fn read(&self, offset: usize, buf: &mut [u8]) -> core::result::Result<(), TeeError>;
    /// Capacity of the data out (0 without one).
    fn out_capacity(&self) -> usize;
    /// Writes `data` at `offset` of the data out.
    fn write(&mut self, offset: usize, data: &[u8]) -> core::result::Result<(), TeeError>;
    /// Sets the size of the data out the client sees (what the command released; 0 on
    /// error).
    fn set_out_len(&mut self, len: usize) -> core::result::Result<(), TeeError>;
}

/// [`Bulk`] over a borrowed input and a vector output of a given capacity (the simulator,
/// tests).
pub struct VecBulk<'a> {
    input: &'a [u8],
    out: Vec<u8>,
    capacity: usize,
}

impl<'a> VecBulk<'a> {
    /// The data in `input` and a data out of `capacity` bytes.
    pub fn new(input: &'a [u8], capacity: usize) -> Self {
        VecBulk {
            input,
            out: Vec::new(),
            capacity,
        }
    }

    /// The data out, as long as the invoke set it.
    pub fn into_output(self) -> Vec<u8> {
        self.out
    }
}

impl Bulk for VecBulk<'_> {
    fn in_len(&self) -> usize {
        self.input.len()
    }

    fn read(&self, offset: usize, buf: &mut [u8]) -> core::result::Result<(), TeeError> {
        let piece = offset
            .checked_add(buf.len())
            .and_then(|end| self.input.get(offset..end))
            .ok_or(TeeError::BadParameters("read beyond the data in"))?;
        buf.copy_from_slice(piece);
        Ok(())
    }

    fn out_capacity(&self) -> usize {
        self.capacity
    }

    fn write(&mut self, offset: usize, data: &[u8]) -> core::result::Result<(), TeeError> {
        let end = offset
            .checked_add(data.len())
            .filter(|end| *end <= self.capacity)
            .ok_or(TeeError::ShortBuffer {
                param: abi::PARAM_DATA_OUT,
                needed: offset.saturating_add(data.len()),
            })?;
        if self.out.len() < end {
            self.out.resize(end, 0);
        }
        self.out[offset..end].copy_from_slice(data);
        Ok(())
    }

    fn set_out_len(&mut self, len: usize) -> core::result::Result<(), TeeError> {
        self.out.resize(len.min(self.capacity), 0);
        Ok(())
    }
}

/// A bulk data in that is absent (commands without one).
struct NoBulk;

impl Bulk for NoBulk {
    fn in_len(&self) -> usize {
        0
    }
    fn read(&self, _: usize, buf: &mut [u8]) -> core::result::Result<(), TeeError> {
        match buf.len() {
            0 => Ok(()),
            _ => Err(TeeError::BadParameters("this invoke has no data in")),
        }
    }
    fn out_capacity(&self) -> usize {
        0
    }
    fn write(&mut self, _: usize, data: &[u8]) -> core::result::Result<(), TeeError> {
        match data.len() {
            0 => Ok(()),
            _ => Err(TeeError::BadParameters("this invoke has no data out")),
        }
    }
    fn set_out_len(&mut self, _: usize) -> core::result::Result<(), TeeError> {
        Ok(())
    }
}

/// The parameters of an invoke, checked against the command's layout.
struct Layout<'p> {
    request: &'p [u8],
    response_capacity: usize,
    /// Size of the data in (in the invoke's [`Bulk`]).
    data: Option<usize>,
    out_capacity: Option<usize>,
}

fn layout(command: CommandId, params: &[Param; 4]) -> core::result::Result<Layout<'_>, TeeError> {
    let Param::MemrefInput(request) = &params[abi::PARAM_REQUEST] else {
        return Err(TeeError::BadParameters(
            "parameter 0 must be a memref input (request)",
        ));
    };
    if request.len() > command.max_request() {
        return Err(TeeError::ExcessData {
            param: abi::PARAM_REQUEST,
            size: request.len(),
            limit: command.max_request(),
        });
    }
    let Param::MemrefOutput(response_capacity) = params[abi::PARAM_RESPONSE] else {
        return Err(TeeError::BadParameters(
            "parameter 1 must be a memref output (response)",
        ));
    };
    if response_capacity < abi::MIN_RESPONSE_BUFFER {
        return Err(TeeError::ShortBuffer {
            param: abi::PARAM_RESPONSE,
            needed: abi::MIN_RESPONSE_BUFFER,
        });
    }
    let data = match (&params[abi::PARAM_DATA_IN], command.data_in()) {
        (Param::MemrefShared(len), true) => Some(*len),
        (Param::None, false) => None,
        (_, true) => {
            return Err(TeeError::BadParameters(
                "parameter 2 must be a memref input (data)",
            ))
        }
        (_, false) => {
            return Err(TeeError::BadParameters(
                "parameter 2 must be none for this command",
            ))
        }
    };
    let out_capacity = match (&params[abi::PARAM_DATA_OUT], command.data_out()) {
        (Param::MemrefOutput(c), true) => Some(*c),
        (Param::None, false) => None,
        (_, true) => {
            return Err(TeeError::BadParameters(
                "parameter 3 must be a memref output (data)",
            ))
        }
        (_, false) => {
            return Err(TeeError::BadParameters(
                "parameter 3 must be none for this command",
            ))
        }
    };
    if let (Some(capacity), Some(d)) = (out_capacity, data) {
        let needed = d + abi::DECRYPT_OUTPUT_SLACK;
        if capacity < needed {
            return Err(TeeError::ShortBuffer {
                param: abi::PARAM_DATA_OUT,
                needed,
            });
        }
    }
    Ok(Layout {
        request,
        response_capacity,
        data,
        out_capacity,
    })
}

impl<S: Storage, R: Rng, C: Clock> Ta<S, R, C> {
    /// One invoke with its bulk data in copied ([`Param::MemrefInput`] in parameter 2) and
    /// its bulk output returned as a vector: [`Ta::invoke_bulk`] for the simulator and tests.
    pub fn invoke(
        &mut self,
        id: SessionId,
        command: u32,
        params: &[Param; 4],
    ) -> core::result::Result<Output, TeeError> {
        let mut shared = params.clone();
        let input = match &params[abi::PARAM_DATA_IN] {
            Param::MemrefInput(d) => {
                shared[abi::PARAM_DATA_IN] = Param::MemrefShared(d.len());
                d.as_slice()
            }
            _ => &[],
        };
        let capacity = match params[abi::PARAM_DATA_OUT] {
            Param::MemrefOutput(c) => Some(c),
            _ => None,
        };
        let mut bulk = VecBulk::new(input, capacity.unwrap_or(0));
        let response = self.invoke_bulk(id, command, &shared, &mut bulk)?;
        Ok(Output {
            response,
            data: capacity.map(|_| bulk.into_output()),
        })
    }

    /// One invoke: checks the parameter layout, runs the command with the bulk data in and
    /// out of `bulk` (parameter 2 is a [`Param::MemrefShared`] of its size), sets the size of
    /// the data out and returns the encoded response.
    pub fn invoke_bulk(
        &mut self,
        id: SessionId,
        command: u32,
        params: &[Param; 4],
        bulk: &mut dyn Bulk,
    ) -> core::result::Result<Vec<u8>, TeeError> {
        let session = self.sessions.get_mut(id).ok_or(TeeError::NoSession)?;
        let command =
            CommandId::from_u32(command).ok_or(TeeError::BadParameters("unknown command"))?;
        let layout = layout(command, params)?;
        let mut none = NoBulk;
        let (bulk, data_len): (&mut dyn Bulk, usize) = match layout.data {
            Some(len) if len == bulk.in_len() => (bulk, len),
            Some(_) => return Err(TeeError::BadParameters("parameter 2 and its data differ")),
            None => (&mut none, 0),
        };
        let out_capacity = layout.out_capacity.unwrap_or(0).min(bulk.out_capacity());
        let mut written = 0;
        let result = Request::decode(command, layout.request)
            .map_err(TaError::from)
            .and_then(|request| {
                let mut exec = Exec {
                    core: &mut self.core,
                    id,
                    data: Data {
                        bulk: &mut *bulk,
                        len: data_len,
                    },
                    envelope: Vec::new(),
                    capacity: layout.response_capacity,
                    out_capacity,
                };
                let reply = exec.run(session, request)?;
                if let Reply::Decrypted(d) = &reply {
                    written = d.written as usize;
                }
                Ok(reply)
            });
        let mut response = encode_response(&result.map_err(|e| e.rejection()));
        if response.len() > layout.response_capacity {
            if command == CommandId::LoadManifest {
                session.update = None;
                self.core.release_update(id);
            }
            let too_large = Refusal {
                category: suit_shared::Category::Resource,
                code: suit_shared::abi::rejection::code::TA_RESPONSE_TOO_LARGE,
                args: vec![
                    Arg::text(command.name()),
                    Arg::size(response.len()),
                    Arg::size(layout.response_capacity),
                ],
            };
            response = encode_response(&Err(too_large));
            written = 0;
        }
        if layout.out_capacity.is_some() {
            bulk.set_out_len(written)?;
        }
        Ok(response)
    }
}

/// The bulk data in of an invoke, read piece by piece into TA memory.
pub(super) struct Data<'a> {
    bulk: &'a mut dyn Bulk,
    len: usize,
}

impl Data<'_> {
    /// Size of the data in.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Copies the bytes at `offset` into `buf` (TA memory); every check reads that copy.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.bulk
            .read(offset, buf)
            .map_err(|_| TaError::Bulk("read"))
    }

    /// The bytes `range` copied into a new vector (bounded by the caller).
    pub fn copy(&self, range: core::ops::Range<usize>) -> Result<Vec<u8>> {
        let mut copy = Vec::new();
        copy.try_reserve_exact(range.len())
            .map_err(|_| TaError::TooLarge {
                what: "a copy of the data in",
                size: range.len(),
                limit: 0,
            })?;
        copy.resize(range.len(), 0);
        self.read(range.start, &mut copy)?;
        Ok(copy)
    }

    /// Writes `data` at `offset` of the data out.
    pub fn write(&mut self, offset: usize, data: &[u8]) -> Result<()> {
        self.bulk
            .write(offset, data)
            .map_err(|_| TaError::Bulk("written"))
    }

    /// Feeds the bytes `range` of the data in to `f` in pieces of at most [`PIECE`] bytes,
    /// each copied once into a buffer of TA memory.
    pub fn pieces(
        &self,
        range: core::ops::Range<usize>,
        mut f: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut buf = zeroize::Zeroizing::new(alloc::vec![0u8; PIECE.min(range.len())]);
        let mut at = range.start;
        while at < range.end {
            let n = (range.end - at).min(buf.len());
            self.read(at, &mut buf[..n])?;
            f(&buf[..n])?;
            at += n;
        }
        Ok(())
    }

    /// [`Data::pieces`] with output: `f` turns each piece into bytes it appends to its
    /// second argument (emptied before each piece), which are written to the data out from
    /// `out_at` on. Returns the bytes written.
    pub fn transform(
        &mut self,
        range: core::ops::Range<usize>,
        out_at: usize,
        mut f: impl FnMut(&[u8], &mut Vec<u8>) -> Result<()>,
    ) -> Result<usize> {
        let mut buf = zeroize::Zeroizing::new(alloc::vec![0u8; PIECE.min(range.len())]);
        // Room for a piece, the partial block held before it and a decryptor's slack.
        let mut out = zeroize::Zeroizing::new(Vec::with_capacity(
            PIECE + suit_shared::verity::BLOCK_SIZE + abi::DECRYPT_OUTPUT_SLACK,
        ));
        let mut at = range.start;
        let mut written = 0;
        while at < range.end {
            let n = (range.end - at).min(buf.len());
            self.read(at, &mut buf[..n])?;
            out.clear();
            f(&buf[..n], &mut out)?;
            self.write(out_at + written, &out)?;
            written += out.len();
            at += n;
        }
        Ok(written)
    }
}

/// The piece of the data in the core copies into TA memory at a time (decrypted, hashed and
/// checked there): a few KiB of heap whatever the chunk size.
pub(super) const PIECE: usize = 16 * 1024;
