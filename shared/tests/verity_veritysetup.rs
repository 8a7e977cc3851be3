//! The tree of `suit_shared::verity` against the real `veritysetup` (Debian's cryptsetup-bin:
//! `make test` and `.ci/run` install it): same root and byte-identical hash area for
//! `veritysetup format --no-superblock --hash-offset=<padded image>`, and `veritysetup verify`
//! accepts our slot image and rejects it once a data block is changed.

use std::path::{Path, PathBuf};
use std::process::Command;

use suit_shared::verity::{self, BLOCK_SIZE};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn veritysetup(args: &[&str]) -> std::process::Output {
    let out = Command::new("veritysetup").args(args).output().unwrap_or_else(|e| {
        panic!("cannot run veritysetup ({e}): install Debian's cryptsetup-bin (bash qemu/debian.sh host-tools cryptsetup-bin)")
    });
    out
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("verity-veritysetup");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn image(len: usize, seed: u8) -> Vec<u8> {
    let mut state = u32::from(seed) | 0x1234_5600;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

/// Runs `veritysetup format` on the padded image (tree appended in the same file) and returns the
/// root it printed and the file.
fn format_with_veritysetup(name: &str, padded: &[u8], salt: &[u8]) -> (String, Vec<u8>) {
    let path = scratch(name);
    std::fs::write(&path, padded).unwrap();
    let p = path.to_str().unwrap();
    let out = veritysetup(&[
        "format",
        "--no-superblock",
        "--hash=sha256",
        "--data-block-size=4096",
        "--hash-block-size=4096",
        &format!("--salt={}", hex(salt)),
        &format!("--hash-offset={}", padded.len()),
        p,
        p,
    ]);
    assert!(
        out.status.success(),
        "veritysetup format: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let root = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Root hash:"))
        .map(|r| r.trim().to_string())
        .unwrap_or_else(|| panic!("no root hash in veritysetup's output:\n{stdout}"));
    let written = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    (root, written)
}

fn verify_with_veritysetup(name: &str, slot: &[u8], params: &verity::VerityParams) -> bool {
    let path = scratch(name);
    std::fs::write(&path, slot).unwrap();
    let p = path.to_str().unwrap();
    let out = veritysetup(&[
        "verify",
        "--no-superblock",
        "--hash=sha256",
        "--data-block-size=4096",
        "--hash-block-size=4096",
        &format!("--data-blocks={}", params.data_blocks),
        &format!("--salt={}", hex(&params.salt)),
        &format!("--hash-offset={}", params.hash_offset()),
        p,
        p,
        &hex(&params.root),
    ]);
    std::fs::remove_file(&path).unwrap();
    out.status.success()
}

fn check(len: usize) {
    let data = image(len, len as u8);
    let salt = suit_shared::digest::DigestAlg::Sha256.digest(&data);
    let salt = salt.as_bytes();

    let (params, slot) = verity::slot_image(&data, salt).unwrap();
    let mut streamed = verity::RootHasher::new(salt).unwrap();
    for piece in data.chunks(65_521) {
        streamed.update(piece);
    }
    assert_eq!(
        streamed.finalize().unwrap(),
        params,
        "{len} bytes: streamed root"
    );
    assert_eq!(params.data_blocks, len.div_ceil(BLOCK_SIZE) as u64);

    let padded = &slot[..params.hash_offset() as usize];
    let (root, formatted) = format_with_veritysetup(&format!("format-{len}"), padded, salt);
    assert_eq!(
        root,
        hex(&params.root),
        "{len} bytes: root differs from veritysetup's"
    );
    assert_eq!(
        formatted.len(),
        slot.len(),
        "{len} bytes: hash area size differs from veritysetup's"
    );
    assert!(
        formatted == slot,
        "{len} bytes: hash area differs from veritysetup's"
    );

    assert!(
        verify_with_veritysetup(&format!("verify-{len}"), &slot, &params),
        "{len} bytes: veritysetup verify refused"
    );
    let mut tampered = slot.clone();
    let middle = (params.data_blocks as usize / 2) * BLOCK_SIZE + 100;
    tampered[middle] ^= 0x55;
    assert!(
        !verify_with_veritysetup(&format!("tampered-{len}"), &tampered, &params),
        "{len} bytes: veritysetup verify accepted a changed data block"
    );
}

#[test]
fn one_block() {
    check(BLOCK_SIZE);
}

#[test]
fn short_single_block() {
    check(1000);
}

#[test]
fn one_full_hash_block() {
    check(128 * BLOCK_SIZE);
}

#[test]
fn two_levels() {
    check(129 * BLOCK_SIZE);
}

#[test]
fn three_levels_not_a_block_multiple() {
    check((128 * 128) * BLOCK_SIZE + 1);
}

#[test]
fn odd_size_two_levels() {
    check(300 * BLOCK_SIZE + 4095);
}
