//! Payload encryption on the host: `suit-tool encrypt` / `decrypt`, the key files they read,
//! and the streaming helpers that `create` and the simulated device share. Payloads move in
//! chunks of [`CHUNK`] bytes: memory does not grow with payload size.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use p256::pkcs8::{DecodePrivateKey, DecodePublicKey};
use p384::elliptic_curve::rand_core::{TryCryptoRng, TryRng};
use suit_shared::crypto::Curve;
use suit_shared::digest::{DigestAlg, DigestValue, Hasher};
use suit_shared::encryption::{
    unwrap_cek, AesKey, AesKwAlg, ContentAlg, Decryptor, EncryptionInfo, Encryptor,
    KeyDistribution, RecipientKey, RecipientPublicKey, Recipients,
};
use suit_shared::Error;
use zeroize::Zeroizing;

use super::ToolError;
use crate::keys;

/// Bytes read and written per step.
pub const CHUNK: usize = 256 * 1024;

/// The operating system's random number generator, for content keys, IVs and ephemeral keys.
#[derive(Debug, Default)]
pub struct OsRng;

impl TryRng for OsRng {
    type Error = getrandom::Error;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        getrandom::fill(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        getrandom::fill(dst)
    }
}

impl TryCryptoRng for OsRng {}

/// Content-encryption algorithms the tool produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
pub enum ContentAlgName {
    /// AES-256-GCM (the project's profile).
    #[default]
    #[value(name = "A256GCM")]
    #[serde(rename = "A256GCM")]
    A256Gcm,
    /// AES-128-GCM (the draft's MTI profile suit-sha256-esp256-ecdh-a128gcm).
    #[value(name = "A128GCM")]
    #[serde(rename = "A128GCM")]
    A128Gcm,
    /// AES-128-CTR (RFC 9459; the draft's profiles suit-sha256-{es256,eddsa}-ecdh-a128ctr):
    /// no integrity of its own, only the signed image digest.
    #[value(name = "A128CTR")]
    #[serde(rename = "A128CTR")]
    A128Ctr,
    /// AES-256-CTR (RFC 9459; the draft's profile suit-sha256-hsslms-a256kw-a256ctr).
    #[value(name = "A256CTR")]
    #[serde(rename = "A256CTR")]
    A256Ctr,
}

impl ContentAlgName {
    /// The algorithm.
    pub fn alg(self) -> ContentAlg {
        match self {
            ContentAlgName::A256Gcm => ContentAlg::A256Gcm,
            ContentAlgName::A128Gcm => ContentAlg::A128Gcm,
            ContentAlgName::A128Ctr => ContentAlg::A128Ctr,
            ContentAlgName::A256Ctr => ContentAlg::A256Ctr,
        }
    }
}

/// A recipient public key from an SPKI PEM file.
#[derive(Debug, Clone)]
pub enum RecipientPublic {
    /// P-256.
    P256(p256::PublicKey),
    /// P-384.
    P384(p384::PublicKey),
    /// X25519 (RFC 8410), the EdDSA profile's recipient key.
    X25519([u8; 32]),
}

/// What a payload is encrypted for: a device public key or a KEK.
#[derive(Debug)]
pub enum EncryptFor {
    /// ECDH-ES with the device's public key.
    Device(RecipientPublic),
    /// AES key wrap with a shared KEK.
    Kek(AesKey),
}

impl EncryptFor {
    /// The recipient for `content_alg`: with ECDH-ES, the key wrap is as strong as the content
    /// key (A256GCM → ECDH-ES+A256KW, A128GCM → ECDH-ES+A128KW); with a KEK its size decides.
    pub fn recipient(&self, content_alg: ContentAlg) -> RecipientPublicKey<'_> {
        let wrap = if content_alg.key_len() == 32 {
            AesKwAlg::A256Kw
        } else {
            AesKwAlg::A128Kw
        };
        match self {
            EncryptFor::Device(RecipientPublic::P256(key)) => {
                RecipientPublicKey::P256 { key, wrap }
            }
            EncryptFor::Device(RecipientPublic::P384(key)) => {
                RecipientPublicKey::P384 { key, wrap }
            }
            EncryptFor::Device(RecipientPublic::X25519(key)) => {
                RecipientPublicKey::X25519 { key, wrap }
            }
            EncryptFor::Kek(kek) => RecipientPublicKey::Kek(kek),
        }
    }
}

fn format_error(path: &Path, reason: &str) -> ToolError {
    ToolError::Key(keys::KeyError::Format {
        path: path.display().to_string(),
        reason: reason.to_string(),
    })
}

/// Loads an SPKI PEM public key (P-256, P-384 or X25519) to encrypt for.
pub fn load_recipient_public(path: &Path) -> Result<RecipientPublic, ToolError> {
    let pem = std::fs::read_to_string(path).map_err(|e| ToolError::io(path, e))?;
    if let Ok(k) = p384::PublicKey::from_public_key_pem(&pem) {
        return Ok(RecipientPublic::P384(k));
    }
    if let Ok(k) = p256::PublicKey::from_public_key_pem(&pem) {
        return Ok(RecipientPublic::P256(k));
    }
    if let Some(k) = keys::x25519_public_from_pem(&pem) {
        return Ok(RecipientPublic::X25519(k));
    }
    Err(format_error(
        path,
        "not an SPKI PEM public key on P-256, P-384 or X25519",
    ))
}

/// Loads a KEK file: 16 bytes (A128KW) or 32 bytes (A256KW).
pub fn load_kek(path: &Path) -> Result<AesKey, ToolError> {
    let bytes = keys::load_secret(path)?;
    AesKey::from_slice(&bytes).map_err(|_| {
        format_error(
            path,
            &format!(
                "a KEK has 16 bytes (A128KW) or 32 bytes (A256KW), this file has {}",
                bytes.len()
            ),
        )
    })
}

/// Loads a device's private key (PKCS#8 PEM, P-256, P-384 or X25519) for ECDH-ES recipients.
pub fn load_recipient_key(path: &Path) -> Result<RecipientKey, ToolError> {
    let pem = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| ToolError::io(path, e))?);
    if let Ok(secret) = p384::SecretKey::from_pkcs8_pem(&pem) {
        return Ok(RecipientKey::ecdh(Curve::P384, &secret.to_bytes(), None)?);
    }
    if let Ok(secret) = p256::SecretKey::from_pkcs8_pem(&pem) {
        return Ok(RecipientKey::ecdh(Curve::P256, &secret.to_bytes(), None)?);
    }
    if let Some(private) = keys::x25519_private_from_pem(&pem) {
        return Ok(RecipientKey::x25519(&private[..], None)?);
    }
    Err(format_error(
        path,
        "not a PKCS#8 PEM private key on P-256, P-384 or X25519",
    ))
}

/// The device keys given by `--kek` / `--recipient-key`.
pub fn device_keys(
    kek: Option<&Path>,
    recipient_key: Option<&Path>,
) -> Result<Vec<RecipientKey>, ToolError> {
    let mut keys = Vec::new();
    if let Some(path) = kek {
        keys.push(RecipientKey::Kek {
            kid: None,
            key: load_kek(path)?,
        });
    }
    if let Some(path) = recipient_key {
        keys.push(load_recipient_key(path)?);
    }
    Ok(keys)
}

/// A file created next to its destination and deleted at drop unless kept: output only
/// appears under its final name once it is complete and verified.
#[derive(Debug)]
pub struct ScratchFile {
    path: PathBuf,
    file: Option<File>,
}

static SCRATCH_COUNTER: AtomicU64 = AtomicU64::new(0);

impl ScratchFile {
    /// A new empty file in `dir`.
    pub fn new_in(dir: &Path) -> std::io::Result<Self> {
        loop {
            let n = SCRATCH_COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(".suit-scratch-{}-{n}", std::process::id()));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(ScratchFile {
                        path,
                        file: Some(file),
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file.
    pub fn file(&mut self) -> std::io::Result<&mut File> {
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("scratch file already closed"))
    }

    /// Closes the file and renames it to `to` (atomic within a file system).
    pub fn persist(mut self, to: &Path) -> std::io::Result<()> {
        if let Some(mut f) = self.file.take() {
            f.flush()?;
        }
        std::fs::rename(&self.path, to)?;
        self.path = PathBuf::new();
        Ok(())
    }

    /// Closes the file and keeps it where it is; the caller owns its removal.
    pub fn keep(mut self) -> std::io::Result<PathBuf> {
        if let Some(mut f) = self.file.take() {
            f.flush()?;
        }
        Ok(std::mem::take(&mut self.path))
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn io_error(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Io(format!("{what}: {e}"))
}

/// Decrypts everything `input` yields into `output`, passing the (still unverified) plaintext
/// to `observe` as well; then checks the tag. Returns the plaintext length. On error the
/// caller must discard `output`.
pub fn decrypt_stream(
    mut decryptor: Decryptor,
    input: &mut dyn Read,
    output: &mut dyn Write,
    observe: &mut dyn FnMut(&[u8]),
) -> Result<u64, Error> {
    let mut inbuf = vec![0u8; CHUNK];
    let mut outbuf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = input
            .read(&mut inbuf)
            .map_err(io_error("reading the ciphertext"))?;
        if n == 0 {
            break;
        }
        let m = decryptor.update(&inbuf[..n], &mut outbuf)?;
        observe(&outbuf[..m]);
        output
            .write_all(&outbuf[..m])
            .map_err(io_error("writing the plaintext"))?;
        total += m as u64;
    }
    decryptor.finalize()?;
    output.flush().map_err(io_error("writing the plaintext"))?;
    Ok(total)
}

/// Digest and size of a stream of bytes.
pub struct Measured {
    /// The digest.
    pub digest: DigestValue,
    /// The size in bytes.
    pub size: u64,
}

/// The outcome of [`encrypt_file`].
pub struct Encrypted {
    /// The SUIT_Encryption_Info encoding.
    pub info: Vec<u8>,
    /// The plaintext's digest and size.
    pub plaintext: Measured,
    /// The ciphertext's (ciphertext || tag) digest and size.
    pub ciphertext: Measured,
}

/// Encrypts `input` into `output` (written under a scratch name, renamed when complete) for
/// `to`, with a fresh content key and IV; digests plaintext and ciphertext with `digest_alg`.
pub fn encrypt_file(
    input: &Path,
    output: &Path,
    to: &EncryptFor,
    kid: Option<&[u8]>,
    content_alg: ContentAlg,
    digest_alg: DigestAlg,
) -> Result<Encrypted, ToolError> {
    let (mut encryptor, info) =
        Encryptor::for_recipient(content_alg, &to.recipient(content_alg), kid, &mut OsRng)?;
    let mut source = File::open(input).map_err(|e| ToolError::io(input, e))?;
    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut scratch = ScratchFile::new_in(dir).map_err(|e| ToolError::io(output, e))?;
    let (mut plain_hash, mut cipher_hash) = (Hasher::new(digest_alg), Hasher::new(digest_alg));
    let (mut plain_size, mut cipher_size) = (0u64, 0u64);
    let mut inbuf = vec![0u8; CHUNK];
    let mut outbuf = vec![0u8; CHUNK];
    loop {
        let n = source
            .read(&mut inbuf)
            .map_err(|e| ToolError::io(input, e))?;
        if n == 0 {
            break;
        }
        let m = encryptor.update(&inbuf[..n], &mut outbuf)?;
        plain_hash.update(&inbuf[..n]);
        cipher_hash.update(&outbuf[..m]);
        plain_size += n as u64;
        cipher_size += m as u64;
        scratch
            .file()
            .and_then(|f| f.write_all(&outbuf[..m]))
            .map_err(|e| ToolError::io(output, e))?;
    }
    let tag = encryptor.finalize();
    cipher_hash.update(&tag);
    cipher_size += tag.len() as u64;
    scratch
        .file()
        .and_then(|f| f.write_all(&tag))
        .map_err(|e| ToolError::io(output, e))?;
    scratch
        .persist(output)
        .map_err(|e| ToolError::io(output, e))?;
    Ok(Encrypted {
        info,
        plaintext: Measured {
            digest: plain_hash.finalize(),
            size: plain_size,
        },
        ciphertext: Measured {
            digest: cipher_hash.finalize(),
            size: cipher_size,
        },
    })
}

/// The algorithms of `info` and whom its recipients name, for people.
pub fn describe(info: &EncryptionInfo<'_>) -> String {
    let kid = |kid: Option<&[u8]>| match kid {
        None => String::new(),
        Some(k) => match std::str::from_utf8(k) {
            Ok(text) if text.chars().all(|c| c.is_ascii_graphic()) => format!(" kid '{text}'"),
            _ => format!(" kid h'{}'", super::hex(k)),
        },
    };
    let recipients = match &info.recipients {
        Recipients::Direct { kid: k } => vec![format!("pre-shared content key{}", kid(*k))],
        Recipients::Wrapped(list) => list
            .iter()
            .map(|r| match &r.distribution {
                KeyDistribution::AesKw(w) => format!("A{}KW{}", w.kek_len() * 8, kid(r.kid)),
                KeyDistribution::EcdhEs { wrap, ephemeral } => format!(
                    "ECDH-ES+A{}KW ({}){}",
                    wrap.kek_len() * 8,
                    match ephemeral.curve {
                        Curve::P256 => "P-256",
                        Curve::P384 => "P-384",
                    },
                    kid(r.kid)
                ),
                KeyDistribution::EcdhEsX25519 { wrap, .. } => {
                    format!("ECDH-ES+A{}KW (X25519){}", wrap.kek_len() * 8, kid(r.kid))
                }
            })
            .collect(),
    };
    format!("{}, {}", info.content_alg.name(), recipients.join(" / "))
}

/// `suit-tool encrypt`.
#[derive(Debug, clap::Args)]
pub struct EncryptArgs {
    /// The plaintext payload.
    #[arg(long = "in", value_name = "FILE")]
    input: PathBuf,
    /// The ciphertext to write (ciphertext followed by the 16-byte GCM tag).
    #[arg(long, value_name = "FILE.enc")]
    out: PathBuf,
    /// Where to write the SUIT_Encryption_Info (COSE_Encrypt) for the manifest.
    #[arg(long = "info-out", value_name = "INFO.cose")]
    info_out: PathBuf,
    /// The device's public key (SPKI PEM, P-384, P-256 or X25519): ECDH-ES + AES key wrap.
    #[arg(
        long,
        value_name = "PUB.pem",
        conflicts_with = "kek",
        required_unless_present = "kek"
    )]
    recipient: Option<PathBuf>,
    /// A shared KEK file (16 bytes: A128KW, 32 bytes: A256KW).
    #[arg(long, value_name = "KEK.bin")]
    kek: Option<PathBuf>,
    /// Content encryption.
    #[arg(long = "content-alg", value_enum, default_value = "A256GCM")]
    content_alg: ContentAlgName,
    /// Key id to name the recipient's key with.
    #[arg(long)]
    kid: Option<String>,
}

/// `suit-tool decrypt`.
#[derive(Debug, clap::Args)]
pub struct DecryptArgs {
    /// The ciphertext.
    #[arg(long = "in", value_name = "FILE.enc")]
    input: PathBuf,
    /// The SUIT_Encryption_Info (COSE_Encrypt) of the payload.
    #[arg(long, value_name = "INFO.cose")]
    info: PathBuf,
    /// The device's private key (PKCS#8 PEM, P-384 or P-256) for ECDH-ES recipients.
    #[arg(
        long = "recipient-key",
        value_name = "PRIV.pem",
        conflicts_with = "kek",
        required_unless_present = "kek"
    )]
    recipient_key: Option<PathBuf>,
    /// A KEK file (16 or 32 bytes) for AES key-wrap recipients.
    #[arg(long, value_name = "KEK.bin")]
    kek: Option<PathBuf>,
    /// Where to write the plaintext (only once it is complete and, for AES-GCM, verified).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// `suit-tool wrap-kek`.
#[derive(Debug, clap::Args)]
pub struct WrapKekArgs {
    /// The device's key-agreement public key (SPKI PEM; `suit-agent info --json`
    /// `device-public-key-pem`).
    #[arg(long = "device-key", value_name = "DEV.pub.pem")]
    device_key: PathBuf,
    /// The fleet KEK file (16 bytes: A128KW, 32 bytes: A256KW).
    #[arg(long, value_name = "fleet.kek")]
    kek: PathBuf,
    /// Where to write the sealed KEK (a COSE_Encrypt with the ciphertext attached).
    #[arg(long, value_name = "kek.cose")]
    out: PathBuf,
}

/// Seals `kek` to `device` (ECDH-ES+A256KW, A256GCM): what PROVISION takes.
pub fn seal_kek(device: &RecipientPublic, kek: &AesKey) -> Result<Vec<u8>, ToolError> {
    let to = EncryptFor::Device(device.clone());
    let content_alg = ContentAlg::A256Gcm;
    Ok(Encryptor::seal(
        content_alg,
        &to.recipient(content_alg),
        None,
        kek.as_bytes(),
        &mut OsRng,
    )?)
}

/// Runs `suit-tool wrap-kek`.
pub fn wrap_kek(args: WrapKekArgs) -> Result<(), ToolError> {
    let device = load_recipient_public(&args.device_key)?;
    let kek = load_kek(&args.kek)?;
    let sealed = seal_kek(&device, &kek)?;
    std::fs::write(&args.out, &sealed).map_err(|e| ToolError::io(&args.out, e))?;
    println!(
        "wrote {} ({} bytes): the {}-byte KEK sealed to {} (ECDH-ES+A256KW, A256GCM)",
        args.out.display(),
        sealed.len(),
        kek.as_bytes().len(),
        args.device_key.display()
    );
    Ok(())
}

/// Runs `suit-tool encrypt`.
pub fn encrypt(args: EncryptArgs) -> Result<(), ToolError> {
    let to = match (&args.recipient, &args.kek) {
        (Some(p), None) => EncryptFor::Device(load_recipient_public(p)?),
        (None, Some(p)) => EncryptFor::Kek(load_kek(p)?),
        _ => {
            return Err(ToolError::Usage(
                "give exactly one of --recipient or --kek".into(),
            ))
        }
    };
    let encrypted = encrypt_file(
        &args.input,
        &args.out,
        &to,
        args.kid.as_deref().map(str::as_bytes),
        args.content_alg.alg(),
        DigestAlg::Sha256,
    )?;
    std::fs::write(&args.info_out, &encrypted.info)
        .map_err(|e| ToolError::io(&args.info_out, e))?;
    let info = EncryptionInfo::decode(&encrypted.info)?;
    println!(
        "wrote {} ({} bytes, {}) and {}",
        args.out.display(),
        encrypted.ciphertext.size,
        describe(&info),
        args.info_out.display()
    );
    println!(
        "  plaintext  sha-256 {}",
        super::hex(encrypted.plaintext.digest.as_bytes())
    );
    println!(
        "  ciphertext sha-256 {}",
        super::hex(encrypted.ciphertext.digest.as_bytes())
    );
    Ok(())
}

/// Runs `suit-tool decrypt`.
pub fn decrypt(args: DecryptArgs) -> Result<(), ToolError> {
    let keys = device_keys(args.kek.as_deref(), args.recipient_key.as_deref())?;
    let info_bytes = std::fs::read(&args.info).map_err(|e| ToolError::io(&args.info, e))?;
    let info = EncryptionInfo::decode(&info_bytes)?;
    let cek = unwrap_cek(&info, &keys)?;
    let decryptor = Decryptor::new(&info, cek)?;
    if !decryptor.authenticates() {
        eprintln!(
            "suit-tool: warning: {} has no integrity protection; check the plaintext against \
             its image digest before using it",
            info.content_alg.name()
        );
    }
    let mut input = File::open(&args.input).map_err(|e| ToolError::io(&args.input, e))?;
    let dir = args
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut scratch = ScratchFile::new_in(dir).map_err(|e| ToolError::io(&args.out, e))?;
    let file = scratch.file().map_err(|e| ToolError::io(&args.out, e))?;
    let size = decrypt_stream(decryptor, &mut input, file, &mut |_| ())?;
    scratch
        .persist(&args.out)
        .map_err(|e| ToolError::io(&args.out, e))?;
    println!(
        "decrypted {} bytes ({}) → {}",
        size,
        describe(&info),
        args.out.display()
    );
    Ok(())
}
