//! `make bench`: the TA core's heap during a one-pass stream (docs/streaming.md), measured in
//! process with a counting allocator around the simulator TA: an encrypted image of 64 MiB and
//! of 256 MiB streamed through STREAM_UPDATE in 1 MiB chunks with their hash blocks. The peak
//! is the most the heap held above what it held after LOAD_MANIFEST, while the TA streamed;
//! the bench's own buffers (the image, the invoke's data and output: OP-TEE's shared memory)
//! are allocated before that point and not counted. The invokes are made as the TA glue
//! makes them (the bulk data left in "shared memory", read by the core piece by piece), so
//! the peak is what OP-TEE's TA heap holds; what the TA keeps between invokes is printed too.
//! `ta_heap_peak_bytes` is the larger of the two; they should be equal (constant memory).

#[allow(dead_code)] // the tool benches' ids and memory helpers
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use suit_host::tee::simulator::{SimulatedTa, SimulatorConfig};
use suit_host::tee::Tee;
use suit_shared::abi::{CommandId, Request};
use suit_shared::verity::{HashFeed, BLOCK_SIZE};
use suit_ta_core::{Bulk, Param, TeeError};
use support::{Summary, MIB};

/// Counts the bytes allocated now and the most since the last reset.
struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout goes to the system allocator as given.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = NOW.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        NOW.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const CHUNK: usize = 1 << 20;

/// OP-TEE's shared memory of an invoke: the data in and the data out, allocated by the
/// client (not counted as the TA's heap).
struct Shared<'a> {
    input: &'a [u8],
    out: &'a mut [u8],
}

impl Bulk for Shared<'_> {
    fn in_len(&self) -> usize {
        self.input.len()
    }
    fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), TeeError> {
        buf.copy_from_slice(&self.input[offset..offset + buf.len()]);
        Ok(())
    }
    fn out_capacity(&self) -> usize {
        self.out.len()
    }
    fn write(&mut self, offset: usize, data: &[u8]) -> Result<(), TeeError> {
        self.out[offset..offset + data.len()].copy_from_slice(data);
        Ok(())
    }
    fn set_out_len(&mut self, _: usize) -> Result<(), TeeError> {
        Ok(())
    }
}

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The peak heap above the post-LOAD_MANIFEST level while `size` bytes stream, the most the
/// TA kept between invokes, and the STREAM_UPDATE invokes per MiB.
fn stream(size: usize) -> (usize, usize, f64) {
    let dir = tempfile::tempdir().unwrap();
    let anchor =
        suit_host::keys::load_trust_anchor(&repo().join("keys/dev-vendor-es384.pub.pem")).unwrap();
    let mut config = SimulatorConfig::new(dir.path().join("state"), vec![anchor]);
    config.max_chunk = CHUNK;
    let ta = SimulatedTa::new(config).unwrap();
    let mut s = ta.open_session();
    let key = {
        use p384::pkcs8::{EncodePublicKey, LineEnding};
        let info = s.get_info().unwrap();
        p384::PublicKey::from_sec1_bytes(&info.device_public_key)
            .unwrap()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    };
    std::fs::write(dir.path().join("device.pub.pem"), key).unwrap();
    support::make_image(&dir.path().join("fw.bin"), size as u64);
    std::fs::write(
        dir.path().join("spec.toml"),
        "sequence-number = 2\nvendor = \"example.com\"\nclass = \"qemu-armv8a\"\n\
         [[component]]\nid = [\"fw\"]\nimage = \"fw.bin\"\nuri = \"http://x/fw\"\n\
         streaming = true\n[component.encryption]\nrecipient = \"device.pub.pem\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(support::tool())
        .args(["create", "--spec"])
        .arg(dir.path().join("spec.toml"))
        .arg("--out")
        .arg(dir.path().join("fw.suit"))
        .arg("--key")
        .arg(repo().join("keys/dev-vendor-es384.priv.pem"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let envelope = std::fs::read(dir.path().join("fw.suit")).unwrap();
    let payload = std::fs::read(dir.path().join("fw.bin.enc")).unwrap();
    let area = std::fs::read(dir.path().join("fw.bin.enc.verity")).unwrap();
    s.load_manifest(&envelope, 0).unwrap();
    // The invoke's data (hash blocks + chunk) is built in one buffer made before the baseline:
    // only what the TA allocates counts (its copy of the input, its output, its stream state).
    let mut data = Vec::with_capacity(CHUNK + 16 + suit_shared::abi::STREAM_HASH_ROOM);
    let mut out = vec![0u8; data.capacity() + BLOCK_SIZE + suit_shared::abi::DECRYPT_OUTPUT_SLACK];
    let mut feed = HashFeed::new(size as u64, 0);
    let base = NOW.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let mut retained = 0;
    let mut invokes = 0;
    let mut offset = 0;
    while offset < payload.len() {
        // The last chunk takes the tag along (the agent does the same).
        let end = match payload.len() - offset {
            left if left <= CHUNK + 16 => payload.len(),
            _ => offset + CHUNK,
        };
        data.clear();
        for (level, index) in feed.after(end as u64) {
            let at = feed.area_offset(level, index) as usize;
            data.extend_from_slice(&area[at..at + BLOCK_SIZE]);
        }
        let hashes = data.len() as u32;
        data.extend_from_slice(&payload[offset..end]);
        let request = Request::StreamUpdate {
            component: 0,
            offset: offset as u64,
            hashes,
        };
        let capacity = data.len() + BLOCK_SIZE + suit_shared::abi::DECRYPT_OUTPUT_SLACK;
        let params = [
            Param::MemrefInput(request.encode()),
            Param::MemrefOutput(CommandId::StreamUpdate.response_capacity()),
            Param::MemrefShared(data.len()),
            Param::MemrefOutput(capacity),
        ];
        let mut shared = Shared {
            input: &data,
            out: &mut out,
        };
        let response = s
            .invoke_bulk(CommandId::StreamUpdate as u32, &params, &mut shared)
            .unwrap();
        assert!(matches!(
            suit_shared::abi::decode_response(CommandId::StreamUpdate, &response),
            Ok(Ok(_))
        ));
        drop(response);
        retained = retained.max(NOW.load(Ordering::Relaxed).saturating_sub(base));
        invokes += 1;
        offset = end;
    }
    s.stream_final(0).unwrap();
    let peak = PEAK.load(Ordering::Relaxed) - base;
    println!("  the TA's stream state between invokes: at most {retained} bytes");
    (peak, retained, invokes as f64 / (size as f64 / MIB as f64))
}

fn main() {
    let mut summary = Summary::new("ta_stream");
    let mut peaks = Vec::new();
    let mut states = Vec::new();
    for (size, key) in [(64 * MIB as usize, "64m"), (256 * MIB as usize, "256m")] {
        let (peak, state, per_mib) = stream(size);
        states.push(state);
        println!(
            "TA heap during a one-pass stream of {} MiB (encrypted, 1 MiB chunks, simulator): peak {peak} bytes above LOAD_MANIFEST's; {per_mib:.3} STREAM_UPDATE invokes per MiB",
            size / MIB as usize
        );
        summary.record_count(&format!("ta_heap_peak_bytes_{key}"), peak as u64);
        if key == "64m" {
            summary.record("ta_stream_invokes_per_mib_simulator", per_mib);
        }
        peaks.push(peak);
    }
    summary.record_count(
        "ta_heap_peak_bytes",
        *peaks.iter().max().unwrap_or(&0) as u64,
    );
    summary.record_count(
        "ta_stream_state_bytes",
        *states.iter().max().unwrap_or(&0) as u64,
    );
    summary.write();
}
