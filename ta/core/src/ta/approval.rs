//! Approval: LOAD_MANIFEST authenticates and plans an envelope, PAYLOAD_UPDATE/FINAL stream a
//! component's bytes through the TA and sign an approval token, DECRYPT_FOR_INSTALL decrypts
//! an approved component again for writing and re-checks it against the approval.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use suit_shared::abi::{
    self, Approval, CommandId, Decrypted, DeviceFacts, InstallState, Plan, PlanItem,
};
use suit_shared::digest::{DigestAlg, DigestValue};
use suit_shared::manifest::AuthenticEnvelope;
use suit_shared::token::{Claims, Token, NONCE_LEN};
use suit_shared::Error;

use super::session::{Item, ItemState, Session, SessionId, Update};
use super::transport::Data;
use super::{fits, offset_error, token_error, Core, SECTIONS};
use crate::error::{Result, TaError};
use crate::plan::{self, Computed};
use crate::platform::{Clock, Rng, Storage};
use crate::stream::{Decrypt, PayloadStream};

/// What a token for `item` of `update` states, given what the TA computed.
pub(super) fn claims(
    update: &Update,
    item: &PlanItem,
    computed: &Computed,
    nonce: [u8; NONCE_LEN],
) -> Claims {
    Claims {
        manifest_digest: update.manifest_digest.clone(),
        sequence_number: update.sequence_number,
        component_id: item.component_id.clone(),
        slot: update.slot,
        image_digest: computed.digest.clone(),
        image_size: computed.size,
        nonce,
        verifier_nonce: update.verifier_nonce.clone(),
    }
}

impl<S: Storage, R: Rng, C: Clock> Core<S, R, C> {
    pub(super) fn load_manifest(
        &mut self,
        id: SessionId,
        s: &mut Session,
        slot: u64,
        verifier_nonce: Option<Vec<u8>>,
        facts: DeviceFacts,
        envelope: &[u8],
    ) -> Result<Plan> {
        const CMD: CommandId = CommandId::LoadManifest;
        if s.update.is_some() {
            return Err(TaError::order(
                CMD,
                "this session already holds an update; ABORT it first",
            ));
        }
        if self.update_owner.is_some_and(|owner| owner != id) {
            return Err(TaError::order(
                CMD,
                "another session has an update in progress",
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
        if let InstallState::Trial(p) = &state.install {
            return Err(TaError::order(
                CMD,
                format!(
                    "an install (sequence number {}, slot {}) is pending: CONFIRM or ROLLBACK it first",
                    p.sequence_number, p.slot
                ),
            ));
        }
        // The envelope is already a copy in TA memory (REQ.SEC.MFST.CONST); parse only after
        // authentication. The session keeps it authenticated for COMMIT's second run.
        let (anchors, policy) = Self::anchors(state, config);
        let (envelope, (manifest_digest, plan::Plan { items, trace }, sequence_number)) =
            AuthenticEnvelope::authenticate(envelope.to_vec(), anchors, policy, |authentic| {
                let manifest = &authentic.manifest;
                let auth = authentic
                    .envelope
                    .auth
                    .as_ref()
                    .ok_or(TaError::Suit(Error::BareManifest))?;
                let manifest_digest = DigestValue::new(auth.digest.alg, auth.digest.bytes).ok_or(
                    Error::InvalidValue {
                        context: "authentication wrapper",
                        element: "digest",
                        reason: "length does not match its algorithm",
                    },
                )?;
                let uri = manifest.reference_uri.map(String::from).unwrap_or_default();
                s.authenticated = Some((uri, manifest_digest.clone()));
                for component in &manifest.components {
                    if suit_shared::anchors::is_anchor_component(component) {
                        return Err(TaError::order(
                            CMD,
                            "the manifest is a trust-anchor update: it goes to UPDATE_ANCHORS",
                        ));
                    }
                    let size =
                        suit_shared::codec::to_bytes::<_, abi::ComponentIdCodec>(component).len();
                    if size > abi::MAX_COMPONENT_ID {
                        return Err(TaError::TooLarge {
                            what: "a component id",
                            size,
                            limit: abi::MAX_COMPONENT_ID,
                        });
                    }
                    manifest.check_sequence_number(state.floor(component))?;
                }
                let identity = Self::identity(state, config);
                let planned = plan::plan(authentic, &SECTIONS, &identity, slot, now, facts)?;
                Ok((manifest_digest, planned, manifest.sequence_number))
            })?;
        for planned in &items {
            if let Some(info) = &planned.item.encryption_info {
                crate::crypto::check_recipient(info, state)?;
            }
        }
        let plan = Plan {
            manifest_digest: manifest_digest.clone(),
            sequence_number,
            slot,
            items: items.iter().map(|p| p.item.clone()).collect(),
        };
        s.update = Some(Update {
            envelope,
            manifest_digest,
            sequence_number,
            slot,
            items: items
                .into_iter()
                .map(|p| Item {
                    plan: p.item,
                    staging: p.staging,
                    payload: p.payload,
                    fetched_payload: p.fetched_payload,
                    fetched: None,
                    verity: None,
                    state: ItemState::Pending,
                    verified_token: None,
                })
                .collect(),
            trace,
            committed: false,
            verifier_nonce,
            facts,
        });
        self.update_owner = Some(id);
        Ok(plan)
    }

    fn new_stream(
        &mut self,
        item: &PlanItem,
        alg: DigestAlg,
        limit: Option<u64>,
    ) -> Result<PayloadStream> {
        let decryptor: Option<Box<dyn Decrypt>> = match &item.encryption_info {
            None => None,
            Some(info) => Some(crate::crypto::decryptor(info, self.state()?)?),
        };
        Ok(PayloadStream::new(
            item.index as usize,
            alg,
            limit,
            decryptor,
        ))
    }

    /// The stream for PAYLOAD_UPDATE: the plaintext checked against the plan, and the bytes as
    /// they arrive against the staging component's expectations.
    fn payload_stream(&mut self, plan: &PlanItem) -> Result<PayloadStream> {
        let alg = plan
            .digest
            .as_ref()
            .map_or(DigestAlg::Sha256, DigestValue::alg);
        // dm-verity salt: the image digest the manifest declares, known before the first byte.
        let salt = plan.digest.as_ref().map_or(&[][..], DigestValue::as_bytes);
        let stream = self.new_stream(plan, alg, plan.size)?.with_verity(salt)?;
        Ok(match (&plan.fetch_digest, plan.fetch_size) {
            (None, None) => stream,
            (digest, size) => stream.with_fetched(
                digest.as_ref().map_or(DigestAlg::Sha256, DigestValue::alg),
                size,
            ),
        })
    }

    pub(super) fn payload_update(
        &mut self,
        s: &mut Session,
        component: u32,
        offset: u64,
        chunk: &Data<'_>,
    ) -> Result<()> {
        const CMD: CommandId = CommandId::PayloadUpdate;
        let update = s.open_update(CMD)?;
        let at = update.position(CMD, component)?;
        let item = &mut update.items[at];
        let mut stream = match core::mem::replace(&mut item.state, ItemState::Pending) {
            ItemState::Streaming(stream) if offset != 0 && offset != stream.received() => {
                let received = stream.received();
                item.state = ItemState::Streaming(stream);
                return Err(offset_error(CMD, component, offset, received));
            }
            ItemState::Streaming(stream) if offset != 0 => stream,
            ItemState::Pending | ItemState::OnePass(_) if offset != 0 => {
                return Err(offset_error(CMD, component, offset, 0));
            }
            ItemState::Pending | ItemState::Streaming(_) | ItemState::OnePass(_) => {
                self.payload_stream(&item.plan)?
            }
            other => {
                item.state = other;
                return Err(TaError::order(
                    CMD,
                    format!("component {component} is already approved"),
                ));
            }
        };
        // On error the item stays Pending: the agent may stream it again from the start.
        chunk.pieces(0..chunk.len(), |piece| Ok(stream.update(piece, None)?))?;
        item.state = ItemState::Streaming(stream);
        Ok(())
    }

    /// The approval token of item `at` for the image `computed`, signed with the device
    /// key, refused when it does not fit the reply's `capacity`.
    pub(super) fn sign_approval(
        &mut self,
        update: &Update,
        at: usize,
        computed: &Computed,
        nonce: [u8; NONCE_LEN],
        capacity: usize,
    ) -> Result<Approval> {
        let key = self.state()?.signing_key()?.private_key()?;
        let token = claims(update, &update.items[at].plan, computed, nonce).sign(&*key)?;
        let approval = Approval {
            token,
            digest: computed.digest.clone(),
            size: computed.size,
        };
        fits(&approval, capacity)?;
        Ok(approval)
    }

    pub(super) fn payload_final(
        &mut self,
        s: &mut Session,
        component: u32,
        capacity: usize,
    ) -> Result<Approval> {
        const CMD: CommandId = CommandId::PayloadFinal;
        let nonce = s.nonce;
        let update = s.open_update(CMD)?;
        let at = update.position(CMD, component)?;
        let item = &mut update.items[at];
        let stream = match core::mem::replace(&mut item.state, ItemState::Pending) {
            ItemState::Streaming(stream) => stream,
            ItemState::Pending | ItemState::OnePass(_) => self.payload_stream(&item.plan)?,
            other => {
                item.state = other;
                return Err(TaError::order(
                    CMD,
                    format!("component {component} is already approved"),
                ));
            }
        };
        let plan = &item.plan;
        let index = plan.index as usize;
        let staging = item.staging.unwrap_or(index);
        let (computed, fetched, verity) = stream.finish_verified(None, |fetched| {
            if let Some(size) = plan.fetch_size {
                if size != fetched.size {
                    return Err(Error::ImageSizeMismatch {
                        component: staging,
                        expected: size,
                        actual: fetched.size,
                    });
                }
            }
            match &plan.fetch_digest {
                Some(digest) if !digest.as_suit_digest().matches(&fetched.digest) => {
                    Err(Error::ImageDigestMismatch { component: staging })
                }
                _ => Ok(()),
            }
        })?;
        if let Some(size) = plan.size {
            if size != computed.size {
                return Err(Error::ImageSizeMismatch {
                    component: index,
                    expected: size,
                    actual: computed.size,
                }
                .into());
            }
        }
        if let Some(digest) = &plan.digest {
            if !digest.as_suit_digest().matches(&computed.digest) {
                return Err(Error::ImageDigestMismatch { component: index }.into());
            }
        }
        // The stream is consumed: on a reply too large the component streams again from 0.
        let approval = self.sign_approval(update, at, &computed, nonce, capacity)?;
        let item = &mut update.items[at];
        item.fetched = fetched;
        item.verity = verity;
        item.state = ItemState::Approved(computed);
        Ok(approval)
    }

    /// Checks that `token` verifies with the device key and states exactly `expected`.
    ///
    /// `verified` is the item's last token that passed, with the claims it passed for: the
    /// same bytes against the same claims pass again without a signature verification (a
    /// pure function of token, claims and device key; under OP-TEE's software ECC a P-384
    /// verification costs about a second per DECRYPT_FOR_INSTALL chunk otherwise).
    pub(super) fn check_token(
        &mut self,
        verified: &mut Option<(Vec<u8>, Claims)>,
        token: &[u8],
        expected: &Claims,
    ) -> Result<()> {
        if verified
            .as_ref()
            .is_some_and(|(t, c)| t.as_slice() == token && c == expected)
        {
            return Ok(());
        }
        let key = self.state()?.signing_key()?.public_sec1();
        let token_ok = Token::verify(token, key).map_err(token_error)?;
        if token_ok.claims != *expected {
            return Err(TaError::Token(String::from(
                "it does not approve this session's component (another session, manifest, \
                 component, slot or image)",
            )));
        }
        *verified = Some((token.to_vec(), token_ok.claims));
        Ok(())
    }

    pub(super) fn decrypt_for_install(
        &mut self,
        s: &mut Session,
        component: u32,
        token: &[u8],
        (offset, last): (u64, bool),
        chunk: &mut Data<'_>,
    ) -> Result<Decrypted> {
        const CMD: CommandId = CommandId::DecryptForInstall;
        let nonce = s.nonce;
        let update = s.open_update(CMD)?;
        let at = update.position(CMD, component)?;
        let item = &update.items[at];
        if item.plan.encryption_info.is_none() {
            return Err(TaError::order(
                CMD,
                format!(
                    "component {component} is not encrypted: write the approved bytes as they are"
                ),
            ));
        }
        let Some(approved) = item.approved().cloned() else {
            return Err(TaError::order(
                CMD,
                format!("component {component} is not approved (PAYLOAD_FINAL first)"),
            ));
        };
        let expected = claims(update, &item.plan, &approved, nonce);
        let item = &mut update.items[at];
        self.check_token(&mut item.verified_token, token, &expected)?;
        let stream =
            match core::mem::replace(&mut item.state, ItemState::Approved(approved.clone())) {
                ItemState::Installing(c, stream) if offset != 0 && offset != stream.received() => {
                    let received = stream.received();
                    item.state = ItemState::Installing(c, stream);
                    return Err(offset_error(CMD, component, offset, received));
                }
                ItemState::Installing(_, stream) if offset != 0 => Some(stream),
                previous if offset != 0 => {
                    item.state = previous;
                    return Err(offset_error(CMD, component, offset, 0));
                }
                // Offset 0: (re)start; an Installed component may be written again.
                _ => None,
            };
        let mut stream = match stream {
            Some(stream) => stream,
            None => self.new_stream(&item.plan, approved.digest.alg(), Some(approved.size))?,
        };
        // Piece by piece from the shared memory into TA memory, decrypted there, the
        // plaintext written to the data out.
        let mut written = chunk.transform(0..chunk.len(), 0, |piece, out| {
            Ok(stream.update(piece, Some(out))?)
        })?;
        let written_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        if !last {
            item.state = ItemState::Installing(approved, stream);
            return Ok(Decrypted {
                written: written_u32(written),
                done: false,
            });
        }
        let mut tail = Vec::new();
        let (again, _) = stream.finish(Some(&mut tail), |_| Ok(()))?;
        if again != approved {
            return Err(Error::ImageDigestMismatch {
                component: item.plan.index as usize,
            }
            .into());
        }
        chunk.write(written, &tail)?;
        written += tail.len();
        item.state = ItemState::Installed(approved);
        Ok(Decrypted {
            written: written_u32(written),
            done: true,
        })
    }
}
