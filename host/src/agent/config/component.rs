//! The `[[component]]` tables: where each SUIT component goes in slot A and slot B.

use std::path::PathBuf;

use serde::de::{self, Deserializer};
use serde::Deserialize;
use suit_shared::component::ComponentId;

use super::fields::absolute_path;
use crate::agent::Slot;

/// Where one component goes in each slot (`[[component]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawComponent")]
pub struct ComponentConfig {
    /// The SUIT component identifier.
    pub id: ComponentId,
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
    id: ComponentId,
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
