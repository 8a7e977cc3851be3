//! The bulk data of an invoke stays in shared memory (docs/streaming.md, "Memory"): the TA
//! core copies a chunk piece by piece into its own memory and writes its output piece by
//! piece, so a 1 MiB STREAM_UPDATE, PAYLOAD_UPDATE or DECRYPT_FOR_INSTALL costs the TA's heap
//! a few KiB (OP-TEE's default TA heap here is 256 KiB), and every byte of shared memory is
//! read exactly once (no double fetch). Measured with an allocator that counts what this
//! thread allocates during the invoke, around the simulator TA driven exactly as the TA glue
//! drives it ([`Param::MemrefShared`] and a [`Bulk`] over "shared memory" allocated before).

#[allow(dead_code)] // helpers of the other simulator tests
#[path = "support/sim.rs"]
mod sim;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

use sim::{vendor_key, Device};
use suit_host::tee::simulator::SimulatorSession;
use suit_host::tee::Tee;
use suit_shared::abi::{self, Request};
use suit_shared::author::{build_envelope, encode_manifest, sign_envelope};
use suit_shared::verity::{HashFeed, BLOCK_SIZE};
use suit_ta_core::{Bulk, Param, TeeError};

/// Counts this thread's heap while `TRACK` is set (other tests run on other threads).
struct Counting;

thread_local! {
    static TRACK: Cell<bool> = const { Cell::new(false) };
    static NOW: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    let _ = TRACK.try_with(|t| {
        if t.get() {
            let now = NOW.with(|n| {
                n.set(n.get() + delta);
                n.get()
            });
            PEAK.with(|p| p.set(p.get().max(now)));
        }
    });
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout goes to the system allocator as given.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f`, returning its result and the most this thread's heap held above its level at
/// the start.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    NOW.with(|n| n.set(0));
    PEAK.with(|p| p.set(0));
    TRACK.with(|t| t.set(true));
    let out = f();
    TRACK.with(|t| t.set(false));
    (out, PEAK.with(Cell::get).max(0) as usize)
}

const MIB: usize = 1 << 20;
/// The most one invoke may cost the TA's heap: a small part of OP-TEE's 256 KiB default.
const HEAP_LIMIT: usize = 64 * 1024;

/// "Shared memory": the data in and a data out of fixed capacity, allocated before the
/// invoke; counts how often each byte of the input is read.
struct Shared<'a> {
    input: &'a [u8],
    reads: Vec<Cell<u8>>,
    out: Vec<u8>,
    out_len: usize,
}

impl<'a> Shared<'a> {
    fn new(input: &'a [u8], capacity: usize) -> Self {
        Shared {
            input,
            reads: (0..input.len()).map(|_| Cell::new(0)).collect(),
            out: vec![0; capacity],
            out_len: 0,
        }
    }

    fn output(&self) -> &[u8] {
        &self.out[..self.out_len]
    }

    /// Whether every byte of the input was read exactly once.
    fn read_once(&self) -> bool {
        self.reads.iter().all(|r| r.get() == 1)
    }
}

impl Bulk for Shared<'_> {
    fn in_len(&self) -> usize {
        self.input.len()
    }

    fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), TeeError> {
        let end = offset + buf.len();
        buf.copy_from_slice(&self.input[offset..end]);
        for r in &self.reads[offset..end] {
            r.set(r.get().saturating_add(1));
        }
        Ok(())
    }

    fn out_capacity(&self) -> usize {
        self.out.len()
    }

    fn write(&mut self, offset: usize, data: &[u8]) -> Result<(), TeeError> {
        self.out[offset..offset + data.len()].copy_from_slice(data);
        Ok(())
    }

    fn set_out_len(&mut self, len: usize) -> Result<(), TeeError> {
        self.out_len = len;
        Ok(())
    }
}

/// One invoke as the TA glue makes it; the decoded reply and the heap it cost.
fn invoke(
    s: &mut SimulatorSession,
    request: &Request,
    shared: &mut Shared<'_>,
) -> (abi::Reply, usize) {
    let command = request.command();
    let params = [
        Param::MemrefInput(request.encode()),
        Param::MemrefOutput(command.response_capacity()),
        Param::MemrefShared(shared.input.len()),
        if command.data_out() {
            Param::MemrefOutput(shared.out.len())
        } else {
            Param::None
        },
    ];
    let (response, peak) = peak_of(|| s.invoke_bulk(command as u32, &params, shared));
    let reply = abi::decode_response(command, &response.unwrap())
        .unwrap()
        .unwrap_or_else(|r| panic!("{} refused: {r:?}", command.name()));
    (reply, peak)
}

/// An update of a `len`-byte image encrypted to the device; with `streaming`, bound to its
/// tree. Returns the envelope, the image, the payload and (streaming) the hash area.
fn update(dev: &Device, len: usize, streaming: bool) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    use p384::pkcs8::{EncodePublicKey, LineEnding};
    let dir = tempfile::tempdir().unwrap();
    let image: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4099) as u8).collect();
    std::fs::write(dir.path().join("fw.bin"), &image).unwrap();
    let info = dev.session().get_info().unwrap();
    let key = p384::PublicKey::from_sec1_bytes(&info.device_public_key).unwrap();
    std::fs::write(
        dir.path().join("device.pub.pem"),
        key.to_public_key_pem(LineEnding::LF).unwrap(),
    )
    .unwrap();
    let spec = format!(
        "sequence-number = 2\nvendor = \"example.com\"\nclass = \"qemu-armv8a\"\n\
         [[component]]\nid = [\"fw\"]\nimage = \"fw.bin\"\nuri = \"http://x/fw\"\n\
         streaming = {streaming}\n\
         [component.encryption]\nrecipient = \"device.pub.pem\"\n"
    );
    let envelope = envelope_from_spec(dir.path(), &spec);
    let payload = std::fs::read(dir.path().join("fw.bin.enc")).unwrap();
    let area = std::fs::read(dir.path().join("fw.bin.enc.verity")).unwrap_or_default();
    (envelope, image, payload, area)
}

fn envelope_from_spec(dir: &Path, spec: &str) -> Vec<u8> {
    let path = dir.join("spec.toml");
    std::fs::write(&path, spec).unwrap();
    let prepared = suit_host::tool::spec::Spec::load(&path)
        .unwrap()
        .prepare(dir)
        .unwrap();
    let encoded = encode_manifest(&prepared.manifest(), prepared.digest_alg());
    let key = vendor_key();
    sign_envelope(
        &build_envelope(&encoded, &[], prepared.digest_alg()),
        &key,
        key.default_alg(),
        None,
    )
    .unwrap()
}

#[test]
fn a_1_mib_stream_update_costs_the_ta_heap_a_few_kib_and_reads_each_byte_once() {
    let dev = Device::with(|c| c.max_chunk = MIB);
    let len = 3 * MIB + 100;
    let (envelope, image, payload, area) = update(&dev, len, true);
    let mut s = dev.session();
    s.load_manifest(&envelope, 0).unwrap();
    let mut feed = HashFeed::new(len as u64, 0);
    let mut released = Vec::new();
    let mut offset = 0;
    let mut invokes = 0;
    while offset < payload.len() {
        // The last chunk takes the tag along, as the agent does.
        let end = match payload.len() - offset {
            left if left <= MIB + 16 => payload.len(),
            _ => offset + MIB,
        };
        let mut data = Vec::new();
        for (level, index) in feed.after(end as u64) {
            let at = feed.area_offset(level, index) as usize;
            data.extend_from_slice(&area[at..at + BLOCK_SIZE]);
        }
        let hashes = data.len() as u32;
        data.extend_from_slice(&payload[offset..end]);
        let capacity = data.len() + BLOCK_SIZE + abi::DECRYPT_OUTPUT_SLACK;
        let mut shared = Shared::new(&data, capacity);
        let request = Request::StreamUpdate {
            component: 0,
            offset: offset as u64,
            hashes,
        };
        let (reply, peak) = invoke(&mut s, &request, &mut shared);
        assert!(matches!(reply, abi::Reply::Decrypted(_)), "{reply:?}");
        assert!(
            peak < HEAP_LIMIT,
            "STREAM_UPDATE of {} bytes at {offset} cost the TA heap {peak} bytes",
            end - offset
        );
        assert!(shared.read_once(), "a byte of shared memory read twice");
        eprintln!("STREAM_UPDATE at {offset}: TA heap peak {peak} bytes");
        released.extend_from_slice(shared.output());
        offset = end;
        invokes += 1;
    }
    assert_eq!(invokes, len.div_ceil(MIB), "one STREAM_UPDATE per MiB");
    assert_eq!(released, image);
    s.stream_final(0).unwrap();
}

#[test]
fn a_1_mib_payload_update_and_decrypt_for_install_cost_the_ta_heap_a_few_kib() {
    let dev = Device::with(|c| c.max_chunk = MIB);
    let len = 2 * MIB + 100;
    let (envelope, image, payload, _) = update(&dev, len, false);
    let mut s = dev.session();
    s.load_manifest(&envelope, 0).unwrap();
    for (at, chunk) in payload.chunks(MIB).enumerate() {
        let mut shared = Shared::new(chunk, 0);
        let request = Request::PayloadUpdate {
            component: 0,
            offset: (at * MIB) as u64,
        };
        let (_, peak) = invoke(&mut s, &request, &mut shared);
        assert!(
            peak < HEAP_LIMIT,
            "PAYLOAD_UPDATE cost the TA heap {peak} bytes"
        );
        assert!(shared.read_once(), "a byte of shared memory read twice");
    }
    let token = s.payload_final(0).unwrap().token;
    let mut plain = Vec::new();
    let chunks: Vec<&[u8]> = payload.chunks(MIB).collect();
    for (at, chunk) in chunks.iter().enumerate() {
        let capacity = chunk.len() + abi::DECRYPT_OUTPUT_SLACK;
        let mut shared = Shared::new(chunk, capacity);
        let request = Request::DecryptForInstall {
            component: 0,
            token: token.clone(),
            offset: (at * MIB) as u64,
            last: at + 1 == chunks.len(),
        };
        let (reply, peak) = invoke(&mut s, &request, &mut shared);
        assert!(matches!(reply, abi::Reply::Decrypted(_)), "{reply:?}");
        assert!(
            peak < HEAP_LIMIT,
            "DECRYPT_FOR_INSTALL cost the TA heap {peak} bytes"
        );
        assert!(shared.read_once(), "a byte of shared memory read twice");
        plain.extend_from_slice(shared.output());
    }
    assert_eq!(plain, image);
}

#[test]
fn a_failed_stream_update_releases_nothing() {
    let dev = Device::with(|c| c.max_chunk = MIB);
    let len = MIB;
    let (envelope, _, payload, area) = update(&dev, len, true);
    let mut s = dev.session();
    s.load_manifest(&envelope, 0).unwrap();
    let mut feed = HashFeed::new(len as u64, 0);
    let mut data = Vec::new();
    for (level, index) in feed.after(MIB as u64) {
        let at = feed.area_offset(level, index) as usize;
        data.extend_from_slice(&area[at..at + BLOCK_SIZE]);
    }
    let hashes = data.len() as u32;
    data.extend_from_slice(&payload[..MIB]);
    // A block in the middle altered: the blocks before it pass, the invoke still releases
    // nothing (the data out's size is 0).
    let tampered = hashes as usize + MIB / 2 + 5;
    data[tampered] ^= 1;
    let capacity = data.len() + BLOCK_SIZE + abi::DECRYPT_OUTPUT_SLACK;
    let mut shared = Shared::new(&data, capacity);
    let request = Request::StreamUpdate {
        component: 0,
        offset: 0,
        hashes,
    };
    let command = request.command();
    let params = [
        Param::MemrefInput(request.encode()),
        Param::MemrefOutput(command.response_capacity()),
        Param::MemrefShared(data.len()),
        Param::MemrefOutput(capacity),
    ];
    let response = s.invoke_bulk(command as u32, &params, &mut shared).unwrap();
    let rejection = abi::decode_response(command, &response)
        .unwrap()
        .unwrap_err();
    assert_eq!(
        rejection.category,
        suit_shared::Category::Digest,
        "{rejection:?}"
    );
    assert_eq!(shared.output(), &[] as &[u8]);
}
