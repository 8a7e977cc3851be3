//! The plan runner: [`plan`] runs the manifest once per combination of answers to its
//! content decisions and keeps the one path that succeeds (LOAD_MANIFEST); [`verify`] runs it
//! once more over what the TA computed (COMMIT).

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use suit_shared::abi::DeviceFacts;
use suit_shared::command::Condition;
use suit_shared::manifest::Authentic;
use suit_shared::processor::{DeviceIdentity, Processor, Section};
use suit_shared::Error;

use super::{too_many_paths, Computed, Plan, Planned, Planner, Step, MAX_RUNS};
use crate::error::{Result, TaError};

/// Plans `authentic`'s `sections` for the target `slot` (LOAD_MANIFEST).
pub fn plan(
    authentic: &Authentic<'_>,
    sections: &[Section],
    identity: &DeviceIdentity,
    slot: u64,
    now: Option<u64>,
    facts: DeviceFacts,
) -> Result<Plan> {
    let mut pending = vec![Vec::new()];
    let mut planned: Option<Plan> = None;
    let mut first_error = None;
    let mut runs = 0;
    while let Some(script) = pending.pop() {
        runs += 1;
        let mut planner = Planner::new(identity, slot, (now, facts), authentic, None);
        planner.script = script;
        let outcome = match run(authentic, sections, &mut planner) {
            // What the planner cannot evaluate on one path leaves the whole plan unknown.
            Err(
                e @ (TaError::Suit(Error::Unsupported(_))
                | TaError::Processing {
                    error: Error::Unsupported(_),
                    ..
                }),
            ) => return Err(e),
            Err(e) => Err(e),
            Ok(applicable) => planner.finish(&authentic.manifest.components, &applicable),
        };
        // Every decision this run took beyond its script, answered the other way.
        for k in planner.script.len()..planner.decisions.len() {
            let mut other = planner.decisions[..k].to_vec();
            other.push(!planner.decisions[k]);
            pending.push(other);
        }
        if runs + pending.len() > MAX_RUNS {
            return Err(too_many_paths().into());
        }
        match outcome {
            Ok(items) => {
                if let Some(first) = &planned {
                    return Err(alternatives(&first.items, &items));
                }
                planned = Some(Plan {
                    items,
                    trace: planner.trace,
                });
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match (planned, first_error) {
        (Some(plan), _) => Ok(plan),
        (None, Some(e)) => Err(e),
        // The first run always ends one way or the other.
        (None, None) => Err(too_many_paths().into()),
    }
}

/// Runs `authentic`'s `sections` again over what the TA `computed` per payload (COMMIT);
/// returns the trace, to be compared with the plan's.
pub fn verify(
    authentic: &Authentic<'_>,
    sections: &[Section],
    identity: &DeviceIdentity,
    slot: u64,
    now: Option<u64>,
    facts: DeviceFacts,
    computed: &[Option<Computed>],
) -> Result<Vec<Step>> {
    let mut verifier = Planner::new(identity, slot, (now, facts), authentic, Some(computed));
    run(authentic, sections, &mut verifier)?;
    Ok(verifier.trace)
}

/// One run; returns per component whether vendor-id and class-id passed for it.
fn run(
    authentic: &Authentic<'_>,
    sections: &[Section],
    planner: &mut Planner<'_>,
) -> Result<Vec<bool>> {
    let mut processor = Processor::new(authentic, planner);
    let result = if sections.iter().any(|&s| processor.has_section(s)) {
        processor.run(sections)
    } else {
        // Nothing to plan, but whether the manifest is meant for this device is still decided
        // (a manifest for another device is refused as such, not for installing nothing).
        processor.run_shared()
    };
    if let Err(error) = result {
        return Err(TaError::Processing {
            error,
            at: processor.location(),
        });
    }
    Ok((0..authentic.manifest.components.len())
        .map(|c| {
            processor.passed(c, Condition::VendorId) && processor.passed(c, Condition::ClassId)
        })
        .collect())
}

/// The refusal of a manifest with two successful paths.
fn alternatives(first: &[Planned], second: &[Planned]) -> TaError {
    let differing = first
        .iter()
        .find(|a| !second.iter().any(|b| b.item == a.item))
        .or_else(|| {
            second
                .iter()
                .find(|b| !first.iter().any(|a| a.item == b.item))
        })
        .map_or(String::from("the plan"), |p| {
            format!("component {}", p.item.index)
        });
    Error::Unsupported(format!(
        "the manifest accepts alternative contents ({differing} differs between them, e.g. \
         try-each over image-match); the TA approves exactly one content per component"
    ))
    .into()
}
