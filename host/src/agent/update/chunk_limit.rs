//! The TEE decorator that applies the configured chunk size to every stream.

use super::{Tee, TeeError};

/// A TA session whose streams use chunks of at most the configured `chunk-size` (the TA's
/// own maximum still applies).
pub(super) struct ChunkLimited {
    pub(super) inner: Box<dyn Tee>,
    pub(super) limit: usize,
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

    fn chunk_size(&mut self) -> Result<usize, TeeError> {
        Ok(self.inner.chunk_size()?.min(self.limit))
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
        let mut limited = ChunkLimited {
            inner: Box::new(session),
            limit: 64 * 1024,
        };
        assert_eq!(limited.chunk_size().unwrap(), 64 * 1024);
        limited.limit = usize::MAX;
        assert_eq!(
            limited.chunk_size().unwrap(),
            suit_shared::abi::GUARANTEED_CHUNK
        );
    }
}
