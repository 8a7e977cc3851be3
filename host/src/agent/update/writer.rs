//! The slot writer: an approved payload into the inactive slot — plaintext straight from the
//! staging file, or through DECRYPT_FOR_INSTALL for encrypted payloads.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::Path;

use suit_shared::abi::PlanItem;

use super::{io_err, Agent, AgentError};
use crate::agent::fetch::Progress;

impl Agent {
    pub(super) fn write_slot(
        &mut self,
        item: &PlanItem,
        token: &[u8],
        staged: &Path,
        slot_path: &Path,
    ) -> Result<(), AgentError> {
        let file = File::open(staged).map_err(io_err("open", staged))?;
        let label = format!("writing {}", slot_path.display());
        let total = file.metadata().ok().map(|m| m.len());
        let mut input = Metered::new(file, &label, total, (self.progress)());
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(slot_path)
            .map_err(io_err("open", slot_path))?;
        let written = if item.encryption_info.is_some() {
            // Unverified plaintext until decrypt_stream returns Ok; nothing is committed before.
            self.tee
                .decrypt_stream(item.index, token, &mut input, &mut out)?
        } else {
            io::copy(&mut input, &mut out).map_err(io_err("write", slot_path))?
        };
        // Nothing of the slot's old content stays behind the image.
        super::storage::finish(&out, written).map_err(io_err("finish", slot_path))
    }
}

/// A reader that reports how much of it was read to a [`Progress`] (TA streaming and slot
/// writes take as long as downloads on slow devices).
pub(super) struct Metered<R> {
    inner: R,
    done: u64,
    progress: Box<dyn Progress>,
}

impl<R: Read> Metered<R> {
    pub(super) fn new(
        inner: R,
        label: &str,
        total: Option<u64>,
        mut progress: Box<dyn Progress>,
    ) -> Self {
        progress.started(label, 0, total);
        Metered {
            inner,
            done: 0,
            progress,
        }
    }

    pub(super) fn finish(&mut self) {
        self.progress.finished(self.done);
    }
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        self.progress.advanced(self.done);
        Ok(n)
    }
}
