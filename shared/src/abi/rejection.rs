//! Rejections on the wire (ABI version 7): a code and its arguments, never text.
//!
//! The TA sends `[category, code, [* arg]]`; the host looks the code up in [`TEMPLATES`] and
//! renders the message with the arguments. Every message text lives in this table, which only
//! code that renders a message links: the TA encodes codes and never formats (its build
//! checks that no renderer is linked, `ta/build-ta.sh` step 3). `Display` of [`Error`] and of
//! the TA core's error renders through the same table, so a message reads the same whether it
//! was formatted in-process or decoded from a TA.
//!
//! An argument is a CBOR unsigned or negative integer, a text string, a byte string, or a
//! byte string under tag 112 (a CBOR PEN). A template names its arguments in order, `{0}`,
//! `{1}`, ..., each with a form: none (an integer or text as it is), `q` (text quoted with
//! [`Quoted`]), `u` (16 bytes as a UUID), `i` (a vendor id: a UUID or `PEN h'..'`), `k` (a
//! CBOR map key: an integer, quoted text or `h'..'` bytes), `m` (a nested message
//! `[code, [* arg]]`, one level deep). The decoder refuses an unknown
//! code and arguments that do not fit their template ([`Error::UnreadableRejection`]).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::cbor::{Reader, Writer};
use crate::error::{Category, Error, MapKey, Quoted, Result, Uuid};

/// One argument of a rejection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// A non-negative integer.
    Uint(u64),
    /// A negative (or signed) integer.
    Int(i64),
    /// Text: a fixed name or reason, or text the input or the platform gave.
    Text(String),
    /// Bytes: a UUID or a map key.
    Bytes(Vec<u8>),
    /// A CBOR private enterprise number (tag 112).
    Pen(Vec<u8>),
    /// A nested message: its code and arguments (`[code, [* arg]]`, no deeper nesting).
    Message(u16, Vec<Arg>),
}

impl Arg {
    /// Text from a fixed string.
    pub fn text(s: &str) -> Self {
        Arg::Text(String::from(s))
    }

    /// An index or a count.
    pub fn size(n: usize) -> Self {
        Arg::Uint(n as u64)
    }
}

/// A rejection as the TA sends it: its category, the code of its message and the arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The category.
    pub category: Category,
    /// The message's code in [`TEMPLATES`].
    pub code: u16,
    /// The message's arguments.
    pub args: Vec<Arg>,
}

impl Refusal {
    /// From a core error.
    pub fn from_error(e: &Error) -> Self {
        let (code, args) = e.wire();
        Refusal {
            category: e.category(),
            code,
            args,
        }
    }

    /// The message, rendered (host side).
    pub fn message(&self) -> Result<String> {
        let mut out = String::new();
        render(self.code, &self.args, &mut out)
            .map_err(|reason| unreadable(self.category.code().into(), self.code.into(), reason))?;
        Ok(out)
    }

    pub(super) fn write(&self, w: &mut Writer) {
        w.u64(self.category.code().into()).u64(self.code.into());
        write_args(&self.args, w);
    }

    /// Reads `category, code, [* arg]` and renders the message.
    pub(super) fn read(r: &mut Reader<'_>) -> Result<super::Rejection> {
        let category_code = r.u64()?;
        let code = r.u64()?;
        let args = read_args(r, category_code, code, true)?;
        let category = u8::try_from(category_code)
            .ok()
            .and_then(Category::from_code)
            .ok_or(unreadable(category_code, code, "unknown category"))?;
        let code16 =
            u16::try_from(code).map_err(|_| unreadable(category_code, code, "unknown code"))?;
        let refusal = Refusal {
            category,
            code: code16,
            args,
        };
        Ok(super::Rejection {
            category,
            code: code16,
            message: refusal.message()?,
        })
    }
}

fn write_args(args: &[Arg], w: &mut Writer) {
    w.array(args.len());
    for arg in args {
        match arg {
            Arg::Uint(v) => {
                w.u64(*v);
            }
            Arg::Int(v) => {
                w.i64(*v);
            }
            Arg::Text(t) => {
                w.str(truncated(t));
            }
            Arg::Bytes(b) => {
                w.bytes(&b[..b.len().min(super::MAX_MESSAGE)]);
            }
            Arg::Pen(b) => {
                w.tag(PEN_TAG).bytes(&b[..b.len().min(super::MAX_MESSAGE)]);
            }
            Arg::Message(code, args) => {
                w.array(2).u64((*code).into());
                write_args(args, w);
            }
        }
    }
}

fn read_args(r: &mut Reader<'_>, category: u64, code: u64, nest: bool) -> Result<Vec<Arg>> {
    let n = r.array()?;
    if n > MAX_ARGS {
        return Err(unreadable(category, code, "too many arguments"));
    }
    let mut args = Vec::new();
    for _ in 0..n {
        args.push(read_arg(r, category, code, nest)?);
    }
    Ok(args)
}

/// Most arguments a rejection carries.
const MAX_ARGS: u64 = 8;
/// CBOR tag of a private enterprise number.
const PEN_TAG: u64 = 112;

fn truncated(message: &str) -> &str {
    let mut end = message.len().min(super::MAX_MESSAGE);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

fn read_arg(r: &mut Reader<'_>, category: u64, code: u64, nest: bool) -> Result<Arg> {
    use minicbor::data::Type;
    Ok(match r.datatype()? {
        Type::Array if nest => {
            r.array_of(2, "[code, [* arg]]")?;
            let inner = r.u64()?;
            let inner16 =
                u16::try_from(inner).map_err(|_| unreadable(category, code, "unknown code"))?;
            Arg::Message(inner16, read_args(r, category, code, false)?)
        }
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => Arg::Uint(r.u64()?),
        Type::I8 | Type::I16 | Type::I32 | Type::I64 => Arg::Int(r.i64()?),
        Type::String => Arg::Text(String::from(r.str()?)),
        Type::Bytes => Arg::Bytes(r.bytes()?.to_vec()),
        Type::Tag if r.tag()? == PEN_TAG => Arg::Pen(r.bytes()?.to_vec()),
        _ => {
            return Err(Error::InvalidValue {
                context: "ABI response",
                element: "rejection argument",
                reason: "not an integer, text, bytes, tag-112 bytes or [code, [* arg]]",
            })
        }
    })
}

fn unreadable(category: u64, code: u64, reason: &'static str) -> Error {
    Error::UnreadableRejection {
        category,
        code,
        reason,
    }
}

/// The template of a code.
pub fn template(code: u16) -> Option<&'static str> {
    TEMPLATES.iter().find(|(c, _)| *c == code).map(|(_, t)| *t)
}

/// Renders the message of `code` with `args`; the reason when the code is unknown or the
/// arguments do not fit its template (nothing is written then).
pub fn render(code: u16, args: &[Arg], out: &mut impl fmt::Write) -> Result<(), &'static str> {
    let template = template(code).ok_or("unknown code")?;
    // Check first, so that a misfit writes nothing.
    walk(template, args, &mut NoWrite)?;
    walk(template, args, out)
}

struct NoWrite;

impl fmt::Write for NoWrite {
    fn write_str(&mut self, _: &str) -> fmt::Result {
        Ok(())
    }
}

const MISFIT: &str = "its arguments do not fit the code";

fn walk(template: &str, args: &[Arg], out: &mut impl fmt::Write) -> Result<(), &'static str> {
    let mut used = 0;
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').ok_or("bad template")? + open;
        out.write_str(&rest[..open]).map_err(|_| "write failed")?;
        let spec = &rest[open + 1..close];
        let digits = spec.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let form = &spec[digits.len()..];
        let index: usize = digits.parse().map_err(|_| "bad template")?;
        let arg = args.get(index).ok_or(MISFIT)?;
        used = used.max(index + 1);
        write_arg(arg, form, out)?;
        rest = &rest[close + 1..];
    }
    out.write_str(rest).map_err(|_| "write failed")?;
    if used == args.len() {
        Ok(())
    } else {
        Err(MISFIT)
    }
}

fn write_arg(arg: &Arg, form: &str, out: &mut impl fmt::Write) -> Result<(), &'static str> {
    let uuid = |b: &[u8]| <[u8; 16]>::try_from(b).map(Uuid).map_err(|_| MISFIT);
    let written = match (form, arg) {
        ("" | "k", Arg::Uint(v)) => write!(out, "{v}"),
        ("" | "k", Arg::Int(v)) => write!(out, "{v}"),
        ("", Arg::Text(t)) => out.write_str(t),
        ("q" | "k", Arg::Text(t)) => write!(out, "{}", Quoted(t)),
        ("k", Arg::Bytes(b)) => write!(out, "{}", MapKey::Other(b.clone())),
        ("u" | "i", Arg::Bytes(b)) => write!(out, "{}", uuid(b)?),
        ("i", Arg::Pen(b)) => write!(out, "PEN {}", MapKey::Other(b.clone())),
        ("m", Arg::Message(code, args)) => {
            let template = template(*code).ok_or("unknown code")?;
            return walk(template, args, out);
        }
        _ => return Err(MISFIT),
    };
    written.map_err(|_| "write failed")
}

macro_rules! templates {
    ($($(#[$doc:meta])* $name:ident = $code:literal => $text:expr,)*) => {
        /// The codes of rejection messages (stable: a code is never reused for another message).
        pub mod code {
            $($(#[$doc])* pub const $name: u16 = $code;)*
        }
        /// Every message template by code.
        pub const TEMPLATES: &[(u16, &str)] = &[$(($code, $text),)*];
    };
}

templates! {
    /// [`Error::Cbor`].
    CBOR = 1 => "malformed CBOR at byte {0} of the {1}: expected {2}",
    /// [`Error::TrailingBytes`].
    TRAILING_BYTES = 2 => "{0} has {1} trailing byte(s) after its end",
    /// [`Error::IndefiniteLength`].
    INDEFINITE_LENGTH = 3 =>
        "indefinite-length item at byte {0} of the {1} (SUIT requires definite lengths)",
    /// [`Error::DuplicateKey`].
    DUPLICATE_KEY = 4 => "duplicate key {0k} in the {1}",
    /// [`Error::MissingElement`].
    MISSING_ELEMENT = 5 => "the {0} lacks its required {1} element",
    /// [`Error::InvalidValue`].
    INVALID_VALUE = 6 => "invalid {0} in the {1}: {2}",
    /// [`Error::NotSuit`].
    NOT_SUIT = 7 => "expected a SUIT envelope (tag 107) or manifest (tag 1070), found {0}",
    /// [`Error::UnsupportedManifestVersion`].
    UNSUPPORTED_MANIFEST_VERSION = 8 =>
        "unsupported manifest version {0} (this processor implements version 1)",
    /// [`Error::LegacyInstallKey`].
    LEGACY_INSTALL_KEY = 9 =>
        "the {0} uses key 17 for suit-install, as drafts before draft-ietf-suit-manifest-29 did; \
         current manifests carry it at key 20 — re-create the manifest with a current tool",
    /// [`Error::SeveredElementAbsent`].
    SEVERED_ELEMENT_ABSENT = 10 =>
        "the {0} sequence is severed from the manifest and absent from this envelope (stripped); \
         this procedure needs the envelope with it",
    /// [`Error::UnexpectedSeveredElement`].
    UNEXPECTED_SEVERED_ELEMENT = 11 =>
        "the envelope carries a {0} element but the manifest does not sever it",
    /// [`Error::ForbiddenInSharedSequence`].
    FORBIDDEN_IN_SHARED_SEQUENCE = 12 =>
        "the shared sequence must not contain {0} (draft-ietf-suit-manifest §6.2)",
    /// [`Error::ComponentIndexNotSet`].
    COMPONENT_INDEX_NOT_SET = 13 =>
        "the {0} sequence must begin with set-component-index because the manifest has \
         several components",
    /// [`Error::ComponentIndexOutOfRange`].
    COMPONENT_INDEX_OUT_OF_RANGE = 14 =>
        "component index {0} is out of range (the manifest has {1} component(s))",
    /// [`Error::SoftFailureOutsideScope`].
    SOFT_FAILURE_OUTSIDE_SCOPE = 15 =>
        "soft-failure may only be set inside try-each or run-sequence",
    /// [`Error::ParameterUnset`].
    PARAMETER_UNSET = 16 => "{0} on component {1} needs the {2} parameter, which is not set",
    /// [`Error::IntegratedPayloadMissing`].
    INTEGRATED_PAYLOAD_MISSING = 17 =>
        "the manifest refers to integrated payload {0q}, which the envelope does not carry",
    /// [`Error::NoAuthenticationBlock`].
    NO_AUTHENTICATION_BLOCK = 18 =>
        "the envelope has no authentication block (COSE_Sign1/COSE_Mac0); it cannot be trusted",
    /// [`Error::BareManifest`].
    BARE_MANIFEST = 19 =>
        "a bare manifest (tag 1070) carries no authentication wrapper; it cannot be trusted",
    /// [`Error::ManifestDigestMismatch`].
    MANIFEST_DIGEST_MISMATCH = 20 =>
        "the manifest does not match the digest in the authentication wrapper",
    /// [`Error::InvalidAuthenticationBlock`].
    INVALID_AUTHENTICATION_BLOCK = 21 => "authentication block {0}: {1}",
    /// [`Error::NotAuthenticated`].
    NOT_AUTHENTICATED = 22 =>
        "no authentication block verified against the configured trust anchor(s): {0}",
    /// [`Error::UnsupportedDigestAlgorithm`].
    UNSUPPORTED_DIGEST_ALGORITHM = 23 =>
        "unsupported digest algorithm {0} (supported: -16 SHA-256, -43 SHA-384, -44 SHA-512)",
    /// [`Error::VendorMismatch`].
    VENDOR_MISMATCH = 24 =>
        "vendor identifier mismatch on component {0}: manifest expects {1i}, device is {2u}",
    /// [`Error::ClassMismatch`].
    CLASS_MISMATCH = 25 =>
        "class identifier mismatch on component {0}: manifest expects {1u}, device is {2u}",
    /// [`Error::DeviceMismatch`].
    DEVICE_MISMATCH = 26 => "device identifier mismatch on component {0}: manifest expects {1u}",
    /// [`Error::ConditionFailed`].
    CONDITION_FAILED = 27 => "condition {0} failed on component {1}: {2}",
    /// [`Error::Aborted`].
    ABORTED = 28 => "the manifest aborted processing (suit-condition-abort)",
    /// [`Error::Rollback`].
    ROLLBACK = 29 => "rollback: manifest sequence number {0} is below the device's floor {1}",
    /// [`Error::ImageDigestMismatch`].
    IMAGE_DIGEST_MISMATCH = 30 =>
        "image digest mismatch on component {0}: the content does not match the manifest's \
         image-digest",
    /// [`Error::ImageNotMatchFailed`].
    IMAGE_NOT_MATCH_FAILED = 31 =>
        "image-not-match failed on component {0}: the content matches the excluded digest",
    /// [`Error::ContentMismatch`].
    CONTENT_MISMATCH = 32 =>
        "check-content failed on component {0}: the content differs from the manifest",
    /// [`Error::SeveredDigestMismatch`].
    SEVERED_DIGEST_MISMATCH = 33 =>
        "the severed {0} element in the envelope does not match its digest in the manifest",
    /// [`Error::ImageSizeMismatch`].
    IMAGE_SIZE_MISMATCH = 34 =>
        "image size mismatch on component {0}: manifest says {1} bytes, content has {2}",
    /// [`Error::PayloadTooLarge`].
    PAYLOAD_TOO_LARGE = 35 => "payload for component {0} exceeds the {1} bytes the manifest allows",
    /// [`Error::Decryption`].
    DECRYPTION = 36 => "decryption failed: {0}",
    /// [`Error::InvalidEncryptionInfo`].
    INVALID_ENCRYPTION_INFO = 37 => "decryption failed: unusable encryption info: {0}",
    /// [`Error::NoDecryptionKey`].
    NO_DECRYPTION_KEY = 38 => "decryption failed: no key for this payload: {0}",
    /// [`Error::KeyUnwrapFailed`].
    KEY_UNWRAP_FAILED = 39 =>
        "decryption failed: the content key does not unwrap with the device's key(s) \
         (wrong key, or the recipient was altered)",
    /// [`Error::CiphertextTruncated`].
    CIPHERTEXT_TRUNCATED = 40 =>
        "decryption failed: the encrypted payload is shorter than its 16-byte authentication \
         tag (truncated)",
    /// [`Error::TagMismatch`].
    TAG_MISMATCH = 41 =>
        "decryption failed: authentication tag mismatch (the payload was altered, truncated or \
         extended, or belongs to other encryption info); discard everything decrypted from it",
    /// [`Error::Unsupported`].
    UNSUPPORTED = 42 => "unsupported: {0}",
    /// [`Error::AnchorSet`].
    ANCHOR_SET = 43 => "trust-anchor update refused: {0}",
    /// [`Error::UnknownCommand`].
    UNKNOWN_COMMAND = 44 => "unsupported command {0} (unknown commands must be rejected)",
    /// [`Error::UnknownParameter`].
    UNKNOWN_PARAMETER = 45 => "unsupported parameter {0}",
    /// [`Error::DependenciesNotSupported`].
    DEPENDENCIES_NOT_SUPPORTED = 46 => "dependencies not supported: {0}",
    /// [`Error::UnsupportedEncryptionAlgorithm`].
    UNSUPPORTED_ENCRYPTION_ALGORITHM = 47 => "unsupported {0} algorithm {1} (supported: {2})",
    /// [`Error::UnauthenticatedEncryptionWithoutDigest`].
    UNAUTHENTICATED_ENCRYPTION_WITHOUT_DIGEST = 48 =>
        "component {0} is encrypted with AES-CTR, which has no integrity protection; \
         it is accepted only with an image-digest that the plaintext is checked against",
    /// [`Error::LimitExceeded`].
    LIMIT_EXCEEDED = 49 => "limit exceeded: {0} (at most {1})",
    /// [`Error::Io`].
    IO = 50 => "I/O error: {0}",
    /// [`Error::RandomnessUnavailable`].
    RANDOMNESS_UNAVAILABLE = 51 => "the random number generator failed",
    /// [`Error::AnchorKey`].
    ANCHOR_KEY = 53 =>
        "trust-anchor update refused: the key given for {0} is not a key of that algorithm ({1m})",
    /// [`Error::UnreadableRejection`].
    UNREADABLE_REJECTION = 52 =>
        "the TA's rejection (category {0}, code {1}) cannot be read: {2} (a TA and an agent \
         of different builds?)",

    /// The TA core's `TaError::OutOfOrder`.
    TA_OUT_OF_ORDER = 256 => "{0} is not allowed now: {1}",
    /// `TaError::Token`.
    TA_TOKEN = 257 => "approval token refused: {0}",
    /// `TaError::TokenInvalid`.
    TA_TOKEN_INVALID = 266 => "approval token refused: {0m}",
    /// `TaError::Storage`.
    TA_STORAGE = 258 => "secure storage: {0}",
    /// `TaError::CorruptState`.
    TA_CORRUPT_STATE = 259 =>
        "the TA's state object in secure storage is corrupt ({0}); refusing to continue because \
         the anti-rollback floors and keys cannot be trusted — the device needs servicing",
    /// `TaError::CorruptState` with an object that does not decode.
    TA_CORRUPT_STATE_DECODE = 267 =>
        "the TA's state object in secure storage is corrupt ({0m}); refusing to continue \
         because the anti-rollback floors and keys cannot be trusted — the device needs servicing",
    /// `TaError::Diverged`.
    TA_DIVERGED = 260 =>
        "the manifest takes another path over the digests the TA computed than it did when \
         planning (LOAD_MANIFEST); nothing is committed",
    /// `TaError::NotBootable`.
    TA_NOT_BOOTABLE = 261 => "component-slot {0} is not approved to boot: {1}",
    /// `TaError::Refused`.
    TA_REFUSED = 262 => "refused by the TA's install policy: {0}",
    /// `TaError::Bulk`.
    TA_BULK = 263 => "the shared memory of this invoke could not be {0}",
    /// `TaError::TooLarge`.
    TA_TOO_LARGE = 264 => "{0} of {1} bytes exceeds the limit of {2} bytes",
    /// A reply that does not fit the response buffer.
    TA_RESPONSE_TOO_LARGE = 265 =>
        "the {0} response of {1} bytes exceeds the response buffer of {2} bytes",
    /// `TaError::Tree` with `TreeError::Block`.
    TA_TREE_BLOCK = 272 =>
        "component {0}: data block {1} does not match the dm-verity tree the manifest binds; \
         nothing of this chunk was released",
    /// `TaError::Tree` with `TreeError::HashBlock`.
    TA_TREE_HASH_BLOCK = 273 =>
        "component {0}: hash block {1} of tree level {2} does not match the dm-verity tree the \
         manifest binds; nothing of this chunk was released",
    /// `TaError::Tree` with `TreeError::MissingHashBlock`.
    TA_TREE_MISSING_HASH_BLOCK = 274 =>
        "component {0}: hash block {1} of tree level {2} is needed and was not sent; nothing of \
         this chunk was released",
    /// `TaError::Tree` with `TreeError::ExtraHashBytes`.
    TA_TREE_EXTRA_HASH_BYTES = 275 =>
        "component {0}: {1} bytes of hash blocks were sent that these data blocks do not need; \
         nothing of this chunk was released",
    /// `TaError::Tree` with `TreeError::OutOfRange`.
    TA_TREE_OUT_OF_RANGE = 276 =>
        "component {0}: data block {1} is beyond the image's {2} blocks; nothing of this chunk \
         was released",
}
