//! `suit-tool verity` and `create --slot-dir`: the dm-verity tree of an image and the slot image
//! the boot stage mounts (`[image, zero-padded to 4096][hash area]`, see `suit_shared::verity`).
//!
//! The salt is the image digest the SUIT manifest declares (SHA-256 of the image for a sha-256
//! manifest), so the TA, which sees that digest before the payload streams, derives the same root.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::json;
use suit_shared::digest::{DigestAlg, DigestValue};
use suit_shared::verity::{self, TreeBuilder, VerityParams};

use super::{digest_file, hex, ToolError};
use crate::common::decode_hex;

/// Digest algorithms whose image digest can serve as the salt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SaltDigest {
    /// SHA-256 of the image (manifests with digest = "sha-256").
    #[value(name = "sha-256")]
    Sha256,
    /// SHA-384 of the image (manifests with digest = "sha-384").
    #[value(name = "sha-384")]
    Sha384,
}

/// Arguments of `suit-tool verity`.
#[derive(Debug, clap::Args)]
pub struct VerityArgs {
    /// The plaintext image (what the manifest's image digest covers).
    #[arg(long, value_name = "FILE")]
    image: PathBuf,
    /// The manifest's digest algorithm: the salt is the image's digest with it.
    #[arg(long, value_enum, default_value = "sha-256", conflicts_with = "salt")]
    digest: SaltDigest,
    /// An explicit salt (hex) instead of the image digest.
    #[arg(long, value_name = "HEX")]
    salt: Option<String>,
    /// Write the hash area (no superblock) to FILE.
    #[arg(long, value_name = "FILE")]
    out_tree: Option<PathBuf>,
    /// Write the slot image (image, zero padding, hash area) to FILE.
    #[arg(long, value_name = "FILE")]
    out_slot: Option<PathBuf>,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

/// `suit-tool verity`.
pub fn run(args: VerityArgs) -> Result<(), ToolError> {
    let salt = match &args.salt {
        Some(text) => decode_hex(text)
            .ok_or_else(|| ToolError::Usage(format!("--salt {text:?} is not hexadecimal")))?,
        None => {
            let alg = match args.digest {
                SaltDigest::Sha256 => DigestAlg::Sha256,
                SaltDigest::Sha384 => DigestAlg::Sha384,
            };
            digest_file(&args.image, alg)?.0.as_bytes().to_vec()
        }
    };
    let (params, tree, size) = tree_of(&args.image, &salt)?;
    if let Some(out) = &args.out_tree {
        std::fs::write(out, &tree).map_err(|e| ToolError::io(out, e))?;
    }
    if let Some(out) = &args.out_slot {
        write_slot(&args.image, size, &params, &tree, out)?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&describe(&params, size)).unwrap_or_default()
        );
    } else {
        println!("root hash:   {}", hex(&params.root));
        println!("salt:        {}", hex(&params.salt));
        println!(
            "data blocks: {} (4096 bytes; image {size} bytes)",
            params.data_blocks
        );
        println!(
            "hash offset: {} bytes ({} bytes of hash tree, no superblock)",
            params.hash_offset(),
            params.hash_area_len()
        );
    }
    Ok(())
}

/// The JSON description of a tree.
fn describe(params: &VerityParams, image_size: u64) -> serde_json::Value {
    json!({
        "root-hash": hex(&params.root),
        "salt": hex(&params.salt),
        "hash": "sha256",
        "format": 1,
        "data-block-size": verity::BLOCK_SIZE,
        "hash-block-size": verity::BLOCK_SIZE,
        "data-blocks": params.data_blocks,
        "image-size": image_size,
        "hash-offset": params.hash_offset(),
        "hash-size": params.hash_area_len(),
        "slot-size": params.hash_offset() + params.hash_area_len(),
    })
}

/// Reads `image` in chunks and builds its tree; returns the parameters, the hash area and the
/// image size.
fn tree_of(image: &Path, salt: &[u8]) -> Result<(VerityParams, Vec<u8>, u64), ToolError> {
    let mut builder = TreeBuilder::new(salt)
        .map_err(|e| ToolError::Usage(format!("{}: {e}", image.display())))?;
    let mut f = File::open(image).map_err(|e| ToolError::io(image, e))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| ToolError::io(image, e))?;
        if n == 0 {
            break;
        }
        builder.update(&buf[..n]);
        size += n as u64;
    }
    let (params, tree) = builder
        .finalize()
        .map_err(|e| ToolError::Usage(format!("{}: {e}", image.display())))?;
    Ok((params, tree, size))
}

/// Writes the slot image: the image, zeros up to the hash offset, the hash area.
fn write_slot(
    image: &Path,
    size: u64,
    params: &VerityParams,
    tree: &[u8],
    out: &Path,
) -> Result<(), ToolError> {
    let io = |e| ToolError::io(out, e);
    let mut w = BufWriter::new(File::create(out).map_err(io)?);
    let mut f = File::open(image).map_err(|e| ToolError::io(image, e))?;
    let copied = std::io::copy(&mut f, &mut w).map_err(io)?;
    if copied != size {
        return Err(ToolError::Usage(format!(
            "{} changed while it was read ({size} then {copied} bytes)",
            image.display()
        )));
    }
    let padding = usize::try_from(params.hash_offset() - size).unwrap_or(0);
    w.write_all(&vec![0u8; padding]).map_err(io)?;
    w.write_all(tree).map_err(io)?;
    w.into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)
}

/// `create` for a streaming component: builds the tree of `image` salted with `digest`, writes
/// its hash area (levels top first, as in the slot) to `out` and returns the root.
pub fn write_tree(
    image: &Path,
    digest: &DigestValue,
    out: &Path,
) -> Result<[u8; suit_shared::verity::DIGEST_LEN], ToolError> {
    let (params, tree, _) = tree_of(image, digest.as_bytes())?;
    std::fs::write(out, &tree).map_err(|e| ToolError::io(out, e))?;
    println!(
        "wrote dm-verity tree {} ({} bytes; root hash {})",
        out.display(),
        tree.len(),
        hex(&params.root)
    );
    Ok(params.root)
}

/// `create --slot-dir DIR`: the slot image of every plaintext image of the manifest, salted
/// with the digest the manifest declares for it, as DIR/<image file name>.slot.
pub fn write_slot_images<'a>(
    dir: &Path,
    images: impl Iterator<Item = (&'a Path, &'a DigestValue)>,
) -> Result<(), ToolError> {
    std::fs::create_dir_all(dir).map_err(|e| ToolError::io(dir, e))?;
    let mut done: Vec<&Path> = Vec::new();
    for (image, digest) in images {
        if done.contains(&image) {
            continue;
        }
        done.push(image);
        let mut name = image.file_name().unwrap_or(image.as_os_str()).to_owned();
        name.push(".slot");
        let out = dir.join(name);
        let (params, tree, size) = tree_of(image, digest.as_bytes())?;
        write_slot(image, size, &params, &tree, &out)?;
        println!(
            "wrote slot image {} ({} bytes: image {size}, hash tree at {}; root hash {})",
            out.display(),
            params.hash_offset() + params.hash_area_len(),
            params.hash_offset(),
            hex(&params.root)
        );
    }
    Ok(())
}
