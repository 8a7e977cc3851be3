//! The SUIT component identifier (draft-ietf-suit-manifest §8.4.5.1): a list of byte strings.
//!
//! One owned type for every place that names a component: the manifest's common section, the
//! TA⇄host ABI (plan items, floors, installs), approval tokens, boot records, and the agent's
//! config and journal. The wire form is `[* bstr]` (`crate::abi::ComponentIdCodec`); with the
//! `serde` feature it is a list of strings, each part its UTF-8 text or `0x` and hex digits for
//! raw bytes (as in `suit-tool`'s spec); shown to people as `['rootfs', h'00ff']`.

use alloc::vec::Vec;
use core::fmt;

use crate::cbor::Reader;
use crate::error::Result;

/// A SUIT component identifier: a list of byte strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ComponentId(Vec<Vec<u8>>);

impl ComponentId {
    /// The identifier made of `parts`.
    pub fn new<P: AsRef<[u8]>>(parts: impl IntoIterator<Item = P>) -> Self {
        ComponentId(parts.into_iter().map(|p| p.as_ref().to_vec()).collect())
    }

    /// Its byte-string parts.
    pub fn parts(&self) -> &[Vec<u8>] {
        &self.0
    }

    /// Reads `[* bstr]`.
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self> {
        let n = r.array()?;
        let mut parts = Vec::new();
        for _ in 0..n {
            parts.push(r.bytes()?.to_vec());
        }
        Ok(ComponentId(parts))
    }
}

impl From<Vec<Vec<u8>>> for ComponentId {
    fn from(parts: Vec<Vec<u8>>) -> Self {
        ComponentId(parts)
    }
}

impl fmt::Display for ComponentId {
    /// Shows each part as text when printable, otherwise as hex: `['fw', h'00']`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, part) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match core::str::from_utf8(part) {
                Ok(text)
                    if !text.is_empty()
                        && part.iter().all(|b| b.is_ascii_graphic() || *b == b' ') =>
                {
                    write!(f, "'{text}'")?
                }
                _ => {
                    f.write_str("h'")?;
                    for b in part {
                        write!(f, "{b:02x}")?;
                    }
                    f.write_str("'")?;
                }
            }
        }
        f.write_str("]")
    }
}

#[cfg(feature = "serde")]
mod text {
    use alloc::format;
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;

    use serde::de::{self, Deserializer};
    use serde::{Deserialize, Serialize, Serializer};

    use super::ComponentId;

    fn parse_part(text: &str) -> core::result::Result<Vec<u8>, String> {
        match text.strip_prefix("0x") {
            Some(hex) => base16ct::mixed::decode_vec(hex)
                .map_err(|_| format!("{text:?} is not valid hex after 0x")),
            None => Ok(text.as_bytes().to_vec()),
        }
    }

    fn part_text(part: &[u8]) -> String {
        match core::str::from_utf8(part) {
            Ok(text) if !text.starts_with("0x") && !text.is_empty() => text.to_string(),
            _ => format!("0x{}", base16ct::lower::encode_string(part)),
        }
    }

    impl<'de> Deserialize<'de> for ComponentId {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let parts = Vec::<String>::deserialize(deserializer)?;
            if parts.is_empty() {
                return Err(de::Error::custom(
                    "a component identifier needs at least one part",
                ));
            }
            parts
                .iter()
                .map(|part| parse_part(part))
                .collect::<Result<Vec<_>, _>>()
                .map(ComponentId)
                .map_err(de::Error::custom)
        }
    }

    impl Serialize for ComponentId {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq(self.0.iter().map(|part| part_text(part)))
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;

    use super::ComponentId;

    #[test]
    fn shown_as_text_or_hex() {
        let id = ComponentId::new([b"rootfs" as &[u8], &[0x00, 0xff], b""]);
        assert_eq!(id.to_string(), "['rootfs', h'00ff', h'']");
    }
}
