//! SUIT parameters (draft-ietf-suit-manifest §8.4.8, update-management, firmware-encryption):
//! typed decoding of a parameter map and the per-component parameter store.

use alloc::vec::Vec;

use minicbor::data::Type;

use crate::cbor::{Key, Reader};
use crate::digest::SuitDigest;
use crate::error::{Error, Result, Uuid};

/// Parameter keys.
pub mod key {
    /// Vendor identifier.
    pub const VENDOR_ID: i64 = 1;
    /// Class identifier.
    pub const CLASS_ID: i64 = 2;
    /// Image digest.
    pub const IMAGE_DIGEST: i64 = 3;
    /// Use-before (update-management).
    pub const USE_BEFORE: i64 = 4;
    /// Component slot.
    pub const COMPONENT_SLOT: i64 = 5;
    /// Strict order.
    pub const STRICT_ORDER: i64 = 12;
    /// Soft failure.
    pub const SOFT_FAILURE: i64 = 13;
    /// Image size.
    pub const IMAGE_SIZE: i64 = 14;
    /// Content.
    pub const CONTENT: i64 = 18;
    /// Encryption info (firmware-encryption).
    pub const ENCRYPTION_INFO: i64 = 19;
    /// URI.
    pub const URI: i64 = 21;
    /// Source component.
    pub const SOURCE_COMPONENT: i64 = 22;
    /// Invoke arguments.
    pub const INVOKE_ARGS: i64 = 23;
    /// Device identifier.
    pub const DEVICE_ID: i64 = 24;
    /// Fetch arguments.
    pub const FETCH_ARGS: i64 = 25;
    /// Minimum battery (update-management).
    pub const MINIMUM_BATTERY: i64 = 26;
    /// Update priority (update-management).
    pub const UPDATE_PRIORITY: i64 = 27;
    /// Version (update-management).
    pub const VERSION: i64 = 28;
    /// Wait info (update-management).
    pub const WAIT_INFO: i64 = 29;
    /// Component metadata (update-management).
    pub const COMPONENT_METADATA: i64 = 30;
    /// dm-verity root of the plaintext image (this project, private use; docs/streaming.md).
    pub const VERITY_ROOT: i64 = -257;
}

/// A vendor identifier: UUID or CBOR private enterprise number (tag 112).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VendorId<'a> {
    /// RFC 4122 UUID.
    Uuid(Uuid),
    /// CBOR PEN relative OID bytes.
    Pen(&'a [u8]),
}

/// Version comparison of the update-management draft.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionComparison {
    /// Component version greater than the given one.
    Greater,
    /// Greater or equal.
    GreaterEqual,
    /// Equal (prefix match: `[1]` matches 1.x.y).
    Equal,
    /// Lesser or equal.
    LesserEqual,
    /// Lesser.
    Lesser,
}

impl VersionComparison {
    /// The comparison's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            VersionComparison::Greater => "greater than",
            VersionComparison::GreaterEqual => "greater than or equal to",
            VersionComparison::Equal => "equal to",
            VersionComparison::LesserEqual => "lesser than or equal to",
            VersionComparison::Lesser => "lesser than",
        }
    }
}

/// A version `[1, 2, 3]` as messages show it.
pub struct Version<'a>(pub &'a [i64]);

impl core::fmt::Display for Version<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("[")?;
        for (i, n) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n}")?;
        }
        f.write_str("]")
    }
}

/// `suit-parameter-version`: comparison and version as an integer array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionMatch {
    /// How to compare.
    pub comparison: VersionComparison,
    /// The version, e.g. `[1, 2, 3]`; negative elements mark pre-releases.
    pub version: Vec<i64>,
}

impl VersionMatch {
    /// Whether a component at `actual` satisfies this requirement.
    pub fn accepts(&self, actual: &[i64]) -> bool {
        use core::cmp::Ordering::*;
        // Compare only over the length of the required version (prefix semantics for Equal).
        let n = self.version.len();
        let mut padded = actual.iter().copied().chain(core::iter::repeat(0));
        let actual_prefix: Vec<i64> = (0..n).map(|_| padded.next().unwrap_or(0)).collect();
        let ord = actual_prefix.as_slice().cmp(self.version.as_slice());
        match self.comparison {
            VersionComparison::Greater => ord == Greater,
            VersionComparison::GreaterEqual => ord != Less,
            VersionComparison::Equal => ord == Equal,
            VersionComparison::LesserEqual => ord != Greater,
            VersionComparison::Lesser => ord == Less,
        }
    }
}

/// One decoded parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parameter<'a> {
    /// Vendor identifier.
    VendorId(VendorId<'a>),
    /// Class identifier.
    ClassId(Uuid),
    /// Image digest.
    ImageDigest(SuitDigest<'a>),
    /// Use-before, seconds since the epoch.
    UseBefore(u64),
    /// Component slot.
    ComponentSlot(u64),
    /// Strict order.
    StrictOrder(bool),
    /// Soft failure.
    SoftFailure(bool),
    /// Image size in bytes.
    ImageSize(u64),
    /// Content bytes.
    Content(&'a [u8]),
    /// Encryption info: the COSE_Encrypt/COSE_Encrypt0 encoding.
    EncryptionInfo(&'a [u8]),
    /// URI.
    Uri(&'a str),
    /// Source component index.
    SourceComponent(u64),
    /// Invoke arguments.
    InvokeArgs(&'a [u8]),
    /// Device identifier.
    DeviceId(Uuid),
    /// Fetch arguments.
    FetchArgs(&'a [u8]),
    /// Minimum battery in mWh.
    MinimumBattery(u64),
    /// Update priority (smaller is higher).
    UpdatePriority(i64),
    /// Version requirement.
    Version(VersionMatch),
    /// Wait info (SUIT_Wait_Event encoding).
    WaitInfo(&'a [u8]),
    /// Component metadata encoding.
    ComponentMetadata(&'a [u8]),
    /// The dm-verity root hash of the plaintext image (private use, docs/streaming.md):
    /// `bstr .cbor [-16, bstr .size 32]`, format 1, 4096-byte blocks, salted with the
    /// image digest.
    VerityRoot(&'a [u8; crate::verity::DIGEST_LEN]),
    /// A custom (negative) parameter: ignored by this processor.
    Custom(i64),
}

impl Parameter<'_> {
    /// The parameter key.
    pub fn key(&self) -> i64 {
        match self {
            Parameter::VendorId(_) => key::VENDOR_ID,
            Parameter::ClassId(_) => key::CLASS_ID,
            Parameter::ImageDigest(_) => key::IMAGE_DIGEST,
            Parameter::UseBefore(_) => key::USE_BEFORE,
            Parameter::ComponentSlot(_) => key::COMPONENT_SLOT,
            Parameter::StrictOrder(_) => key::STRICT_ORDER,
            Parameter::SoftFailure(_) => key::SOFT_FAILURE,
            Parameter::ImageSize(_) => key::IMAGE_SIZE,
            Parameter::Content(_) => key::CONTENT,
            Parameter::EncryptionInfo(_) => key::ENCRYPTION_INFO,
            Parameter::Uri(_) => key::URI,
            Parameter::SourceComponent(_) => key::SOURCE_COMPONENT,
            Parameter::InvokeArgs(_) => key::INVOKE_ARGS,
            Parameter::DeviceId(_) => key::DEVICE_ID,
            Parameter::FetchArgs(_) => key::FETCH_ARGS,
            Parameter::MinimumBattery(_) => key::MINIMUM_BATTERY,
            Parameter::UpdatePriority(_) => key::UPDATE_PRIORITY,
            Parameter::Version(_) => key::VERSION,
            Parameter::WaitInfo(_) => key::WAIT_INFO,
            Parameter::ComponentMetadata(_) => key::COMPONENT_METADATA,
            Parameter::VerityRoot(_) => key::VERITY_ROOT,
            Parameter::Custom(k) => *k,
        }
    }

    /// Readable parameter name.
    pub fn name_of(key: i64) -> &'static str {
        match key {
            key::VENDOR_ID => "vendor-id",
            key::CLASS_ID => "class-id",
            key::IMAGE_DIGEST => "image-digest",
            key::USE_BEFORE => "use-before",
            key::COMPONENT_SLOT => "component-slot",
            key::STRICT_ORDER => "strict-order",
            key::SOFT_FAILURE => "soft-failure",
            key::IMAGE_SIZE => "image-size",
            key::CONTENT => "content",
            key::ENCRYPTION_INFO => "encryption-info",
            key::URI => "uri",
            key::SOURCE_COMPONENT => "source-component",
            key::INVOKE_ARGS => "invoke-args",
            key::DEVICE_ID => "device-id",
            key::FETCH_ARGS => "fetch-arguments",
            key::MINIMUM_BATTERY => "minimum-battery",
            key::UPDATE_PRIORITY => "update-priority",
            key::VERSION => "version",
            key::WAIT_INFO => "wait-info",
            key::COMPONENT_METADATA => "component-metadata",
            key::VERITY_ROOT => "verity-root",
            _ => "custom",
        }
    }

    /// Whether this parameter is global to the processor rather than per component.
    pub fn is_global(&self) -> bool {
        matches!(self, Parameter::StrictOrder(_) | Parameter::SoftFailure(_))
    }
}

fn uuid(r: &mut Reader<'_>, element: &'static str) -> Result<Uuid> {
    let bytes = r.bytes()?;
    <[u8; 16]>::try_from(bytes)
        .map(Uuid)
        .map_err(|_| Error::InvalidValue {
            context: r.context(),
            element,
            reason: "must be a 16-byte UUID",
        })
}

/// `bstr .cbor [-16, bstr .size 32]`: the only tree this project builds is SHA-256.
fn verity_root(bytes: &[u8]) -> Result<&[u8; crate::verity::DIGEST_LEN]> {
    let digest = SuitDigest::decode_exact(bytes, "verity-root parameter")?;
    match (
        digest.alg,
        <&[u8; crate::verity::DIGEST_LEN]>::try_from(digest.bytes),
    ) {
        (crate::digest::DigestAlg::Sha256, Ok(root)) => Ok(root),
        _ => Err(Error::InvalidValue {
            context: "verity-root parameter",
            element: "root",
            reason: "must be a SHA-256 (-16) digest of 32 bytes",
        }),
    }
}

fn version_match(bytes: &[u8]) -> Result<VersionMatch> {
    Reader::decode_exact(bytes, "version parameter", |r| {
        r.array_of(2, "[comparison-type, [+ int]]")?;
        let comparison = match r.u64()? {
            1 => VersionComparison::Greater,
            2 => VersionComparison::GreaterEqual,
            3 => VersionComparison::Equal,
            4 => VersionComparison::LesserEqual,
            5 => VersionComparison::Lesser,
            _ => {
                return Err(Error::InvalidValue {
                    context: "version parameter",
                    element: "comparison type",
                    reason: "must be 1 to 5",
                })
            }
        };
        let n = r.array()?;
        if n == 0 {
            return Err(Error::InvalidValue {
                context: "version parameter",
                element: "version",
                reason: "must have at least one element",
            });
        }
        let mut version = Vec::new();
        for _ in 0..n {
            version.push(r.i64()?);
        }
        Ok(VersionMatch {
            comparison,
            version,
        })
    })
}

/// Decodes a parameter map (`{+ SUIT_Parameters}`) in document order.
pub fn decode_parameters<'a>(r: &mut Reader<'a>) -> Result<Vec<Parameter<'a>>> {
    let mut entries = r.map()?;
    let mut out = Vec::new();
    while entries.next_entry() {
        let k = match r.map_key(&mut entries)? {
            Key::Int(k) => k,
            _ => {
                return Err(Error::InvalidValue {
                    context: r.context(),
                    element: "parameter key",
                    reason: "parameter keys are integers",
                })
            }
        };
        let p = match k {
            key::VENDOR_ID => {
                if r.is(Type::Tag) {
                    if r.tag()? != 112 {
                        return Err(Error::InvalidValue {
                            context: r.context(),
                            element: "vendor-id",
                            reason: "must be a UUID or a tag-112 CBOR PEN",
                        });
                    }
                    Parameter::VendorId(VendorId::Pen(r.bytes()?))
                } else {
                    Parameter::VendorId(VendorId::Uuid(uuid(r, "vendor-id")?))
                }
            }
            key::CLASS_ID => Parameter::ClassId(uuid(r, "class-id")?),
            key::DEVICE_ID => Parameter::DeviceId(uuid(r, "device-id")?),
            key::IMAGE_DIGEST => Parameter::ImageDigest(SuitDigest::decode_exact(
                r.bytes()?,
                "image-digest parameter",
            )?),
            key::USE_BEFORE => Parameter::UseBefore(r.u64()?),
            key::COMPONENT_SLOT => Parameter::ComponentSlot(r.u64()?),
            key::STRICT_ORDER => Parameter::StrictOrder(r.bool()?),
            key::SOFT_FAILURE => Parameter::SoftFailure(r.bool()?),
            key::IMAGE_SIZE => Parameter::ImageSize(r.u64()?),
            key::CONTENT => Parameter::Content(r.bytes()?),
            key::ENCRYPTION_INFO => Parameter::EncryptionInfo(r.bytes()?),
            key::URI => Parameter::Uri(r.str()?),
            key::SOURCE_COMPONENT => Parameter::SourceComponent(r.u64()?),
            key::INVOKE_ARGS => Parameter::InvokeArgs(r.bytes()?),
            key::FETCH_ARGS => Parameter::FetchArgs(r.bytes()?),
            key::MINIMUM_BATTERY => Parameter::MinimumBattery(r.u64()?),
            key::UPDATE_PRIORITY => Parameter::UpdatePriority(r.i64()?),
            key::VERSION => Parameter::Version(version_match(r.bytes()?)?),
            key::WAIT_INFO => Parameter::WaitInfo(r.bytes()?),
            key::COMPONENT_METADATA => Parameter::ComponentMetadata(r.bytes()?),
            key::VERITY_ROOT => Parameter::VerityRoot(verity_root(r.bytes()?)?),
            k if k < 0 => {
                // Custom parameters (int / bool / tstr / bstr) are meant for custom commands,
                // which this processor rejects; the value itself is harmless.
                match r.datatype()? {
                    Type::Bool | Type::String | Type::Bytes => r.skip()?,
                    _ if r.is_int() => r.skip()?,
                    _ => {
                        return Err(Error::InvalidValue {
                            context: r.context(),
                            element: "custom parameter",
                            reason: "must be an integer, boolean, text or byte string",
                        })
                    }
                }
                Parameter::Custom(k)
            }
            other => return Err(Error::UnknownParameter(other)),
        };
        out.push(p);
    }
    Ok(out)
}

/// The parameters held for one component.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComponentParams<'a> {
    /// Vendor identifier.
    pub vendor_id: Option<VendorId<'a>>,
    /// Class identifier.
    pub class_id: Option<Uuid>,
    /// Device identifier.
    pub device_id: Option<Uuid>,
    /// Image digest.
    pub image_digest: Option<SuitDigest<'a>>,
    /// Image size.
    pub image_size: Option<u64>,
    /// Use-before.
    pub use_before: Option<u64>,
    /// Component slot.
    pub component_slot: Option<u64>,
    /// Content.
    pub content: Option<&'a [u8]>,
    /// Encryption info encoding.
    pub encryption_info: Option<&'a [u8]>,
    /// URI.
    pub uri: Option<&'a str>,
    /// Source component index.
    pub source_component: Option<u64>,
    /// Invoke arguments.
    pub invoke_args: Option<&'a [u8]>,
    /// Fetch arguments.
    pub fetch_args: Option<&'a [u8]>,
    /// Minimum battery.
    pub minimum_battery: Option<u64>,
    /// Update priority.
    pub update_priority: Option<i64>,
    /// Version requirement.
    pub version: Option<VersionMatch>,
    /// Wait info.
    pub wait_info: Option<&'a [u8]>,
    /// Component metadata.
    pub component_metadata: Option<&'a [u8]>,
    /// dm-verity root of the plaintext image (streaming install).
    pub verity_root: Option<&'a [u8; crate::verity::DIGEST_LEN]>,
}

impl<'a> ComponentParams<'a> {
    /// Stores `p`; with `only_if_unset` (set-parameters) an existing value is kept.
    /// Global and custom parameters are not stored here.
    pub fn apply(&mut self, p: &Parameter<'a>, only_if_unset: bool) {
        fn put<T: Clone>(slot: &mut Option<T>, v: &T, only_if_unset: bool) {
            if !(only_if_unset && slot.is_some()) {
                *slot = Some(v.clone());
            }
        }
        let o = only_if_unset;
        match p {
            Parameter::VendorId(v) => put(&mut self.vendor_id, v, o),
            Parameter::ClassId(v) => put(&mut self.class_id, v, o),
            Parameter::DeviceId(v) => put(&mut self.device_id, v, o),
            Parameter::ImageDigest(v) => put(&mut self.image_digest, v, o),
            Parameter::ImageSize(v) => put(&mut self.image_size, v, o),
            Parameter::UseBefore(v) => put(&mut self.use_before, v, o),
            Parameter::ComponentSlot(v) => put(&mut self.component_slot, v, o),
            Parameter::Content(v) => put(&mut self.content, v, o),
            Parameter::EncryptionInfo(v) => put(&mut self.encryption_info, v, o),
            Parameter::Uri(v) => put(&mut self.uri, v, o),
            Parameter::SourceComponent(v) => put(&mut self.source_component, v, o),
            Parameter::InvokeArgs(v) => put(&mut self.invoke_args, v, o),
            Parameter::FetchArgs(v) => put(&mut self.fetch_args, v, o),
            Parameter::MinimumBattery(v) => put(&mut self.minimum_battery, v, o),
            Parameter::UpdatePriority(v) => put(&mut self.update_priority, v, o),
            Parameter::Version(v) => put(&mut self.version, v, o),
            Parameter::WaitInfo(v) => put(&mut self.wait_info, v, o),
            Parameter::ComponentMetadata(v) => put(&mut self.component_metadata, v, o),
            Parameter::VerityRoot(v) => put(&mut self.verity_root, v, o),
            Parameter::StrictOrder(_) | Parameter::SoftFailure(_) | Parameter::Custom(_) => {}
        }
    }

    /// Copies parameter `k` from `src` into `self` (copy-params); false if `k` is not a
    /// per-component parameter.
    pub fn copy_from(&mut self, src: &ComponentParams<'a>, k: i64) -> bool {
        match k {
            key::VENDOR_ID => self.vendor_id = src.vendor_id,
            key::CLASS_ID => self.class_id = src.class_id,
            key::DEVICE_ID => self.device_id = src.device_id,
            key::IMAGE_DIGEST => self.image_digest = src.image_digest,
            key::IMAGE_SIZE => self.image_size = src.image_size,
            key::USE_BEFORE => self.use_before = src.use_before,
            key::COMPONENT_SLOT => self.component_slot = src.component_slot,
            key::CONTENT => self.content = src.content,
            key::ENCRYPTION_INFO => self.encryption_info = src.encryption_info,
            key::URI => self.uri = src.uri,
            key::SOURCE_COMPONENT => self.source_component = src.source_component,
            key::INVOKE_ARGS => self.invoke_args = src.invoke_args,
            key::FETCH_ARGS => self.fetch_args = src.fetch_args,
            key::MINIMUM_BATTERY => self.minimum_battery = src.minimum_battery,
            key::UPDATE_PRIORITY => self.update_priority = src.update_priority,
            key::VERSION => self.version = src.version.clone(),
            key::WAIT_INFO => self.wait_info = src.wait_info,
            key::COMPONENT_METADATA => self.component_metadata = src.component_metadata,
            key::VERITY_ROOT => self.verity_root = src.verity_root,
            _ => return false,
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefix_semantics() {
        let eq1 = VersionMatch {
            comparison: VersionComparison::Equal,
            version: alloc::vec![1],
        };
        assert!(eq1.accepts(&[1, 2, 3]));
        assert!(!eq1.accepts(&[2]));
        let ge = VersionMatch {
            comparison: VersionComparison::GreaterEqual,
            version: alloc::vec![1, 2],
        };
        assert!(ge.accepts(&[1, 2]));
        assert!(ge.accepts(&[1, 3, 0]));
        assert!(!ge.accepts(&[1, 1, 9]));
        // 1.2.0-rc (pre-release marker -1) is lesser than 1.2.0.
        let lt = VersionMatch {
            comparison: VersionComparison::Lesser,
            version: alloc::vec![1, 2, 0],
        };
        assert!(lt.accepts(&[1, 2, -1]));
    }

    #[test]
    fn set_parameters_keeps_existing_values() {
        let mut p = ComponentParams::default();
        p.apply(&Parameter::ImageSize(1), false);
        p.apply(&Parameter::ImageSize(2), true);
        assert_eq!(p.image_size, Some(1));
        p.apply(&Parameter::ImageSize(3), false);
        assert_eq!(p.image_size, Some(3));
    }

    #[test]
    fn rejects_short_uuid_and_unknown_parameter() {
        // {1: h'00'}
        let e =
            Reader::decode_exact(&[0xa1, 0x01, 0x41, 0x00], "p", decode_parameters).unwrap_err();
        assert!(matches!(
            e,
            Error::InvalidValue {
                element: "vendor-id",
                ..
            }
        ));
        // {99: 0}
        let e =
            Reader::decode_exact(&[0xa1, 0x18, 0x63, 0x00], "p", decode_parameters).unwrap_err();
        assert_eq!(e, Error::UnknownParameter(99));
    }
}
