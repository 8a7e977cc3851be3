//! Conditions (§8.4.9 and update-management): evaluated per component, side-effect free.

use alloc::format;
use alloc::string::String;

use super::{condition_bit, condition_name, ImageCheck, Platform, Processor};
use crate::command::Condition;
use crate::error::{Error, IdValue, Result};
use crate::params::{VendorId, Version};

impl<'p, 'a, P: Platform> Processor<'p, 'a, P> {
    /// Evaluates a condition: `Ok(Some(e))` when it fails, `Err` when evaluating it failed.
    pub(super) fn condition(&mut self, condition: Condition, c: usize) -> Result<Option<Error>> {
        let outcome = self.evaluate(condition, c)?;
        if outcome.is_ok() {
            if let Some(bits) = self.passed.get_mut(c) {
                *bits |= condition_bit(condition);
            }
        }
        Ok(outcome.err())
    }

    fn evaluate(&mut self, condition: Condition, c: usize) -> Result<Result<()>> {
        let comp = self.component(c);
        let p = self.params[c].clone();
        // §8.4.9: a condition whose parameter is unset fails.
        macro_rules! require {
            ($value:expr, $name:literal) => {
                match $value {
                    Some(v) => v,
                    None => {
                        return Ok(Err(Error::ParameterUnset {
                            command: condition_name(condition),
                            parameter: $name,
                            component: c,
                        }))
                    }
                }
            };
        }
        let failed = |condition: &'static str, detail: String| {
            Err(Error::ConditionFailed {
                condition,
                component: c,
                detail,
            })
        };
        let identity = self.platform.identity().clone();
        Ok(match condition {
            Condition::VendorId => match require!(p.vendor_id, "vendor-id") {
                VendorId::Uuid(u) if u == identity.vendor_id => Ok(()),
                VendorId::Uuid(u) => Err(Error::VendorMismatch {
                    component: c,
                    expected: IdValue::Uuid(u),
                    actual: identity.vendor_id,
                }),
                VendorId::Pen(pen) => Err(Error::VendorMismatch {
                    component: c,
                    expected: IdValue::Pen(pen.to_vec()),
                    actual: identity.vendor_id,
                }),
            },
            Condition::ClassId => {
                let expected = require!(p.class_id, "class-id");
                if expected == identity.class_id {
                    Ok(())
                } else {
                    Err(Error::ClassMismatch {
                        component: c,
                        expected,
                        actual: identity.class_id,
                    })
                }
            }
            Condition::DeviceId => {
                let expected = require!(p.device_id, "device-id");
                if identity.device_id == Some(expected) {
                    Ok(())
                } else {
                    Err(Error::DeviceMismatch {
                        component: c,
                        expected,
                    })
                }
            }
            Condition::ImageMatch => {
                let digest = require!(p.image_digest, "image-digest");
                match self.platform.check_image(comp, &digest, p.image_size)? {
                    ImageCheck::Match => Ok(()),
                    ImageCheck::DigestMismatch => Err(Error::ImageDigestMismatch { component: c }),
                    ImageCheck::SizeMismatch { actual } => Err(Error::ImageSizeMismatch {
                        component: c,
                        expected: p.image_size.unwrap_or(actual),
                        actual,
                    }),
                }
            }
            Condition::ImageNotMatch => {
                let digest = require!(p.image_digest, "image-digest");
                if self.platform.check_image_differs(comp, &digest)? {
                    Ok(())
                } else {
                    Err(Error::ImageNotMatchFailed { component: c })
                }
            }
            Condition::CheckContent => {
                let content = require!(p.content, "content");
                if self.platform.check_content(comp, content)? {
                    Ok(())
                } else {
                    Err(Error::ContentMismatch { component: c })
                }
            }
            Condition::ComponentSlot => {
                let wanted = require!(p.component_slot, "component-slot");
                match self.platform.component_slot(comp) {
                    Some(slot) if slot == wanted => Ok(()),
                    Some(slot) => failed(
                        "component-slot",
                        format!(
                            "the component is slot {slot}, the manifest requires slot {wanted}"
                        ),
                    ),
                    None => failed(
                        "component-slot",
                        format!("the component has no slot, the manifest requires slot {wanted}"),
                    ),
                }
            }
            Condition::UseBefore => {
                let deadline = require!(p.use_before, "use-before");
                match self.platform.now() {
                    Some(now) if now < deadline => Ok(()),
                    Some(now) => failed(
                        "use-before",
                        format!("the manifest expired at {deadline} (device time {now})"),
                    ),
                    None => failed(
                        "use-before",
                        String::from("the device has no trusted time to check the expiry"),
                    ),
                }
            }
            Condition::MinimumBattery => {
                let minimum = require!(p.minimum_battery, "minimum-battery");
                match self.platform.battery_mwh() {
                    Some(level) if level < minimum => failed(
                        "minimum-battery",
                        format!("battery at {level} mWh, the manifest requires {minimum} mWh"),
                    ),
                    _ => Ok(()),
                }
            }
            Condition::UpdateAuthorized => {
                if self.platform.update_authorized(comp, p.update_priority) {
                    Ok(())
                } else {
                    failed(
                        "update-authorized",
                        String::from("the device's application does not authorise the update now"),
                    )
                }
            }
            Condition::Version => {
                let required = require!(p.version, "version");
                match self.platform.component_version(comp) {
                    Some(v) if required.accepts(&v) => Ok(()),
                    Some(v) => failed(
                        "version",
                        format!(
                            "installed version {} does not satisfy {} {}",
                            Version(&v),
                            required.comparison.name(),
                            Version(&required.version)
                        ),
                    ),
                    None => failed(
                        "version",
                        String::from("the installed version of the component is unknown"),
                    ),
                }
            }
            Condition::Abort => Err(Error::Aborted),
            // Only inspection decodes these; processing refuses dependencies.
            Condition::DependencyIntegrity | Condition::IsDependency => {
                Err(Error::DependenciesNotSupported(condition_name(condition)))
            }
        })
    }
}
