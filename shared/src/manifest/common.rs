//! Decoding suit-common: the component list, the shared sequence and (for inspection only)
//! the dependencies of trust-domains.

use alloc::vec::Vec;

use super::{invalid, MAX_COMPONENTS};
use crate::cbor::{Key, Reader};
use crate::component::ComponentId;
use crate::error::{Error, Result};

pub(super) type CommonParts<'a> = (Vec<ComponentId>, Option<&'a [u8]>, Vec<(u64, &'a [u8])>);

pub(super) fn decode_common(bytes: &[u8], dependencies: bool) -> Result<CommonParts<'_>> {
    let content = Reader::decode_exact(bytes, "common", |r| r.bytes())?;
    Reader::decode_exact(content, "common", |r| {
        let mut entries = r.map()?;
        let mut components = Vec::new();
        let mut shared = None;
        let mut dependency_components = Vec::new();
        while entries.next_entry() {
            match r.map_key(&mut entries)? {
                Key::Int(1) if dependencies => {
                    let mut deps = r.map()?;
                    while deps.next_entry() {
                        let Key::Int(index) = r.map_key(&mut deps)? else {
                            return Err(invalid("common", "dependency", "keys are indices"));
                        };
                        let index = u64::try_from(index)
                            .map_err(|_| invalid("common", "dependency", "negative index"))?;
                        dependency_components.push((index, r.raw_item()?));
                    }
                }
                Key::Int(1) => {
                    return Err(Error::DependenciesNotSupported(
                        "suit-dependencies in suit-common",
                    ))
                }
                Key::Int(2) => {
                    let n = r.array()?;
                    if n == 0 {
                        return Err(invalid(
                            "common",
                            "components",
                            "must list at least one component",
                        ));
                    }
                    for _ in 0..n {
                        if components.len() == MAX_COMPONENTS {
                            return Err(Error::LimitExceeded {
                                what: "components per manifest",
                                limit: MAX_COMPONENTS,
                            });
                        }
                        let id = ComponentId::decode(r)?;
                        // A component identifier names one storage location: two indices for
                        // it would give one location two contents (and the text map, keyed by
                        // identifier, could not describe them).
                        if components.contains(&id) {
                            return Err(invalid(
                                "common",
                                "components",
                                "lists a component identifier twice",
                            ));
                        }
                        components.push(id);
                    }
                }
                Key::Int(4) => shared = Some(r.bytes()?),
                Key::Int(k) => {
                    return Err(Error::Unsupported(alloc::format!(
                        "suit-common element {k}"
                    )))
                }
                _ => return Err(invalid("common", "key", "keys are integers")),
            }
        }
        Ok((components, shared, dependency_components))
    })
}
