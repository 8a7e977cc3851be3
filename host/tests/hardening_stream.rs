//! One-pass streaming through the simulator TA (docs/streaming.md): STREAM_UPDATE/FINAL of
//! manifests that bind a dm-verity root (suit-tool create's `streaming = true`), plain and
//! encrypted, and every ordering and tamper case: blocks out of order, a tampered block, hash
//! block or tag, short and long streams, resume offsets, a stream after COMMIT, another
//! session.

#[allow(dead_code)] // helpers of the other simulator tests
#[path = "support/sim.rs"]
mod sim;

use std::path::Path;

use sim::{expect_rejection, vendor_key, Device};
use suit_host::tee::{Tee, TeeError};
use suit_shared::abi::{CommandId, Plan};
use suit_shared::author::{build_envelope, encode_manifest, sign_envelope};
use suit_shared::verity::{self, HashFeed, BLOCK_SIZE};
use suit_shared::Category;

/// 300 blocks and a bit: a tree of two levels, the last block partial.
const IMAGE_LEN: usize = 300 * BLOCK_SIZE + 100;
/// A chunk of the tests: 16 blocks.
const CHUNK: usize = 16 * BLOCK_SIZE;

/// A streaming update made by suit-tool's spec templates.
struct Update {
    dev: Device,
    _dir: tempfile::TempDir,
    envelope: Vec<u8>,
    image: Vec<u8>,
    /// What is fetched: the image, or its ciphertext.
    payload: Vec<u8>,
    /// The hash area `create` wrote beside the payload.
    area: Vec<u8>,
}

fn image(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 + i / 4096) as u8).collect()
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

fn update(encrypted: bool) -> Update {
    use p384::pkcs8::{EncodePublicKey, LineEnding};
    let dev = Device::with(|c| c.max_chunk = 256 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let img = image(IMAGE_LEN);
    std::fs::write(dir.path().join("fw.bin"), &img).unwrap();
    let encryption = if encrypted {
        let mut s = dev.session();
        let info = s.get_info().unwrap();
        let key = p384::PublicKey::from_sec1_bytes(&info.device_public_key).unwrap();
        std::fs::write(
            dir.path().join("device.pub.pem"),
            key.to_public_key_pem(LineEnding::LF).unwrap(),
        )
        .unwrap();
        "[component.encryption]\nrecipient = \"device.pub.pem\"\n"
    } else {
        ""
    };
    let spec = format!(
        "sequence-number = 2\nvendor = \"example.com\"\nclass = \"qemu-armv8a\"\n\
         [[component]]\nid = [\"fw\"]\nimage = \"fw.bin\"\nuri = \"http://x/fw\"\n\
         streaming = true\n{encryption}"
    );
    let envelope = envelope_from_spec(dir.path(), &spec);
    let fetched = if encrypted { "fw.bin.enc" } else { "fw.bin" };
    let payload = std::fs::read(dir.path().join(fetched)).unwrap();
    let area = std::fs::read(dir.path().join(format!("{fetched}.verity"))).unwrap();
    Update {
        dev,
        _dir: dir,
        envelope,
        image: img,
        payload,
        area,
    }
}

/// The hash blocks of `needs`, from the area.
fn hash_blocks(feed: &HashFeed, area: &[u8], needs: &[(u32, u64)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(level, index) in needs {
        let at = feed.area_offset(level, index) as usize;
        out.extend_from_slice(&area[at..at + BLOCK_SIZE]);
    }
    out
}

/// Streams `payload[from..]` in chunks of `chunk` with the hash blocks each needs; returns
/// the plaintext released.
fn stream(
    tee: &mut dyn Tee,
    payload: &[u8],
    area: &[u8],
    from: usize,
    chunk: usize,
) -> Result<Vec<u8>, TeeError> {
    let mut feed = HashFeed::new(IMAGE_LEN as u64, from as u64);
    let mut released = Vec::new();
    let mut offset = from;
    while offset < payload.len() {
        let end = (offset + chunk).min(payload.len());
        let needs = feed.after(end as u64);
        let hashes = hash_blocks(&feed, area, &needs);
        let (plain, _) = tee.stream_update(0, offset as u64, &hashes, &payload[offset..end])?;
        released.extend_from_slice(&plain);
        offset = end;
    }
    Ok(released)
}

fn load(u: &Update, tee: &mut dyn Tee) -> Plan {
    let plan = tee.load_manifest(&u.envelope, 0).unwrap();
    assert_eq!(plan.items.len(), 1);
    plan
}

#[test]
fn create_binds_the_tree_root_and_inspect_shows_it() {
    let u = update(false);
    let mut s = u.dev.session();
    let plan = load(&u, &mut s);
    let salt = suit_shared::digest::DigestAlg::Sha256.digest(&u.image);
    let (params, area) = verity::build(&u.image, salt.as_bytes()).unwrap();
    assert_eq!(plan.items[0].verity_root.as_deref(), Some(&params.root[..]));
    assert_eq!(u.area, area);
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("u.suit");
    std::fs::write(&env, &u.envelope).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_suit-tool"))
        .args(["inspect", "--json"])
        .arg(&env)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("verity-root"), "{text}");
    assert!(
        text.contains(&suit_host::common::hex(&params.root)),
        "{text}"
    );
}

#[test]
fn plain_and_encrypted_streams_release_the_image_and_commit() {
    for encrypted in [false, true] {
        let u = update(encrypted);
        let mut s = u.dev.session();
        load(&u, &mut s);
        let released = stream(&mut s, &u.payload, &u.area, 0, CHUNK).unwrap();
        assert_eq!(released, u.image, "encrypted: {encrypted}");
        let approval = s.stream_final(0).unwrap();
        assert_eq!(approval.size, IMAGE_LEN as u64);
        let pending = s.commit(&[approval.token]).unwrap();
        assert_eq!(pending.components[0].size, IMAGE_LEN as u64);
        // The boot record holds the tree's root for dm-verity.
        let record = s.boot_verify(0).unwrap();
        let salt = suit_shared::digest::DigestAlg::Sha256.digest(&u.image);
        let (params, _) = verity::build(&u.image, salt.as_bytes()).unwrap();
        assert_eq!(record.components[0].verity, params);
    }
}

#[test]
fn one_big_chunk_and_odd_chunks_give_the_same_plaintext() {
    let u = update(true);
    for chunk in [BLOCK_SIZE, 3 * BLOCK_SIZE + 7, 200 * 1024] {
        let mut s = u.dev.session();
        load(&u, &mut s);
        let released = stream(&mut s, &u.payload, &u.area, 0, chunk).unwrap();
        assert_eq!(released, u.image, "chunk {chunk}");
        s.stream_final(0).unwrap();
    }
}

#[test]
fn a_tampered_block_stops_the_stream_before_it_is_released() {
    for encrypted in [false, true] {
        let u = update(encrypted);
        let mut s = u.dev.session();
        load(&u, &mut s);
        let mut bad = u.payload.clone();
        bad[100 * BLOCK_SIZE + 5] ^= 1;
        // Everything before the chunk that holds block 100 is released, nothing after.
        let first = 96 * BLOCK_SIZE;
        let released = stream(&mut s, &bad[..first], &u.area, 0, CHUNK).unwrap();
        assert_eq!(released, u.image[..first]);
        let mut feed = HashFeed::new(IMAGE_LEN as u64, first as u64);
        let needs = feed.after((first + CHUNK) as u64);
        let hashes = hash_blocks(&feed, &u.area, &needs);
        expect_rejection(
            s.stream_update(0, first as u64, &hashes, &bad[first..first + CHUNK]),
            Category::Digest,
            "data block 100 does not match",
        );
        // The stream is dropped: no approval, nothing to commit.
        expect_rejection(s.stream_final(0), Category::Policy, "not streaming");
        expect_rejection(s.commit(&[vec![0]]), Category::Policy, "component 0 is not");
    }
}

#[test]
fn a_tampered_hash_block_is_refused() {
    let u = update(false);
    let mut s = u.dev.session();
    load(&u, &mut s);
    let mut area = u.area.clone();
    // The level-0 hash block of blocks 128..255.
    let feed = HashFeed::new(IMAGE_LEN as u64, 0);
    area[feed.area_offset(0, 1) as usize + 40] ^= 1;
    expect_rejection(
        stream(&mut s, &u.payload, &area, 0, CHUNK),
        Category::Digest,
        "hash block 1 of tree level 0 does not match",
    );
    // A forged top block with its own "root" is refused against the manifest's root.
    drop(s);
    let mut s = u.dev.session();
    load(&u, &mut s);
    let mut area = u.area.clone();
    area[0] ^= 1;
    expect_rejection(
        stream(&mut s, &u.payload, &area, 0, CHUNK),
        Category::Digest,
        "hash block 0 of tree level 1",
    );
}

#[test]
fn a_tampered_tag_refuses_the_approval() {
    let u = update(true);
    let mut s = u.dev.session();
    load(&u, &mut s);
    let mut bad = u.payload.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    // The plaintext is authentic (the tree), so it is released; the tag still decides.
    assert_eq!(stream(&mut s, &bad, &u.area, 0, CHUNK).unwrap(), u.image);
    let (c, m) = sim::rejected(s.stream_final(0).unwrap_err());
    assert_eq!(c, Category::Decryption, "{m}");
}

#[test]
fn missing_or_extra_hash_blocks_are_malformed() {
    let u = update(false);
    let mut s = u.dev.session();
    load(&u, &mut s);
    expect_rejection(
        s.stream_update(0, 0, &[], &u.payload[..CHUNK]),
        Category::Malformed,
        "is needed and was not sent",
    );
    let mut feed = HashFeed::new(IMAGE_LEN as u64, 0);
    let needs = feed.after(CHUNK as u64);
    let mut hashes = hash_blocks(&feed, &u.area, &needs);
    hashes.extend_from_slice(&[0; BLOCK_SIZE]);
    expect_rejection(
        s.stream_update(0, 0, &hashes, &u.payload[..CHUNK]),
        Category::Malformed,
        "do not need",
    );
    // An announced prefix longer than the data.
    let mut data = vec![0u8; 16];
    expect_rejection(
        Typed::raw(&mut s, 0, 0, 17, &mut data),
        Category::Policy,
        "17 bytes of hash blocks announced",
    );
}

/// A raw STREAM_UPDATE with any announced hash length.
struct Typed;

impl Typed {
    fn raw(
        s: &mut dyn Tee,
        component: u32,
        offset: u64,
        hashes: u32,
        data: &mut [u8],
    ) -> Result<(), TeeError> {
        let request = suit_shared::abi::Request::StreamUpdate {
            component,
            offset,
            hashes,
        };
        s.call(&request, Some(data)).map(drop)
    }
}

#[test]
fn out_of_order_offsets_are_refused_and_change_nothing() {
    let u = update(true);
    let mut s = u.dev.session();
    load(&u, &mut s);
    let released = stream(&mut s, &u.payload[..2 * CHUNK], &u.area, 0, CHUNK).unwrap();
    assert_eq!(released.len(), 2 * CHUNK);
    // Skipping ahead, or an offset off the block grid, is refused; the stream stays.
    expect_rejection(
        s.stream_update(0, 3 * CHUNK as u64, &[], &u.payload[3 * CHUNK..4 * CHUNK]),
        Category::Policy,
        "resume at offset 131072",
    );
    // The stream goes on where it was.
    let mut feed = HashFeed::new(IMAGE_LEN as u64, 0);
    feed.after(2 * CHUNK as u64);
    let needs = feed.after(3 * CHUNK as u64);
    let hashes = hash_blocks(&feed, &u.area, &needs);
    let (plain, done) = s
        .stream_update(
            0,
            2 * CHUNK as u64,
            &hashes,
            &u.payload[2 * CHUNK..3 * CHUNK],
        )
        .unwrap();
    assert_eq!(plain, u.image[2 * CHUNK..3 * CHUNK]);
    assert!(!done);
    // A fresh stream may not begin off a block boundary.
    let mut s2 = u.dev.session();
    s.abort().unwrap();
    load(&u, &mut s2);
    expect_rejection(
        s2.stream_update(0, 100, &[], &u.payload[100..200]),
        Category::Policy,
        "block boundary",
    );
}

#[test]
fn short_and_long_streams_are_refused() {
    let u = update(false);
    let mut s = u.dev.session();
    load(&u, &mut s);
    // Short: everything but the last partial block.
    let short = &u.payload[..300 * BLOCK_SIZE];
    stream(&mut s, short, &u.area, 0, CHUNK).unwrap();
    expect_rejection(s.stream_final(0), Category::Size, "size");
    // Long: a byte after the image.
    let mut feed = HashFeed::new(IMAGE_LEN as u64, 0);
    feed.after(300 * BLOCK_SIZE as u64);
    let needs = feed.after(IMAGE_LEN as u64);
    let hashes = hash_blocks(&feed, &u.area, &needs);
    let mut tail = u.payload[300 * BLOCK_SIZE..].to_vec();
    tail.push(0);
    expect_rejection(
        s.stream_update(0, 300 * BLOCK_SIZE as u64, &hashes, &tail),
        Category::Size,
        "",
    );
    // The right tail still completes a fresh stream.
    drop(s);
    let mut s = u.dev.session();
    load(&u, &mut s);
    stream(&mut s, &u.payload, &u.area, 0, CHUNK).unwrap();
    s.stream_final(0).unwrap();
}

#[test]
fn a_resumed_stream_in_a_new_session_releases_the_rest() {
    for encrypted in [false, true] {
        let mut u = update(encrypted);
        let mut s = u.dev.session();
        load(&u, &mut s);
        let cut = 123 * BLOCK_SIZE;
        let first = stream(&mut s, &u.payload[..cut + 50], &u.area, 0, CHUNK).unwrap();
        assert_eq!(first, u.image[..cut], "a partial block is held back");
        // Power cut: a new TA instance, a new session, resume at the last written block.
        drop(s);
        u.dev.restart();
        let mut s = u.dev.session();
        load(&u, &mut s);
        let rest = stream(&mut s, &u.payload, &u.area, cut, CHUNK).unwrap();
        assert_eq!(rest, u.image[cut..], "encrypted: {encrypted}");
        let approval = s.stream_final(0).unwrap();
        s.commit(&[approval.token]).unwrap();
    }
}

#[test]
fn a_resumed_stream_still_checks_every_block_it_releases() {
    let u = update(true);
    let mut s = u.dev.session();
    load(&u, &mut s);
    let mut bad = u.payload.clone();
    bad[250 * BLOCK_SIZE] ^= 0x80;
    expect_rejection(
        stream(&mut s, &bad, &u.area, 200 * BLOCK_SIZE, CHUNK),
        Category::Digest,
        "data block 250",
    );
}

#[test]
fn no_stream_after_commit_nor_from_another_session() {
    let u = update(false);
    let mut s = u.dev.session();
    load(&u, &mut s);
    // Another session cannot stream this session's update.
    let mut other = u.dev.session();
    let (c, m) = sim::rejected(
        other
            .stream_update(0, 0, &[], &u.payload[..BLOCK_SIZE])
            .unwrap_err(),
    );
    assert_eq!(c, Category::Policy, "{m}");
    stream(&mut s, &u.payload, &u.area, 0, CHUNK).unwrap();
    let approval = s.stream_final(0).unwrap();
    expect_rejection(
        s.stream_update(0, 0, &[], &u.payload[..BLOCK_SIZE]),
        Category::Policy,
        "already approved",
    );
    s.commit(&[approval.token]).unwrap();
    let (c, m) = sim::rejected(
        s.stream_update(0, 0, &[], &u.payload[..BLOCK_SIZE])
            .unwrap_err(),
    );
    assert_eq!(c, Category::Policy, "{m}");
    let (c, _) = sim::rejected(s.stream_final(0).unwrap_err());
    assert_eq!(c, Category::Policy);
}

#[test]
fn manifests_without_a_root_use_the_staged_path() {
    let dev = Device::new();
    let dir = tempfile::tempdir().unwrap();
    let img = image(5000);
    std::fs::write(dir.path().join("fw.bin"), &img).unwrap();
    let env = envelope_from_spec(
        dir.path(),
        "sequence-number = 2\nvendor = \"example.com\"\nclass = \"qemu-armv8a\"\n\
         [[component]]\nid = [\"fw\"]\nimage = \"fw.bin\"\nuri = \"http://x/fw\"\n",
    );
    let mut s = dev.session();
    let plan = s.load_manifest(&env, 0).unwrap();
    assert_eq!(plan.items[0].verity_root, None);
    expect_rejection(
        s.stream_update(0, 0, &[], &img[..4096]),
        Category::Policy,
        "no dm-verity root",
    );
    let approval = sim::approve(&mut s, 0, &img, 4096);
    s.commit(&[approval.token]).unwrap();
}

#[test]
fn the_output_buffer_must_hold_a_held_back_block() {
    let u = update(false);
    let mut s = u.dev.session();
    load(&u, &mut s);
    stream(&mut s, &u.payload[..CHUNK], &u.area, 0, CHUNK).unwrap();
    // The next chunk needs no new hash block; an output of the chunk + slack is too small
    // for what a chunk may release (a held-back block too).
    let request = suit_shared::abi::Request::StreamUpdate {
        component: 0,
        offset: CHUNK as u64,
        hashes: 0,
    };
    let out = s
        .invoke(
            CommandId::StreamUpdate,
            &request.encode(),
            Some(&u.payload[CHUNK..2 * CHUNK]),
            CommandId::StreamUpdate.response_capacity(),
            Some(CHUNK + suit_shared::abi::DECRYPT_OUTPUT_SLACK),
        )
        .unwrap();
    let reply = suit_shared::abi::decode_response(CommandId::StreamUpdate, &out.response)
        .unwrap()
        .unwrap_err();
    assert_eq!(reply.category, Category::Resource, "{}", reply.message);
    assert!(out.data.is_empty());
}

#[test]
fn whole_max_chunk_payloads_travel_with_their_hash_blocks() {
    // The device's max-chunk is 256 KiB: a chunk of exactly that much payload travels with
    // its hash blocks (the data is larger than max-chunk), a larger payload chunk is refused.
    let u = update(true);
    let mut s = u.dev.session();
    load(&u, &mut s);
    let max = 256 * 1024;
    let mut feed = HashFeed::new(IMAGE_LEN as u64, 0);
    let needs = feed.after(max as u64);
    let hashes = hash_blocks(&feed, &u.area, &needs);
    assert!(hashes.len() + max > max);
    let (plain, _) = s.stream_update(0, 0, &hashes, &u.payload[..max]).unwrap();
    assert_eq!(plain, u.image[..max]);
    let mut feed = HashFeed::new(IMAGE_LEN as u64, max as u64);
    let needs = feed.after((2 * max + BLOCK_SIZE) as u64);
    let hashes = hash_blocks(&feed, &u.area, &needs);
    expect_rejection(
        s.stream_update(
            0,
            max as u64,
            &hashes,
            &u.payload[max..2 * max + BLOCK_SIZE],
        ),
        Category::Resource,
        "a payload chunk",
    );
}
