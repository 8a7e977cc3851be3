//! The text map of a manifest (suit-text, draft-ietf-suit-manifest §8.4.4): per language, the
//! manifest-wide text and the text of each component, and its decoding.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use minicbor::data::Type;

use super::invalid;
use crate::cbor::{Key, Reader};
use crate::component::ComponentId;
use crate::error::Result;

/// Text for one component, by text key (1 vendor-name … 8 current-version).
pub type ComponentText<'a> = BTreeMap<i64, &'a str>;

/// Text in one language.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LanguageText<'a> {
    /// Manifest-wide text by key (1 manifest-description, 2 update-description, 3 JSON source, 4 YAML source).
    pub manifest: BTreeMap<i64, &'a str>,
    /// Per-component text.
    pub components: Vec<(ComponentId, ComponentText<'a>)>,
}

/// SUIT_Text_Map: language tag → text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TextMap<'a> {
    /// Entries by language tag (e.g. "en-US").
    pub languages: Vec<(&'a str, LanguageText<'a>)>,
}

impl<'a> TextMap<'a> {
    pub(super) fn decode(bytes: &'a [u8]) -> Result<Self> {
        Reader::decode_exact(bytes, "text map", |r| {
            let mut langs = r.map()?;
            let mut languages = Vec::new();
            while langs.next_entry() {
                let Key::Text(lang) = r.map_key(&mut langs)? else {
                    return Err(invalid(
                        "text map",
                        "language",
                        "language tags are text strings",
                    ));
                };
                let mut entries = r.map()?;
                let mut text = LanguageText::default();
                while entries.next_entry() {
                    if r.is(Type::Array) {
                        let id = ComponentId::decode(r)?;
                        let mut fields = r.map()?;
                        let mut component = ComponentText::new();
                        while fields.next_entry() {
                            let Key::Int(k) = r.map_key(&mut fields)? else {
                                return Err(invalid(
                                    "text map",
                                    "component text key",
                                    "must be an integer",
                                ));
                            };
                            component.insert(k, r.str()?);
                        }
                        if text.components.iter().any(|(c, _)| *c == id) {
                            return Err(invalid("text map", "component", "listed twice"));
                        }
                        text.components.push((id, component));
                    } else {
                        let Key::Int(k) = r.map_key(&mut entries)? else {
                            return Err(invalid(
                                "text map",
                                "text key",
                                "must be an integer or component id",
                            ));
                        };
                        text.manifest.insert(k, r.str()?);
                    }
                }
                languages.push((lang, text));
            }
            Ok(TextMap { languages })
        })
    }
}
