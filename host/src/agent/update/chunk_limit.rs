//! The TEE decorator that applies the configured chunk size to every stream, asking the TA
//! for its own maximum (GET_INFO) once per session rather than before every stream.

use super::{Tee, TeeError};

/// A TA session whose streams use chunks of at most the configured `chunk-size` (the TA's
/// own maximum still applies).
pub(super) struct ChunkLimited {
    inner: Box<dyn Tee>,
    limit: usize,
    /// The TA's maximum chunk, once asked: it is fixed for the TA, so one GET_INFO per
    /// session is enough.
    ta_max: Option<usize>,
}

impl ChunkLimited {
    /// `inner` streaming chunks of at most `limit` bytes.
    pub(super) fn new(inner: Box<dyn Tee>, limit: usize) -> Self {
        ChunkLimited {
            inner,
            limit,
            ta_max: None,
        }
    }
}

impl Tee for ChunkLimited {
    fn backend(&self) -> crate::tee::Backend {
        self.inner.backend()
    }

    fn invoke(
        &mut self,
        command: suit_shared::abi::CommandId,
        request: &[u8],
        data_in: Option<&[u8]>,
        response_capacity: usize,
        data_out_capacity: Option<usize>,
    ) -> Result<crate::tee::RawOutput, TeeError> {
        self.inner.invoke(
            command,
            request,
            data_in,
            response_capacity,
            data_out_capacity,
        )
    }

    fn stream_chunk_size(&mut self) -> Result<usize, TeeError> {
        Ok(self.inner.stream_chunk_size()?.min(self.limit))
    }

    fn chunk_size(&mut self) -> Result<usize, TeeError> {
        let ta_max = match self.ta_max {
            Some(n) => n,
            None => *self.ta_max.insert(self.inner.chunk_size()?),
        };
        Ok(ta_max.min(self.limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tee::simulator::{SimulatorConfig, SimulatorSession};

    #[test]
    fn streams_use_the_configured_chunk_size_below_the_tas() {
        let dir = tempfile::tempdir().unwrap();
        let session =
            SimulatorSession::connect(SimulatorConfig::new(dir.path(), Vec::new())).unwrap();
        let mut limited = ChunkLimited::new(Box::new(session), 64 * 1024);
        assert_eq!(limited.chunk_size().unwrap(), 64 * 1024);
        limited.limit = usize::MAX;
        assert_eq!(
            limited.chunk_size().unwrap(),
            suit_shared::abi::GUARANTEED_CHUNK
        );
    }
}
