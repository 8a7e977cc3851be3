//! Typed errors. Every rejection carries a [`Category`] (DESIGN.md §4) and a message a person
//! understands; no message ever contains secret material.

use alloc::string::String;
use core::fmt::{self, Write as _};

mod wire;

/// Why something was rejected, in the coarse terms the agent, the tool and the ABI share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// The envelope is not authentic (signature, MAC, manifest digest, no trusted signer).
    Authentication,
    /// The manifest is authentic but not meant for this device or component.
    Applicability,
    /// The sequence number is below the anti-rollback floor.
    Rollback,
    /// Content does not match a digest the manifest prescribes.
    Digest,
    /// Content does not have the size the manifest prescribes.
    Size,
    /// An encrypted payload could not be decrypted or failed its integrity check.
    Decryption,
    /// The manifest asks for something this device does not support or allow.
    Policy,
    /// The input is not well-formed CBOR/COSE/SUIT.
    Malformed,
    /// A resource limit was hit or an I/O operation failed.
    Resource,
}

impl Category {
    /// Every category, in a fixed order (also the order of their ABI codes).
    pub const ALL: [Category; 9] = [
        Category::Authentication,
        Category::Applicability,
        Category::Rollback,
        Category::Digest,
        Category::Size,
        Category::Decryption,
        Category::Policy,
        Category::Malformed,
        Category::Resource,
    ];

    /// The lower-case name used in JSON output and documentation.
    pub const fn as_str(self) -> &'static str {
        match self {
            Category::Authentication => "authentication",
            Category::Applicability => "applicability",
            Category::Rollback => "rollback",
            Category::Digest => "digest",
            Category::Size => "size",
            Category::Decryption => "decryption",
            Category::Policy => "policy",
            Category::Malformed => "malformed",
            Category::Resource => "resource",
        }
    }

    /// Stable numeric code used on the TA⇄host ABI.
    pub const fn code(self) -> u8 {
        match self {
            Category::Authentication => 1,
            Category::Applicability => 2,
            Category::Rollback => 3,
            Category::Digest => 4,
            Category::Size => 5,
            Category::Decryption => 6,
            Category::Policy => 7,
            Category::Malformed => 8,
            Category::Resource => 9,
        }
    }

    /// Inverse of [`Category::code`].
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A 16-byte identifier (vendor, class or device UUID) shown in canonical UUID form.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Uuid(pub [u8; 16]);

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Everything that can go wrong while decoding, authenticating or processing a SUIT envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    // ----- malformed input -------------------------------------------------------------------
    /// CBOR that does not decode as the structure expects.
    Cbor {
        /// Structure being decoded.
        context: &'static str,
        /// Offset inside that structure's bytes.
        offset: usize,
        /// What the decoder wanted to see.
        expected: &'static str,
    },
    /// Bytes follow a complete structure.
    TrailingBytes {
        /// Structure being decoded.
        context: &'static str,
        /// Number of extra bytes.
        count: usize,
    },
    /// An indefinite-length item where SUIT requires definite lengths.
    IndefiniteLength {
        /// Structure being decoded.
        context: &'static str,
        /// Offset of the item.
        offset: usize,
    },
    /// A map key that appears twice.
    DuplicateKey {
        /// Map being decoded.
        context: &'static str,
        /// The repeated key.
        key: MapKey,
    },
    /// A required element is absent.
    MissingElement {
        /// Structure being decoded.
        context: &'static str,
        /// Name of the missing element.
        element: &'static str,
    },
    /// A value of the right CBOR type but with an invalid value.
    InvalidValue {
        /// Structure being decoded.
        context: &'static str,
        /// Element with the bad value.
        element: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The outer CBOR tag is not the expected one.
    NotSuit {
        /// What was found instead.
        found: &'static str,
    },
    /// `suit-manifest-version` is not 1.
    UnsupportedManifestVersion(u64),
    /// Key 17 carries the install sequence of drafts before -29.
    LegacyInstallKey(&'static str),
    /// A severable element is missing from the envelope although a procedure needs it.
    SeveredElementAbsent(&'static str),
    /// The envelope carries an element the manifest did not sever.
    UnexpectedSeveredElement(&'static str),
    /// A command that the shared sequence must not contain.
    ForbiddenInSharedSequence(&'static str),
    /// With several components, a sequence must select one first.
    ComponentIndexNotSet(&'static str),
    /// A component index beyond the component list.
    ComponentIndexOutOfRange {
        /// The index used.
        index: u64,
        /// Number of components in the manifest.
        count: usize,
    },
    /// soft-failure set outside try-each or run-sequence.
    SoftFailureOutsideScope,
    /// A directive needs a parameter that is not set.
    ParameterUnset {
        /// The directive.
        command: &'static str,
        /// The missing parameter.
        parameter: &'static str,
        /// The component index.
        component: usize,
    },
    /// An integrated payload that the envelope does not carry.
    IntegratedPayloadMissing(String),

    // ----- authentication --------------------------------------------------------------------
    /// The authentication wrapper has a digest but no COSE block.
    NoAuthenticationBlock,
    /// A tag-1070 manifest without envelope has no authentication wrapper.
    BareManifest,
    /// The digest in the authentication wrapper does not match the manifest.
    ManifestDigestMismatch,
    /// A COSE block is not well-formed for SUIT.
    InvalidAuthenticationBlock {
        /// Position of the block (1-based, after the digest).
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// No block verified against any configured trust anchor.
    NotAuthenticated(String),
    /// An algorithm the digest machinery does not support.
    UnsupportedDigestAlgorithm(i64),

    // ----- applicability ---------------------------------------------------------------------
    /// vendor-identifier condition failed.
    VendorMismatch {
        /// Component index.
        component: usize,
        /// From the manifest.
        expected: IdValue,
        /// Of this device.
        actual: Uuid,
    },
    /// class-identifier condition failed.
    ClassMismatch {
        /// Component index.
        component: usize,
        /// From the manifest.
        expected: Uuid,
        /// Of this device.
        actual: Uuid,
    },
    /// device-identifier condition failed.
    DeviceMismatch {
        /// Component index.
        component: usize,
        /// From the manifest.
        expected: Uuid,
    },
    /// A condition about the device's state or identity failed.
    ConditionFailed {
        /// The condition.
        condition: &'static str,
        /// Component index.
        component: usize,
        /// Why.
        detail: String,
    },
    /// The abort command.
    Aborted,

    // ----- rollback --------------------------------------------------------------------------
    /// Sequence number below the floor.
    Rollback {
        /// The manifest's sequence number.
        sequence: u64,
        /// The lowest acceptable sequence number.
        floor: u64,
    },

    // ----- digest / size ---------------------------------------------------------------------
    /// image-match failed.
    ImageDigestMismatch {
        /// Component index.
        component: usize,
    },
    /// image-not-match found the digest it must not find.
    ImageNotMatchFailed {
        /// Component index.
        component: usize,
    },
    /// check-content failed.
    ContentMismatch {
        /// Component index.
        component: usize,
    },
    /// A severed element does not match its digest.
    SeveredDigestMismatch(&'static str),
    /// image-size differs.
    ImageSizeMismatch {
        /// Component index.
        component: usize,
        /// From the manifest.
        expected: u64,
        /// Actual size.
        actual: u64,
    },
    /// More data than the manifest allows.
    PayloadTooLarge {
        /// Component index.
        component: usize,
        /// The bound.
        limit: u64,
    },

    // ----- decryption ------------------------------------------------------------------------
    /// Decryption failure (never says anything about key material).
    Decryption(String),
    /// Encryption info that cannot decrypt anything (IV length, wrapped key length, ephemeral
    /// key not on its curve).
    InvalidEncryptionInfo(&'static str),
    /// None of the device's keys fits a recipient of the encryption info.
    NoDecryptionKey(String),
    /// Every fitting key failed to unwrap the content key.
    KeyUnwrapFailed,
    /// An AES-GCM payload shorter than its tag.
    CiphertextTruncated,
    /// The AES-GCM tag does not match: everything decrypted from the payload must be discarded.
    TagMismatch,

    // ----- policy ----------------------------------------------------------------------------
    /// A feature the device does not implement or allow.
    Unsupported(String),
    /// A trust-anchor update would leave an anchor set the TA refuses (empty, unsatisfiable,
    /// a key named twice or not at all).
    AnchorSet(String),
    /// A trust-anchor update names a key that is not a key of its algorithm.
    AnchorKey {
        /// The algorithm's name.
        alg: &'static str,
        /// Why the key was refused.
        error: alloc::boxed::Box<Error>,
    },
    /// A command number this processor does not implement.
    UnknownCommand(i64),
    /// A parameter number this processor does not implement.
    UnknownParameter(i64),
    /// Manifest elements from the trust-domains draft.
    DependenciesNotSupported(&'static str),
    /// An encryption algorithm, key type or curve this device does not implement.
    UnsupportedEncryptionAlgorithm {
        /// What the algorithm is for.
        role: &'static str,
        /// Its COSE identifier.
        id: i64,
        /// What the device supports instead.
        supported: &'static str,
    },
    /// AES-CTR (no integrity) without an image digest to check the plaintext.
    UnauthenticatedEncryptionWithoutDigest {
        /// Component index.
        component: usize,
    },

    // ----- resource --------------------------------------------------------------------------
    /// A fixed limit of this processor was exceeded.
    LimitExceeded {
        /// Which limit.
        what: &'static str,
        /// Its value.
        limit: usize,
    },
    /// Component I/O failed in the platform.
    Io(String),
    /// The random number generator failed (key or IV generation).
    RandomnessUnavailable,

    // ----- ABI -------------------------------------------------------------------------------
    /// A rejection from the TA that this side cannot read (an unknown code, or arguments that
    /// do not fit it): says what the TA sent.
    UnreadableRejection {
        /// The category code the TA sent.
        category: u64,
        /// The message code the TA sent.
        code: u64,
        /// What does not fit.
        reason: &'static str,
    },
}

/// Crate-wide result type.
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl Error {
    /// The category of this error (DESIGN.md §4).
    pub fn category(&self) -> Category {
        use Error::*;
        match self {
            Cbor { .. }
            | TrailingBytes { .. }
            | IndefiniteLength { .. }
            | DuplicateKey { .. }
            | MissingElement { .. }
            | InvalidValue { .. }
            | NotSuit { .. }
            | UnsupportedManifestVersion(_)
            | LegacyInstallKey(_)
            | UnexpectedSeveredElement(_)
            | ForbiddenInSharedSequence(_)
            | ComponentIndexNotSet(_)
            | ComponentIndexOutOfRange { .. }
            | SoftFailureOutsideScope
            | ParameterUnset { .. }
            | IntegratedPayloadMissing(_) => Category::Malformed,
            NoAuthenticationBlock
            | BareManifest
            | ManifestDigestMismatch
            | InvalidAuthenticationBlock { .. }
            | NotAuthenticated(_) => Category::Authentication,
            VendorMismatch { .. }
            | ClassMismatch { .. }
            | DeviceMismatch { .. }
            | ConditionFailed { .. } => Category::Applicability,
            Rollback { .. } => Category::Rollback,
            ImageDigestMismatch { .. }
            | ImageNotMatchFailed { .. }
            | ContentMismatch { .. }
            | SeveredDigestMismatch(_) => Category::Digest,
            ImageSizeMismatch { .. } | PayloadTooLarge { .. } => Category::Size,
            Decryption(_)
            | InvalidEncryptionInfo(_)
            | NoDecryptionKey(_)
            | KeyUnwrapFailed
            | CiphertextTruncated
            | TagMismatch => Category::Decryption,
            Aborted
            | Unsupported(_)
            | AnchorSet(_)
            | AnchorKey { .. }
            | UnknownCommand(_)
            | UnknownParameter(_)
            | DependenciesNotSupported(_)
            | UnsupportedEncryptionAlgorithm { .. }
            | UnauthenticatedEncryptionWithoutDigest { .. }
            | UnsupportedDigestAlgorithm(_) => Category::Policy,
            // Not malformed: a severed member may legitimately be stripped; the envelope
            // lacks what this procedure needs.
            SeveredElementAbsent(_) | LimitExceeded { .. } | Io(_) | RandomnessUnavailable => {
                Category::Resource
            }
            UnreadableRejection { .. } => Category::Malformed,
        }
    }
}

impl core::error::Error for Error {}

/// A CBOR map key, for messages.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum MapKey {
    /// Integer key.
    Int(i64),
    /// Text key.
    Text(String),
    /// Any other key type (arrays, e.g. component identifiers in the text map).
    Other(alloc::vec::Vec<u8>),
}

impl fmt::Display for MapKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapKey::Int(i) => write!(f, "{i}"),
            MapKey::Text(t) => Quoted(t).fmt(f),
            MapKey::Other(bytes) => {
                f.write_str("h'")?;
                for b in bytes {
                    write!(f, "{b:02x}")?;
                }
                f.write_str("'")
            }
        }
    }
}

/// A vendor identifier as the manifest states it: a UUID or a CBOR private enterprise number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdValue {
    /// RFC 4122 UUID (16 bytes).
    Uuid(Uuid),
    /// Tag 112 CBOR PEN (relative OID bytes).
    Pen(alloc::vec::Vec<u8>),
}

impl fmt::Display for IdValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdValue::Uuid(u) => write!(f, "{u}"),
            IdValue::Pen(p) => write!(f, "PEN {}", MapKey::Other(p.clone())),
        }
    }
}

/// Input text shown in a message: in double quotes, with quotes, backslashes and every
/// character outside printable ASCII escaped (`\u{..}`), so that input cannot forge a
/// message or a terminal control sequence. (Plain code, unlike `{:?}`'s Unicode tables.)
pub struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            match c {
                '"' | '\\' => {
                    f.write_char('\\')?;
                    f.write_char(c)?;
                }
                ' '..='~' => f.write_char(c)?,
                c => write!(f, "\\u{{{:x}}}", u32::from(c))?,
            }
        }
        f.write_str("\"")
    }
}
