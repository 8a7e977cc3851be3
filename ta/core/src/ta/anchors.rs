//! UPDATE_ANCHORS: the trust-anchor set rotated by a signed SUIT manifest for the component
//! [`suit_shared::anchors::COMPONENT`] (payload format there).
//!
//! The envelope is authenticated under the set **in force** (a retired key no longer signs
//! anything, an added one signs the next update), its sequence number must exceed the last
//! anchor update's (the anchor set's own anti-rollback floor, stored with the set in the one
//! state object), its shared sequence runs for real (vendor and class checks) and its payload,
//! integrated in the envelope, must match the manifest's image digest and size. The new set
//! replaces the old one in the same atomic state write as its sequence number; any refusal
//! leaves both as they were.

use suit_shared::abi::{CommandId, DeviceFacts, PayloadSource};
use suit_shared::anchors::{self, AnchorSet, AnchorUpdate};
use suit_shared::crypto::SigAlg;
use suit_shared::manifest::AuthenticEnvelope;
use suit_shared::Error;

use super::{Core, SECTIONS};
use crate::error::{Result, TaError};
use crate::plan;
use crate::platform::{Clock, Rng, Storage};

impl<S: Storage, R: Rng, C: Clock> Core<S, R, C> {
    pub(super) fn update_anchors(&mut self, envelope: &[u8]) -> Result<()> {
        const CMD: CommandId = CommandId::UpdateAnchors;
        if self.update_owner.is_some() {
            return Err(TaError::order(
                CMD,
                "an update is in progress (authenticated under the anchors in force); finish or \
                 ABORT it first",
            ));
        }
        if envelope.len() > self.config.max_envelope {
            return Err(TaError::TooLarge {
                what: "the envelope",
                size: envelope.len(),
                limit: self.config.max_envelope,
            });
        }
        let now = self.clock.now();
        let (state, config) = self.loaded()?;
        let (current, policy) = Self::anchors(state, config);
        let current = AnchorSet {
            policy,
            anchors: current.to_vec(),
        };
        let identity = Self::identity(state, config);
        let floor = state.anchor_sequence;
        let (_, (next, sequence)) =
            AuthenticEnvelope::authenticate(envelope.to_vec(), &current.anchors, policy, |a| {
                let manifest = &a.manifest;
                if !matches!(&manifest.components[..], [only] if anchors::is_anchor_component(only))
                {
                    return Err(TaError::Refused(
                        "an anchor update names the trust-anchor component and nothing else".into(),
                    ));
                }
                if manifest.sequence_number <= floor {
                    return Err(Error::Rollback {
                        sequence: manifest.sequence_number,
                        floor: floor.saturating_add(1),
                    }
                    .into());
                }
                let planned = plan::plan(a, &SECTIONS, &identity, 0, now, DeviceFacts::default())?;
                let [planned] = &planned.items[..] else {
                    return Err(TaError::Refused(
                        "an anchor update installs exactly one payload".into(),
                    ));
                };
                let item = &planned.item;
                let (PayloadSource::Integrated(key), None, Some(digest), Some(size)) =
                    (&item.source, &item.encryption_info, &item.digest, item.size)
                else {
                    return Err(TaError::Refused(
                        "an anchor update's payload is integrated in the envelope, in clear, \
                         with an image digest and size"
                            .into(),
                    ));
                };
                let payload = a
                    .envelope
                    .integrated(key)
                    .ok_or_else(|| Error::IntegratedPayloadMissing(key.clone()))?;
                if payload.len() as u64 != size {
                    return Err(Error::ImageSizeMismatch {
                        component: 0,
                        expected: size,
                        actual: payload.len() as u64,
                    }
                    .into());
                }
                if digest.alg().digest(payload) != *digest {
                    return Err(Error::ImageDigestMismatch { component: 0 }.into());
                }
                let next = current.apply(&AnchorUpdate::decode(payload)?, SigAlg::is_linked)?;
                Ok::<_, TaError>((next, manifest.sequence_number))
            })?;
        self.change_state(|s| {
            s.anchors = Some(next);
            s.anchor_sequence = sequence;
            Ok(())
        })
    }
}
