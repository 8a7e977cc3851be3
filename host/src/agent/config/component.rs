//! The `[[component]]` tables: where each SUIT component goes in slot A and slot B.

use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use suit_shared::manifest::ComponentId;

use super::fields::absolute_path;
use crate::agent::Slot;

/// Where one component goes in each slot (`[[component]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawComponent")]
pub struct ComponentConfig {
    /// The SUIT component identifier.
    pub id: ComponentIdBuf,
    /// The component's storage in slot A.
    pub slot_a: SlotTarget,
    /// The component's storage in slot B.
    pub slot_b: SlotTarget,
}

impl ComponentConfig {
    /// The component's storage in `slot`.
    pub fn target(&self, slot: Slot) -> &SlotTarget {
        match slot {
            Slot::A => &self.slot_a,
            Slot::B => &self.slot_b,
        }
    }
}

/// One slot's storage of a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotTarget {
    /// Block device or file the component is written to.
    pub path: PathBuf,
    /// The SUIT component-slot value (parameter key 5) of this slot; the manifest's
    /// try-each over component-slot picks the payload for it.
    pub component_slot: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawComponent {
    id: ComponentIdBuf,
    slot_a: RawSlotTarget,
    slot_b: RawSlotTarget,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSlotTarget {
    #[serde(deserialize_with = "absolute_path")]
    path: PathBuf,
    component_slot: Option<u64>,
}

impl TryFrom<RawComponent> for ComponentConfig {
    type Error = String;

    fn try_from(raw: RawComponent) -> Result<Self, String> {
        let slot_a = SlotTarget {
            path: raw.slot_a.path,
            component_slot: raw.slot_a.component_slot.unwrap_or(0),
        };
        let slot_b = SlotTarget {
            path: raw.slot_b.path,
            component_slot: raw.slot_b.component_slot.unwrap_or(1),
        };
        if slot_a.path == slot_b.path {
            return Err(format!(
                "component {}: slot-a and slot-b are the same path {}",
                raw.id,
                slot_a.path.display()
            ));
        }
        if slot_a.component_slot == slot_b.component_slot {
            return Err(format!(
                "component {}: slot-a and slot-b have the same component-slot {}",
                raw.id, slot_a.component_slot
            ));
        }
        Ok(ComponentConfig {
            id: raw.id,
            slot_a,
            slot_b,
        })
    }
}

/// An owned SUIT component identifier: a list of byte strings.
///
/// In the config file (and the journal) it is a list of strings, as in `suit-tool`'s spec:
/// each part is its UTF-8 text, or `0x` followed by hex digits for raw bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentIdBuf(pub Vec<Vec<u8>>);

impl ComponentIdBuf {
    /// The borrowed form the SUIT core uses.
    pub fn as_component_id(&self) -> ComponentId<'_> {
        ComponentId(self.0.iter().map(Vec::as_slice).collect())
    }

    /// Whether `id` names this component.
    pub fn matches(&self, id: &ComponentId<'_>) -> bool {
        self.0.len() == id.0.len() && self.0.iter().zip(&id.0).all(|(a, b)| a == b)
    }

    fn parse_part(text: &str) -> Result<Vec<u8>, String> {
        match text.strip_prefix("0x") {
            Some(hex) => base16ct::mixed::decode_vec(hex)
                .map_err(|_| format!("{text:?} is not valid hex after 0x")),
            None => Ok(text.as_bytes().to_vec()),
        }
    }

    fn part_text(part: &[u8]) -> String {
        match std::str::from_utf8(part) {
            Ok(text) if !text.starts_with("0x") && !text.is_empty() => text.to_string(),
            _ => format!("0x{}", base16ct::lower::encode_string(part)),
        }
    }
}

impl<'a> From<&ComponentId<'a>> for ComponentIdBuf {
    fn from(id: &ComponentId<'a>) -> Self {
        ComponentIdBuf(id.0.iter().map(|part| part.to_vec()).collect())
    }
}

impl fmt::Display for ComponentIdBuf {
    /// As the SUIT core shows identifiers: `['rootfs']`, `[h'00ff']`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_component_id().fmt(f)
    }
}

impl<'de> Deserialize<'de> for ComponentIdBuf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let parts = Vec::<String>::deserialize(deserializer)?;
        if parts.is_empty() {
            return Err(de::Error::custom(
                "a component identifier needs at least one part",
            ));
        }
        parts
            .iter()
            .map(|part| ComponentIdBuf::parse_part(part))
            .collect::<Result<Vec<_>, _>>()
            .map(ComponentIdBuf)
            .map_err(de::Error::custom)
    }
}

impl Serialize for ComponentIdBuf {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|part| ComponentIdBuf::part_text(part)))
    }
}

pub(super) fn components<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<ComponentConfig>, D::Error> {
    let components = Vec::<ComponentConfig>::deserialize(deserializer)?;
    if components.is_empty() {
        return Err(de::Error::custom("at least one [[component]] is needed"));
    }
    for (i, component) in components.iter().enumerate() {
        for other in &components[..i] {
            if other.id == component.id {
                return Err(de::Error::custom(format!(
                    "component {} is configured twice",
                    component.id
                )));
            }
            for slot in Slot::ALL {
                for other_slot in Slot::ALL {
                    if component.target(slot).path == other.target(other_slot).path {
                        return Err(de::Error::custom(format!(
                            "components {} and {} share the path {}",
                            other.id,
                            component.id,
                            component.target(slot).path.display()
                        )));
                    }
                }
            }
        }
    }
    Ok(components)
}
