//! Verified boot on the agent's side: the dm-verity hash tree written after each approved image
//! in its slot (`[image, zero-padded to 4096][hash tree]`, see `suit_shared::verity`), and the
//! dm-verity table the boot stage sets up from the TA's BOOT_VERIFY answer.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use suit_shared::abi::PlanItem;
use suit_shared::digest::DigestValue;
use suit_shared::verity::{TreeBuilder, VerityParams, BLOCK_SIZE};

/// The dm-verity salt of a plan item: the image digest its manifest declares (empty when it
/// declares none), exactly what the TA uses.
pub fn salt_of(item: &PlanItem) -> &[u8] {
    item.digest.as_ref().map_or(&[][..], DigestValue::as_bytes)
}

/// Reads the first `size` bytes of `slot` (the approved image just written), builds their
/// tree and writes zero padding and the tree after them; syncs. Returns the tree's parameters.
pub fn write_tree(slot: &Path, size: u64, salt: &[u8]) -> io::Result<VerityParams> {
    let mut builder = TreeBuilder::new(salt).map_err(io::Error::other)?;
    let mut f = File::open(slot)?.take(size);
    let mut buf = vec![0u8; 256 * 1024];
    let mut read = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        builder.update(&buf[..n]);
        read += n as u64;
    }
    if read != size {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the slot holds {read} bytes, the image has {size}"),
        ));
    }
    let (params, tree) = builder.finalize().map_err(io::Error::other)?;
    let mut out = OpenOptions::new().write(true).open(slot)?;
    out.seek(SeekFrom::Start(size))?;
    let padding = usize::try_from(params.hash_offset() - size).unwrap_or(0);
    out.write_all(&vec![0u8; padding])?;
    out.write_all(&tree)?;
    out.sync_all()?;
    Ok(params)
}

/// Writes zero padding after the image's `size` bytes and then `area`, the hash area of its
/// tree (one-pass install: the tree the TA checked the image against); syncs.
pub fn write_area(slot: &File, size: u64, area: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let offset = suit_shared::verity::padded_len(size);
    let padding = usize::try_from(offset - size).unwrap_or(0);
    slot.write_all_at(&vec![0u8; padding], size)?;
    slot.write_all_at(area, offset)?;
    slot.sync_all()
}

/// The `dmsetup create --table` line mapping `device` (data and hash tree on the same device)
/// with the TA's parameters.
pub fn dm_table(params: &VerityParams, device: &Path) -> String {
    let hex = |b: &[u8]| -> String { b.iter().map(|x| format!("{x:02x}")).collect() };
    let salt = if params.salt.is_empty() {
        "-".to_string()
    } else {
        hex(&params.salt)
    };
    let blocks = params.data_blocks;
    format!(
        "0 {sectors} verity 1 {dev} {dev} {bs} {bs} {blocks} {blocks} sha256 {root} {salt}",
        sectors = blocks.saturating_mul(BLOCK_SIZE as u64 / 512),
        dev = device.display(),
        bs = BLOCK_SIZE,
        root = hex(&params.root),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_after_the_image_and_table() {
        let dir = tempfile::tempdir().unwrap();
        let slot = dir.path().join("slot");
        let image: Vec<u8> = (0..(129 * 4096 + 5)).map(|i| (i % 251) as u8).collect();
        // the slot holds the image and old bytes after it
        let mut content = image.clone();
        content.extend_from_slice(&[0xee; 9000]);
        std::fs::write(&slot, &content).unwrap();
        let params = write_tree(&slot, image.len() as u64, &[7; 32]).unwrap();
        let (want, slot_image) = suit_shared::verity::slot_image(&image, &[7; 32]).unwrap();
        assert_eq!(params, want);
        assert_eq!(
            std::fs::read(&slot).unwrap()[..slot_image.len()],
            slot_image[..]
        );
        let table = dm_table(&params, Path::new("/dev/vdb"));
        assert!(
            table.starts_with("0 1040 verity 1 /dev/vdb /dev/vdb 4096 4096 130 130 sha256 "),
            "{table}"
        );
        assert!(table.ends_with(&"07".repeat(32)), "{table}");
        let unsalted = VerityParams {
            salt: Vec::new(),
            ..params
        };
        assert!(dm_table(&unsalted, Path::new("/x")).ends_with(" -"));
    }

    #[test]
    fn a_short_slot_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let slot = dir.path().join("slot");
        std::fs::write(&slot, [1u8; 100]).unwrap();
        assert!(write_tree(&slot, 200, &[]).is_err());
    }
}
