//! `suit-tool create`: a TOML spec becomes a SUIT manifest following the draft's templates
//! (§7): compatibility check, download + install, secure-boot validate, and the A/B template
//! (try-each over component-slot).
//!
//! ```toml
//! sequence-number = 2
//! vendor = "example.com"            # or vendor-id = "<uuid>"
//! class = "gateway-rev-b"           # or class-id = "<uuid>"
//! digest = "sha-256"                # or "sha-384"
//! sever = ["text"]                  # severable elements to move out of the manifest
//! [text]
//! description = "Gateway firmware 2.0"
//! [[component]]
//! id = ["rootfs"]                   # text parts; "0x00ff" for raw bytes
//! image = "rootfs-v2.img"           # relative to the spec file
//! uri = "https://updates.example.com/rootfs-v2.img"   # or integrated = true
//! [[component.slot]]                # optional A/B: one entry per slot it may go to
//! slot = 0
//! [[component.slot]]
//! slot = 1
//! [[component]]
//! id = ["app"]
//! image = "app-v2.bin"              # the plaintext; create writes its ciphertext
//! uri = "https://updates.example.com/app-v2.bin.enc"  # serves the ciphertext
//! [component.encryption]            # draft-ietf-suit-firmware-encryption
//! recipient = "device.pub.pem"      # SPKI PEM, P-384 or P-256: ECDH-ES + AES key wrap
//! # kek = "fleet.kek"               # or a 16/32-byte KEK file: A128KW / A256KW
//! content-alg = "A256GCM"           # or "A128GCM"
//! kid = "device-0042"               # optional key id for the recipient
//! ciphertext = "app-v2.bin.enc"     # where to write it (default: the image name + ".enc")
//! ```
//!
//! An encrypted component gets a fresh random content key and IV (never reused) and follows the
//! draft's two-component form: a cache component (a sibling of the component: its id with
//! ".ciphertext" appended to the last part, listed after all spec components) fetches the ciphertext and checks its digest
//! *before* anything is decrypted; then copy with encryption-info decrypts it into the
//! component, whose plaintext digest is checked by image-match at install and validate. With
//! AES-GCM the tag also authenticates the payload; the digests bind it to the signed manifest.
//! Encryption with A/B slots is not supported yet.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use suit_shared::component::ComponentId;
use suit_shared::digest::{DigestAlg, DigestValue};
use suit_shared::error::Uuid;

use super::crypt::{encrypt_file, load_kek, load_recipient_public, ContentAlgName, EncryptFor};
use super::{digest_file, ToolError};
/// Identity helpers, kept here for the tool's library users.
pub use crate::common::{class_uuid, vendor_uuid};
use crate::common::{decode_hex, parse_uuid};

mod manifest;

/// The spec file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Spec {
    sequence_number: u64,
    #[serde(default)]
    digest: DigestName,
    vendor: Option<String>,
    vendor_id: Option<String>,
    class: Option<String>,
    class_id: Option<String>,
    reference_uri: Option<String>,
    #[serde(default)]
    sever: Vec<SeverableName>,
    text: Option<ManifestText>,
    /// condition-minimum-battery in the install sequence, with this charge in mWh.
    minimum_battery: Option<u64>,
    /// condition-update-authorized in the install sequence.
    #[serde(default)]
    update_authorized: bool,
    #[serde(rename = "component")]
    components: Vec<ComponentSpec>,
}

#[derive(Debug, Deserialize, Default, Clone, Copy)]
enum DigestName {
    #[default]
    #[serde(rename = "sha-256")]
    Sha256,
    #[serde(rename = "sha-384")]
    Sha384,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum SeverableName {
    Install,
    PayloadFetch,
    Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ManifestText {
    description: Option<String>,
    update_description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ComponentSpec {
    id: Vec<String>,
    image: Option<PathBuf>,
    uri: Option<String>,
    #[serde(default)]
    integrated: bool,
    #[serde(default, rename = "slot")]
    slots: Vec<SlotSpec>,
    description: Option<String>,
    version: Option<String>,
    vendor_name: Option<String>,
    model_name: Option<String>,
    encryption: Option<EncryptionSpec>,
    /// Bind the dm-verity root of the image (parameter verity-root, docs/streaming.md) and
    /// write the tree beside the fetched payload as `<payload>.verity`.
    #[serde(default)]
    streaming: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct EncryptionSpec {
    recipient: Option<PathBuf>,
    kek: Option<PathBuf>,
    #[serde(default)]
    content_alg: ContentAlgName,
    kid: Option<String>,
    ciphertext: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct SlotSpec {
    slot: u64,
    image: Option<PathBuf>,
    uri: Option<String>,
}

/// One payload variant of a component (one per slot for A/B components).
struct Variant {
    slot: Option<u64>,
    /// The plaintext image file.
    image: PathBuf,
    /// Digest and size of the plaintext image.
    digest: DigestValue,
    size: u64,
    /// Where the payload (the ciphertext, when encrypted) is fetched from.
    uri: String,
    integrated: Option<(String, PathBuf)>,
    encrypted: Option<EncryptedPayload>,
    /// dm-verity root of the plaintext, when the component streams.
    verity_root: Option<[u8; suit_shared::verity::DIGEST_LEN]>,
}

/// The ciphertext `create` wrote for an encrypted variant.
struct EncryptedPayload {
    info: Vec<u8>,
    path: PathBuf,
    digest: DigestValue,
    size: u64,
}

/// Appended to the last id part of an encrypted component to name the cache component that
/// holds its ciphertext: a sibling (`["fw"]` → `["fw.ciphertext"]`), not a child, so that an
/// implementation mapping ids to paths (libcsuit) can hold both.
const CIPHERTEXT_ID_SUFFIX: &[u8] = b".ciphertext";

struct PreparedComponent {
    id: ComponentId,
    /// Id of the cache component for its ciphertext, if encrypted.
    cache_id: ComponentId,
    variants: Vec<Variant>,
    text: Vec<(i64, String)>,
}

/// A spec with its files read, digests computed, identifiers resolved.
pub struct Prepared {
    sequence_number: u64,
    digest_alg: DigestAlg,
    vendor: Uuid,
    class: Uuid,
    reference_uri: Option<String>,
    sever: Vec<SeverableName>,
    text: Vec<(i64, String)>,
    minimum_battery: Option<u64>,
    update_authorized: bool,
    components: Vec<PreparedComponent>,
}

impl Spec {
    /// Reads a spec file.
    pub fn load(path: &Path) -> Result<Spec, ToolError> {
        let text = std::fs::read_to_string(path).map_err(|e| ToolError::io(path, e))?;
        toml::from_str(&text).map_err(|e| ToolError::Usage(format!("{}: {e}", path.display())))
    }

    /// Resolves identifiers and computes image digests (streaming) relative to `base`.
    pub fn prepare(self, base: &Path) -> Result<Prepared, ToolError> {
        let digest_alg = match self.digest {
            DigestName::Sha256 => DigestAlg::Sha256,
            DigestName::Sha384 => DigestAlg::Sha384,
        };
        let vendor = match (&self.vendor, &self.vendor_id) {
            (Some(name), None) => vendor_uuid(name),
            (None, Some(id)) => parse_uuid(id)?,
            _ => {
                return Err(ToolError::Usage(
                    "the spec needs exactly one of vendor or vendor-id".into(),
                ))
            }
        };
        let class = match (&self.class, &self.class_id) {
            (Some(name), None) => class_uuid(vendor, name),
            (None, Some(id)) => parse_uuid(id)?,
            _ => {
                return Err(ToolError::Usage(
                    "the spec needs exactly one of class or class-id".into(),
                ))
            }
        };
        if self.components.is_empty() {
            return Err(ToolError::Usage(
                "the spec needs at least one [[component]]".into(),
            ));
        }
        let mut components: Vec<PreparedComponent> = Vec::new();
        for (i, c) in self.components.into_iter().enumerate() {
            components.push(prepare_component(i, c, base, digest_alg)?);
        }
        let encrypted = components.iter().filter(|c| c.encrypted().is_some());
        for cache in encrypted {
            if components.iter().any(|c| c.id == cache.cache_id) {
                return Err(ToolError::Usage(format!(
                    "component id {} is taken: it names the ciphertext of the encrypted \
                     component {}",
                    cache.cache_id, cache.id
                )));
            }
        }
        let mut text = Vec::new();
        if let Some(t) = self.text {
            text.extend(t.description.map(|d| (1, d)));
            text.extend(t.update_description.map(|d| (2, d)));
        }
        Ok(Prepared {
            sequence_number: self.sequence_number,
            digest_alg,
            vendor,
            class,
            reference_uri: self.reference_uri,
            sever: self.sever,
            text,
            minimum_battery: self.minimum_battery,
            update_authorized: self.update_authorized,
            components,
        })
    }
}

fn component_part(text: &str) -> Result<Vec<u8>, ToolError> {
    match text.strip_prefix("0x") {
        Some(hex) => decode_hex(hex)
            .ok_or_else(|| ToolError::Usage(format!("invalid hex component id part {text:?}"))),
        None => Ok(text.as_bytes().to_vec()),
    }
}

fn prepare_component(
    index: usize,
    c: ComponentSpec,
    base: &Path,
    alg: DigestAlg,
) -> Result<PreparedComponent, ToolError> {
    let id =
        c.id.iter()
            .map(|p| component_part(p))
            .collect::<Result<Vec<_>, _>>()?;
    if c.encryption.is_some() && !c.slots.is_empty() {
        return Err(ToolError::Usage(format!(
            "component {index}: encryption with A/B slots is not supported yet"
        )));
    }
    let variant = |slot: Option<u64>,
                   image: Option<&PathBuf>,
                   uri: Option<&String>|
     -> Result<Variant, ToolError> {
        let image =
            image.ok_or_else(|| ToolError::Usage(format!("component {index} needs an image")))?;
        let path = base.join(image);
        let (digest, size, encrypted) = match &c.encryption {
            None => {
                let (digest, size) = digest_file(&path, alg)?;
                (digest, size, None)
            }
            Some(e) => {
                let encrypted = encrypt_payload(index, e, &path, base, alg)?;
                (encrypted.0, encrypted.1, Some(encrypted.2))
            }
        };
        // What is fetched (or integrated) is the ciphertext when the component is encrypted.
        let payload = encrypted
            .as_ref()
            .map_or(image.as_path(), |e| e.path.as_path());
        let verity_root = if c.streaming {
            if c.integrated {
                return Err(ToolError::Usage(format!(
                    "component {index}: streaming needs a uri (an integrated payload is in the \
                     envelope already)"
                )));
            }
            let mut tree_path = base.join(payload).into_os_string();
            tree_path.push(".verity");
            Some(super::verity::write_tree(
                &path,
                &digest,
                std::path::Path::new(&tree_path),
            )?)
        } else {
            None
        };
        let (uri, integrated) = match (uri, c.integrated) {
            (Some(u), false) => (u.clone(), None),
            (None, true) => {
                let name = payload
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let key = format!(
                    "#{}",
                    if let Some(s) = slot {
                        format!("{name}.slot{s}")
                    } else {
                        name
                    }
                );
                (key.clone(), Some((key, base.join(payload))))
            }
            _ => {
                return Err(ToolError::Usage(format!(
                    "component {index} needs exactly one of uri or integrated = true"
                )))
            }
        };
        Ok(Variant {
            slot,
            image: path,
            digest,
            size,
            uri,
            integrated,
            encrypted,
            verity_root,
        })
    };
    let variants = if c.slots.is_empty() {
        vec![variant(None, c.image.as_ref(), c.uri.as_ref())?]
    } else {
        let mut v = Vec::new();
        for s in &c.slots {
            v.push(variant(
                Some(s.slot),
                s.image.as_ref().or(c.image.as_ref()),
                s.uri.as_ref().or(c.uri.as_ref()),
            )?);
        }
        v
    };
    let mut text = Vec::new();
    text.extend(c.vendor_name.map(|t| (1, t)));
    text.extend(c.model_name.map(|t| (2, t)));
    text.extend(c.description.map(|t| (5, t)));
    text.extend(c.version.map(|t| (6, t)));
    let mut cache_id = id.clone();
    match cache_id.last_mut() {
        Some(last) => last.extend_from_slice(CIPHERTEXT_ID_SUFFIX),
        None => cache_id.push(CIPHERTEXT_ID_SUFFIX.to_vec()),
    }
    Ok(PreparedComponent {
        id: ComponentId::from(id),
        cache_id: ComponentId::from(cache_id),
        variants,
        text,
    })
}

/// Encrypts a component's image with a fresh content key and IV; returns the plaintext's
/// digest and size and the ciphertext written.
fn encrypt_payload(
    index: usize,
    spec: &EncryptionSpec,
    image: &Path,
    base: &Path,
    alg: DigestAlg,
) -> Result<(DigestValue, u64, EncryptedPayload), ToolError> {
    let to = match (&spec.recipient, &spec.kek) {
        (Some(p), None) => EncryptFor::Device(load_recipient_public(&base.join(p))?),
        (None, Some(p)) => EncryptFor::Kek(load_kek(&base.join(p))?),
        _ => {
            return Err(ToolError::Usage(format!(
                "component {index}: [component.encryption] needs exactly one of recipient or kek"
            )))
        }
    };
    let path = match &spec.ciphertext {
        Some(p) => base.join(p),
        None => {
            let mut name = image.as_os_str().to_owned();
            name.push(".enc");
            PathBuf::from(name)
        }
    };
    let encrypted = encrypt_file(
        image,
        &path,
        &to,
        spec.kid.as_deref().map(str::as_bytes),
        spec.content_alg.alg(),
        alg,
    )?;
    Ok((
        encrypted.plaintext.digest,
        encrypted.plaintext.size,
        EncryptedPayload {
            info: encrypted.info,
            path,
            digest: encrypted.ciphertext.digest,
            size: encrypted.ciphertext.size,
        },
    ))
}

impl PreparedComponent {
    /// The payload of an encrypted component (single variant: no A/B with encryption).
    fn encrypted(&self) -> Option<(&Variant, &EncryptedPayload)> {
        match self.variants.as_slice() {
            [v] => v.encrypted.as_ref().map(|e| (v, e)),
            _ => None,
        }
    }
}
