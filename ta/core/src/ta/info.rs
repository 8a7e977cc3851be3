//! What the TA tells: GET_INFO (identity, device key, limits, algorithms, floors, install
//! state), REPORT (the session's last attempt, signed), BOOT_VERIFY (what a slot may boot);
//! and PROVISION, the factory's one-time write of the fleet KEK and identity overrides.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use suit_shared::abi::{self, Algorithms, CommandId, Info, InstallState, Provisioning, SealedKek};
use suit_shared::auth::TrustAnchor;
use suit_shared::boot::{BootRecord, BootStatus};
use suit_shared::digest::DigestAlg;
use suit_shared::report::Report;
use suit_shared::{Category, Error};

use super::session::Session;
use super::Core;
use crate::error::{Result, TaError};
use crate::platform::{Clock, Rng, Storage};
use crate::state::Kek;

/// Digests of the algorithm profile (DESIGN.md §3): SHA-256 and SHA-384.
const PROFILE_DIGESTS: [DigestAlg; 2] = [DigestAlg::Sha256, DigestAlg::Sha384];

/// The manifest signature (or MAC) algorithms the trust anchors in force can verify, each
/// once, in anchor order.
pub(crate) fn signature_algorithms(anchors: &[TrustAnchor]) -> Vec<i64> {
    let mut algs = Vec::new();
    for anchor in anchors {
        for a in anchor.cose_algs() {
            if !algs.contains(a) {
                algs.push(*a);
            }
        }
    }
    algs
}

impl<S: Storage, R: Rng, C: Clock> Core<S, R, C> {
    pub(super) fn get_info(&mut self) -> Result<Info> {
        let storage = self.storage.kind();
        let (state, config) = self.loaded()?;
        let identity = Self::identity(state, config);
        Ok(Info {
            abi_version: abi::ABI_VERSION,
            max_chunk: u32::try_from(config.max_chunk).unwrap_or(u32::MAX),
            max_envelope: u32::try_from(config.max_envelope).unwrap_or(u32::MAX),
            algorithms: Algorithms {
                digest: PROFILE_DIGESTS.iter().map(|d| d.cose_id()).collect(),
                signature: signature_algorithms(Self::anchors(state, config).0),
                content_encryption: crate::crypto::CONTENT_ALGS.to_vec(),
                key_distribution: crate::crypto::KEY_DISTRIBUTION_ALGS.to_vec(),
            },
            vendor_id: identity.vendor_id,
            class_id: identity.class_id,
            device_id: identity.device_id,
            device_public_key: state.agreement_key.public_sec1().to_vec(),
            signing_public_key: state.signing_key()?.public_sec1().to_vec(),
            storage,
            provisioned: state.provisioned,
            kek_present: state.kek.is_some(),
            floors: state.floors.clone(),
            install: state.install.clone(),
            last_outcome: state.last_outcome,
        })
    }

    pub(super) fn report(&mut self, s: &Session, nonce: Option<Vec<u8>>) -> Result<Vec<u8>> {
        let attempt = s.attempt.as_ref().ok_or_else(|| {
            TaError::order(
                CommandId::Report,
                "this session has no update attempt to report",
            )
        })?;
        let report = Report {
            manifest_uri: attempt.manifest_uri.clone(),
            manifest_digest: attempt.manifest_digest.clone(),
            nonce,
            result: attempt.result.clone(),
        };
        let key = self.state()?.signing_key()?.private_key()?;
        Ok(report.sign(&*key)?)
    }

    /// BOOT_VERIFY: what `slot` may boot — its record, if the trial it belongs to is still
    /// pending (trial) or it was confirmed (good), and no component is below its floor.
    pub(super) fn boot_verify(&mut self, slot: u64) -> Result<BootRecord> {
        let state = self.state()?;
        let refuse = |reason: String, category| TaError::NotBootable {
            slot,
            reason,
            category,
        };
        let Some(record) = state.boot_record(slot) else {
            return Err(refuse(
                "the TA has no approval for it (never installed through the TA, or its trial was rolled back)"
                    .into(),
                Category::Policy,
            ));
        };
        if record.status == BootStatus::Trial {
            let pending = matches!(&state.install, InstallState::Trial(p)
                if p.slot == slot && p.sequence_number == record.sequence_number);
            if !pending {
                return Err(refuse(
                    "its trial is no longer pending".into(),
                    Category::Policy,
                ));
            }
        }
        if record.components.is_empty() {
            return Err(refuse(
                "its install has no component with content to verify".into(),
                Category::Policy,
            ));
        }
        for c in &record.components {
            let floor = state.floor(&c.component_id);
            if record.sequence_number < floor {
                return Err(refuse(
                    format!(
                        "its sequence number {} is below the anti-rollback floor {floor}",
                        record.sequence_number
                    ),
                    Category::Rollback,
                ));
            }
        }
        Ok(record.clone())
    }

    pub(super) fn provision(&mut self, p: &Provisioning) -> Result<()> {
        const CMD: CommandId = CommandId::Provision;
        if !self.config.factory {
            return Err(TaError::order(
                CMD,
                "this TA is a production build: provisioning is only available in a factory \
                 build (TA_FACTORY=1)",
            ));
        }
        if self.state()?.provisioned {
            return Err(TaError::order(
                CMD,
                "the device is already provisioned; provisioning is locked",
            ));
        }
        let kek = match &p.kek {
            Some(sealed) => Some(Kek {
                key: self.open_kek(sealed)?,
                kid: sealed.kid.clone(),
            }),
            None => None,
        };
        self.change_state(|st| {
            st.kek = kek;
            st.vendor_id = p.vendor_id.or(st.vendor_id);
            st.class_id = p.class_id.or(st.class_id);
            st.device_id = p.device_id.or(st.device_id);
            st.provisioned = true;
            Ok(())
        })
    }

    /// The fleet KEK of PROVISION, opened with the key-agreement key; a KEK in clear (the
    /// form before ABI 6) is refused by name.
    fn open_kek(&mut self, kek: &SealedKek) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        if kek.kid.len() > abi::MAX_KID || kek.sealed.len() > abi::MAX_SEALED_KEK {
            return Err(Error::InvalidValue {
                context: "PROVISION",
                element: "sealed KEK",
                reason: "its key id or its COSE_Encrypt is longer than the ABI allows",
            }
            .into());
        }
        if matches!(kek.sealed.len(), 16 | 32) {
            return Err(Error::Unsupported(String::from(
                "a fleet KEK in clear: PROVISION takes it sealed to the device's key-agreement \
                 key (suit-tool wrap-kek)",
            ))
            .into());
        }
        Ok(crate::crypto::open_sealed_kek(&kek.sealed, self.state()?)?)
    }
}
