//! One-pass install (docs/streaming.md): for a plan whose every item has a dm-verity root bound
//! by the manifest and a URI, the agent downloads the tree (`<uri>.verity`, 1/128 of the image,
//! kept in memory), then streams the payload from the server through STREAM_UPDATE and writes
//! the plaintext the TA released straight into the inactive slot: no staging file, one
//! decryption, one hash of each byte (the TA's tree check). The journal records the bytes
//! written and synced; after a power cut or a dropped connection the stream resumes there with
//! an HTTP `Range` request. The slot is not read back: dm-verity checks every block against
//! the TA's root at boot, and CONFIRM hashes the image again.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

use suit_shared::abi::{Approval, PayloadSource, Plan, PlanItem};
use suit_shared::encryption::GCM_TAG_LEN;
use suit_shared::verity::{self, HashFeed, BLOCK_SIZE};

use super::install::{fetch_bound, set_state};
use super::{io_err, Agent, AgentError, Installed};
use crate::agent::fetch::{FetchError, Source};
use crate::agent::journal::{ComponentState, Journal, Step, UpdateRecord};
use crate::agent::Slot;

/// Time between two syncs of the slot and the journal (what a power cut makes the stream
/// download again): syncing by time, not by bytes, keeps the disk streaming on fast devices.
const SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// Connections a stream may open for one component (a dropped one resumes with `Range`).
const MAX_CONNECTIONS: u32 = 5;

/// Whether `plan` installs in one pass: every item has a tree root and a URI.
pub(super) fn streams(plan: &Plan) -> bool {
    plan.items
        .iter()
        .all(|i| i.verity_root.is_some() && matches!(i.source, PayloadSource::Uri(_)))
}

impl Agent {
    /// Streams every item of `plan` into `target`, then COMMIT and the trial boot.
    pub(super) fn install_streaming(
        &mut self,
        plan: &Plan,
        target: Slot,
        (journal, update): (&mut Journal, &mut UpdateRecord),
    ) -> Result<Installed, AgentError> {
        let mut approvals = Vec::new();
        for (n, item) in plan.items.iter().enumerate() {
            let slot_path = self
                .component_config(&item.component_id)?
                .target(target)
                .path
                .clone();
            let size = item.size.unwrap_or(0);
            // Resume at the last synced block; a whole image streams its last block again,
            // for this session's token.
            let recorded = update.components.get(n).map_or(0, |c| c.streamed);
            let from = recorded.min(verity::padded_len(size).saturating_sub(BLOCK_SIZE as u64))
                / BLOCK_SIZE as u64
                * BLOCK_SIZE as u64;
            let approval =
                self.stream_item(item, &slot_path, from, (&mut *journal, &mut *update, n))?;
            set_state(update, n, ComponentState::Written);
            self.save_update(journal, update)?;
            approvals.push(approval);
        }
        update.advance(Step::Written);
        self.save_update(journal, update)?;
        self.commit_and_arm(plan, target, (journal, update), &approvals)
    }

    /// Streams plan item `item` (record `n` of `update`) from byte `from` into `slot_path`;
    /// returns the approval.
    fn stream_item(
        &mut self,
        item: &PlanItem,
        slot_path: &Path,
        from: u64,
        (journal, update, n): (&mut Journal, &mut UpdateRecord, usize),
    ) -> Result<Approval, AgentError> {
        let PayloadSource::Uri(uri) = &item.source else {
            return Err(AgentError::Plan("a streamed payload needs a URI".into()));
        };
        let size = item.size.unwrap_or(0);
        let fetched_size = fetch_bound(item)?;
        let area = self.fetch_tree(uri, size)?;
        let slot = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(slot_path)
            .map_err(io_err("open", slot_path))?;
        let source = Source::parse(uri)?;
        // Whole chunks of payload; the hash blocks travel in the room the ABI adds.
        let chunk_len = (self.tee.stream_chunk_size()? / BLOCK_SIZE).max(1) * BLOCK_SIZE;
        // One buffer per stream: the hash blocks go right before the chunk (at most
        // STREAM_HASH_ROOM), so the invoke's data is one slice, copied once (OP-TEE: into the
        // session's shared memory, registered once per session); the last chunk takes the
        // AEAD tag along rather than sending it alone.
        let room = suit_shared::abi::STREAM_HASH_ROOM;
        let mut buf = vec![0u8; room + chunk_len + GCM_TAG_LEN];
        let mut last_sync = std::time::Instant::now();
        let mut written = from;
        // fdatasync runs beside the stream (`Syncer`): the disk writes while the next chunks
        // download and pass the TA; the journal records only what a completed sync covers.
        let mut syncer = Syncer::start(&slot).map_err(io_err("open", slot_path))?;
        let mut asked = from;
        let mut progress = (self.progress)();
        progress.started(
            &format!(
                "streaming {} into {}",
                item.component_id,
                slot_path.display()
            ),
            from,
            Some(size),
        );
        let mut connections = 0;
        // What the TA received; it holds the hash path of its stream there.
        let mut offset = from;
        let mut feed = HashFeed::new(size, from);
        'connect: loop {
            connections += 1;
            if offset != written {
                // The TA holds a partial block: the stream restarts at the last block it
                // released (and this agent wrote), with the whole hash path again.
                offset = written;
                feed = HashFeed::new(size, written);
            }
            let (mut body, start) = self.fetcher.open(&source, offset, fetched_size)?;
            if start < offset {
                io::copy(&mut (&mut body).take(offset - start), &mut io::sink())
                    .map_err(|e| dropped(uri, &e))?;
            }
            loop {
                let want = match fetched_size.saturating_sub(offset) {
                    left if left <= (chunk_len + GCM_TAG_LEN) as u64 => left as usize,
                    _ => chunk_len,
                };
                let n_read = match read_full(&mut body, &mut buf[room..room + want]) {
                    Ok(n) => n,
                    Err(e) if connections < MAX_CONNECTIONS => {
                        tracing::warn!("{}; resuming at byte {written}", dropped(uri, &e));
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        continue 'connect;
                    }
                    Err(e) => return Err(dropped(uri, &e).into()),
                };
                if n_read == 0 {
                    if offset < fetched_size && connections < MAX_CONNECTIONS {
                        tracing::warn!("{uri}: the stream ended at byte {offset}; resuming");
                        continue 'connect;
                    }
                    break 'connect;
                }
                let end = offset + n_read as u64;
                if end > fetched_size {
                    return Err(FetchError::TooLarge {
                        origin: uri.clone(),
                        limit: fetched_size,
                        size: end,
                        announced: false,
                    }
                    .into());
                }
                let needs = feed.after(end);
                let start = room.checked_sub(needs.len() * BLOCK_SIZE).ok_or_else(|| {
                    AgentError::Plan(format!("{} hash blocks for one chunk", needs.len()))
                })?;
                for (i, (level, index)) in needs.into_iter().enumerate() {
                    let at = usize::try_from(feed.area_offset(level, index)).unwrap_or(usize::MAX);
                    let block = area.get(at..at.saturating_add(BLOCK_SIZE)).ok_or_else(|| {
                        AgentError::Plan(format!("{uri}.verity is shorter than the image's tree"))
                    })?;
                    let to = start + i * BLOCK_SIZE;
                    buf[to..to + BLOCK_SIZE].copy_from_slice(block);
                }
                let data = &buf[start..room + n_read];
                let (plain, _) =
                    self.tee
                        .stream_update_data(item.index, offset, room - start, data)?;
                slot.write_all_at(&plain, written)
                    .map_err(io_err("write", slot_path))?;
                written += plain.len() as u64;
                offset = end;
                progress.advanced(written);
                if let Some(synced) = syncer.done().map_err(io_err("sync", slot_path))? {
                    record(update, n, synced);
                    self.save_update(journal, update)?;
                }
                if written > asked && last_sync.elapsed() >= SYNC_INTERVAL && syncer.ask(written) {
                    asked = written;
                    last_sync = std::time::Instant::now();
                }
            }
        }
        syncer.stop().map_err(io_err("sync", slot_path))?;
        let approval = self.tee.stream_final(item.index)?;
        progress.finished(written);
        // The slot: the image, zeros to the block, the tree (verified by the TA as it went).
        super::storage::finish(&slot, size).map_err(io_err("finish", slot_path))?;
        crate::agent::verity::write_area(&slot, size, &area)
            .map_err(io_err("write the dm-verity tree to", slot_path))?;
        record(update, n, written);
        Ok(approval)
    }

    /// The hash area published beside the payload, `<uri>.verity`, read into memory (it is
    /// 1/128 of the image; every block of it is checked by the TA as it is used).
    fn fetch_tree(&mut self, uri: &str, size: u64) -> Result<Vec<u8>, AgentError> {
        let tree_uri = format!("{uri}.verity");
        let len = verity::hash_area_len(verity::data_blocks(size));
        let (body, _) = self.fetcher.open(&Source::parse(&tree_uri)?, 0, len)?;
        let mut area = Vec::new();
        body.take(len.saturating_add(1))
            .read_to_end(&mut area)
            .map_err(|e| dropped(&tree_uri, &e))?;
        if area.len() as u64 != len {
            return Err(AgentError::Plan(format!(
                "{tree_uri} holds {} bytes; the tree of this image has {len}",
                area.len()
            )));
        }
        Ok(area)
    }
}

/// A thread that syncs the slot's data when asked, so that the stream does not wait for the
/// disk: measured on this project's bench machine, a 1 GiB install that stopped for an
/// fdatasync every second took about 2× a single `dd conv=fsync` (the download, the TA and the
/// disk took turns); beside the stream the disk writes while the next chunks arrive.
struct Syncer {
    ask: std::sync::mpsc::SyncSender<u64>,
    done: std::sync::mpsc::Receiver<io::Result<u64>>,
    busy: bool,
    thread: std::thread::JoinHandle<()>,
}

impl Syncer {
    fn start(slot: &std::fs::File) -> io::Result<Self> {
        let file = slot.try_clone()?;
        let (ask, asked) = std::sync::mpsc::sync_channel::<u64>(1);
        let (report, done) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            for upto in asked {
                if report.send(file.sync_data().map(|()| upto)).is_err() {
                    return;
                }
            }
        });
        Ok(Syncer {
            ask,
            done,
            busy: false,
            thread,
        })
    }

    /// Asks for a sync covering every byte written before `upto`, unless one is running;
    /// whether it was asked.
    fn ask(&mut self, upto: u64) -> bool {
        if self.busy {
            return false;
        }
        self.busy = self.ask.try_send(upto).is_ok();
        self.busy
    }

    /// The offset a sync finished since the last call covers, if one did.
    fn done(&mut self) -> io::Result<Option<u64>> {
        match self.done.try_recv() {
            Ok(result) => {
                self.busy = false;
                result.map(Some)
            }
            Err(_) => Ok(None),
        }
    }

    /// Waits for the sync in flight (its error, if any) and ends the thread.
    fn stop(self) -> io::Result<()> {
        let Syncer {
            ask,
            done,
            busy,
            thread,
        } = self;
        drop(ask);
        let last = if busy { done.recv().ok() } else { None };
        let _ = thread.join();
        last.transpose().map(drop)
    }
}

fn record(update: &mut UpdateRecord, n: usize, written: u64) {
    if let Some(c) = update.components.get_mut(n) {
        c.streamed = written;
    }
    update.touch();
}

fn dropped(uri: &str, e: &io::Error) -> FetchError {
    FetchError::Transport {
        url: uri.to_string(),
        reason: format!("stream interrupted: {e}"),
    }
}

fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_syncer_reports_what_a_finished_sync_covers_and_one_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let slot = std::fs::File::create(dir.path().join("slot")).unwrap();
        slot.write_all_at(&[7; 8192], 0).unwrap();
        let mut syncer = Syncer::start(&slot).unwrap();
        assert_eq!(syncer.done().unwrap(), None, "nothing asked yet");
        assert!(syncer.ask(8192));
        // Until the first sync reports, no second one is asked.
        assert!(!syncer.ask(9000));
        let synced = loop {
            if let Some(n) = syncer.done().unwrap() {
                break n;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        assert_eq!(synced, 8192);
        assert!(syncer.ask(9000));
        syncer.stop().unwrap();
    }
}
