//! The simulated device behind `suit-tool process`: components are files or bytes in memory,
//! digests are computed by streaming, so memory does not grow with image size.
//!
//! Write and copy with encryption-info decrypt by streaming into a scratch file while the
//! plaintext's digest is computed on the way; the component changes only once the payload is
//! complete and authentic (AES-GCM tag, or for AES-CTR the manifest's image digest), so a
//! failed decryption leaves every component as it was.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use subtle::ConstantTimeEq;
use suit_shared::abi::DeviceFacts;
use suit_shared::digest::{DigestAlg, DigestValue, Hasher, SuitDigest};
use suit_shared::encryption::{unwrap_cek, Decryptor, EncryptionInfo, RecipientKey};
use suit_shared::params::ComponentParams;
use suit_shared::processor::{ComponentRef, DeviceIdentity, FetchSource, ImageCheck, Platform};
use suit_shared::{Error, Result};

use super::crypt::{decrypt_stream, ScratchFile};

/// Read size for streaming digests.
const CHUNK: usize = 256 * 1024;

/// What a component currently holds.
#[derive(Debug, Clone)]
enum Content {
    /// Nothing yet.
    Empty,
    /// A file on the host.
    File(PathBuf),
    /// Bytes (integrated payloads, written content).
    Bytes(Vec<u8>),
}

/// A device simulated on the host.
pub struct SimulatedDevice {
    identity: DeviceIdentity,
    slot: u64,
    images: BTreeMap<usize, PathBuf>,
    contents: BTreeMap<usize, Content>,
    /// Digests already computed for unchanged contents (install and validate both check).
    digests: BTreeMap<(usize, DigestAlg), (DigestValue, u64)>,
    /// Keys that open encrypted payloads.
    keys: Vec<RecipientKey>,
    /// Decrypted contents, removed with the device.
    scratch_files: Vec<PathBuf>,
    /// Battery and authorization, as an agent would report them to the TA.
    facts: DeviceFacts,
}

impl SimulatedDevice {
    /// A device with the given identity; every component occupies `slot`; `images` gives the
    /// current content of components, which is also what a fetch for them retrieves.
    pub fn new(identity: DeviceIdentity, slot: u64, images: BTreeMap<usize, PathBuf>) -> Self {
        let contents = images
            .iter()
            .map(|(i, p)| (*i, Content::File(p.clone())))
            .collect();
        SimulatedDevice {
            identity,
            slot,
            images,
            contents,
            digests: BTreeMap::new(),
            keys: Vec::new(),
            scratch_files: Vec::new(),
            facts: DeviceFacts::default(),
        }
    }

    /// The device with `facts` for minimum-battery and update-authorized (default: no
    /// battery, authorised).
    pub fn with_facts(mut self, facts: DeviceFacts) -> Self {
        self.facts = facts;
        self
    }

    /// The device with `keys` to decrypt payloads (KEKs, ECDH private keys).
    pub fn with_decryption_keys(mut self, keys: Vec<RecipientKey>) -> Self {
        self.keys = keys;
        self
    }

    /// Writes the current content of component `index` to `to`.
    pub fn export(&self, index: usize, to: &Path) -> Result<()> {
        let io = |e: std::io::Error| Error::Io(format!("{}: {e}", to.display()));
        match self.content(index) {
            Content::Empty => Err(Error::Io(format!("component {index} has no content"))),
            Content::Bytes(b) => std::fs::write(to, b).map_err(io),
            Content::File(path) => std::fs::copy(path, to).map(drop).map_err(io),
        }
    }

    fn set(&mut self, index: usize, content: Content) {
        self.digests.retain(|(i, _), _| *i != index);
        self.contents.insert(index, content);
    }

    fn content(&self, index: usize) -> Content {
        self.contents.get(&index).cloned().unwrap_or(Content::Empty)
    }

    /// Streams a component's content through `sink`; returns its size.
    fn stream(&self, index: usize, mut sink: impl FnMut(&[u8])) -> Result<u64> {
        match self.content(index) {
            Content::Empty => Err(Error::Io(format!(
                "component {index} has no content: give its current image with --image {index}=FILE"
            ))),
            Content::Bytes(b) => {
                sink(&b);
                Ok(b.len() as u64)
            }
            Content::File(path) => {
                let io = |e: std::io::Error| Error::Io(format!("{}: {e}", path.display()));
                let mut f = File::open(&path).map_err(io)?;
                let mut buf = vec![0u8; CHUNK];
                let mut total = 0u64;
                loop {
                    let n = f.read(&mut buf).map_err(io)?;
                    if n == 0 {
                        return Ok(total);
                    }
                    sink(&buf[..n]);
                    total += n as u64;
                }
            }
        }
    }

    /// Decrypts `ciphertext` into component `c` (write/copy with encryption-info).
    fn decrypt_into(
        &mut self,
        c: ComponentRef<'_>,
        info: &[u8],
        ciphertext: &mut dyn Read,
        params: &ComponentParams<'_>,
    ) -> Result<()> {
        let info = EncryptionInfo::decode(info)?;
        if !info.content_alg.is_aead() && params.image_digest.is_none() {
            return Err(Error::UnauthenticatedEncryptionWithoutDigest { component: c.index });
        }
        let decryptor = Decryptor::new(&info, unwrap_cek(&info, &self.keys)?)?;
        let alg = params
            .image_digest
            .map(|d| d.alg)
            .unwrap_or(DigestAlg::Sha256);
        let io =
            |e: std::io::Error| Error::Io(format!("scratch file for component {}: {e}", c.index));
        let mut scratch = ScratchFile::new_in(&std::env::temp_dir()).map_err(io)?;
        let mut hasher = Hasher::new(alg);
        let size = decrypt_stream(
            decryptor,
            ciphertext,
            scratch.file().map_err(io)?,
            &mut |plain| hasher.update(plain),
        )?;
        let digest = hasher.finalize();
        // AES-CTR has no tag: the image digest is its only integrity check, made before the
        // component changes.
        if let (false, Some(expected)) = (info.content_alg.is_aead(), params.image_digest) {
            if !expected.matches(&digest) {
                return Err(Error::ImageDigestMismatch { component: c.index });
            }
        }
        let path = scratch.keep().map_err(io)?;
        self.scratch_files.push(path.clone());
        self.set(c.index, Content::File(path));
        self.digests.insert((c.index, alg), (digest, size));
        Ok(())
    }
}

impl Drop for SimulatedDevice {
    fn drop(&mut self) {
        for path in &self.scratch_files {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Platform for SimulatedDevice {
    fn identity(&self) -> &DeviceIdentity {
        &self.identity
    }

    fn component_slot(&self, _component: ComponentRef<'_>) -> Option<u64> {
        Some(self.slot)
    }

    fn check_image(
        &mut self,
        c: ComponentRef<'_>,
        digest: &SuitDigest<'_>,
        size: Option<u64>,
    ) -> Result<ImageCheck> {
        let key = (c.index, digest.alg);
        let (value, actual) = match self.digests.get(&key) {
            Some(known) => known.clone(),
            None => {
                let mut hasher = Hasher::new(digest.alg);
                let size = self.stream(c.index, |chunk| hasher.update(chunk))?;
                let known = (hasher.finalize(), size);
                self.digests.insert(key, known.clone());
                known
            }
        };
        if let Some(expected) = size {
            if expected != actual {
                return Ok(ImageCheck::SizeMismatch { actual });
            }
        }
        Ok(if digest.matches(&value) {
            ImageCheck::Match
        } else {
            ImageCheck::DigestMismatch
        })
    }

    fn check_content(&mut self, c: ComponentRef<'_>, expected: &[u8]) -> Result<bool> {
        let mut actual = Vec::new();
        let limit = expected.len() as u64;
        let size = self.stream(c.index, |chunk| {
            if (actual.len() as u64) <= limit {
                actual.extend_from_slice(chunk);
            }
        })?;
        Ok(size == limit && bool::from(actual.as_slice().ct_eq(expected)))
    }

    fn fetch(
        &mut self,
        c: ComponentRef<'_>,
        source: FetchSource<'_>,
        _params: &ComponentParams<'_>,
    ) -> Result<()> {
        let content = match source {
            FetchSource::Integrated { data, .. } => Content::Bytes(data.to_vec()),
            FetchSource::Uri(uri) => match self.images.get(&c.index) {
                Some(path) => Content::File(path.clone()),
                None => {
                    return Err(Error::Io(format!(
                    "component {} fetches {uri}: give the file it retrieves with --image {}=FILE",
                    c.index, c.index
                )))
                }
            },
        };
        self.set(c.index, content);
        Ok(())
    }

    fn write(&mut self, c: ComponentRef<'_>, params: &ComponentParams<'_>) -> Result<()> {
        let content = params.content.unwrap_or_default();
        if let Some(info) = params.encryption_info {
            return self.decrypt_into(c, info, &mut &content[..], params);
        }
        self.set(c.index, Content::Bytes(content.to_vec()));
        Ok(())
    }

    fn copy(
        &mut self,
        c: ComponentRef<'_>,
        source: ComponentRef<'_>,
        params: &ComponentParams<'_>,
    ) -> Result<()> {
        let content = self.content(source.index);
        let Some(info) = params.encryption_info else {
            self.set(c.index, content);
            return Ok(());
        };
        match content {
            Content::Empty => Err(Error::Io(format!(
                "copy from component {} into {}: the source has no content",
                source.index, c.index
            ))),
            Content::Bytes(bytes) => self.decrypt_into(c, info, &mut bytes.as_slice(), params),
            Content::File(path) => {
                let mut f =
                    File::open(&path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
                self.decrypt_into(c, info, &mut f, params)
            }
        }
    }

    fn swap(
        &mut self,
        c: ComponentRef<'_>,
        other: ComponentRef<'_>,
        _params: &ComponentParams<'_>,
    ) -> Result<()> {
        let a = self.content(c.index);
        let b = self.content(other.index);
        self.set(c.index, b);
        self.set(other.index, a);
        Ok(())
    }

    fn invoke(&mut self, _c: ComponentRef<'_>, _params: &ComponentParams<'_>) -> Result<()> {
        // A simulated device has nothing to run; invocation succeeds.
        Ok(())
    }

    fn unlink(&mut self, c: ComponentRef<'_>) -> Result<()> {
        self.set(c.index, Content::Empty);
        Ok(())
    }

    fn wait(&mut self, _c: ComponentRef<'_>, _params: &ComponentParams<'_>) -> Result<()> {
        // Every awaited event (power, network, authorisation, time) counts as present.
        Ok(())
    }

    fn battery_mwh(&self) -> Option<u64> {
        self.facts.battery_mwh
    }

    fn update_authorized(&mut self, _c: ComponentRef<'_>, _priority: Option<i64>) -> bool {
        self.facts.authorized
    }

    fn now(&self) -> Option<u64> {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs())
    }
}
