//! What the TA approves for boot: per slot, the sequence number, trial or good, and for each
//! component written there the dm-verity parameters of its approved plaintext
//! ([`crate::verity`]). The TA records it with COMMIT (trial) and CONFIRM (good), withdraws a
//! trial with ROLLBACK, and answers BOOT_VERIFY with it; the boot stage maps the slot through
//! dm-verity with these values only.
//!
//! ```text
//! boot-record = [slot, sequence-number, status (0 trial, 1 good), [boot-component...]]
//! boot-component = [component-id, root (32 bytes), salt, data-blocks]
//! ```

use alloc::vec::Vec;

use crate::abi::{read_component_id, write_component_id};
use crate::cbor::{Reader, Writer};
use crate::codec::Codec;
use crate::component::ComponentId;
use crate::error::{Error, Result};
use crate::verity::{VerityParams, DIGEST_LEN, MAX_SALT_LEN};

/// Whether a slot's approval is for its trial boots or for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootStatus {
    /// Committed, awaiting CONFIRM: approved while the install is pending.
    Trial,
    /// Confirmed.
    Good,
}

impl BootStatus {
    /// Lower-case name for messages and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            BootStatus::Trial => "trial",
            BootStatus::Good => "good",
        }
    }
}

/// One component of a slot as approved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootComponent {
    /// The component id.
    pub component_id: ComponentId,
    /// The dm-verity tree of its approved plaintext.
    pub verity: VerityParams,
}

impl BootComponent {
    /// A component from its parts as stored or sent: a 32-byte root, a salt of at most
    /// [`MAX_SALT_LEN`] bytes and at least one data block.
    pub fn new(
        component_id: ComponentId,
        root: &[u8],
        salt: &[u8],
        data_blocks: u64,
    ) -> Result<Self> {
        let root =
            <[u8; DIGEST_LEN]>::try_from(root).map_err(|_| invalid("root", "not 32 bytes"))?;
        if salt.len() > MAX_SALT_LEN {
            return Err(invalid("salt", "longer than 256 bytes"));
        }
        if data_blocks == 0 {
            return Err(invalid("data-blocks", "zero"));
        }
        Ok(BootComponent {
            component_id,
            verity: VerityParams {
                root,
                salt: salt.to_vec(),
                data_blocks,
            },
        })
    }
}

/// What the TA approved for one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootRecord {
    /// The slot (component-slot number).
    pub slot: u64,
    /// The manifest's sequence number.
    pub sequence_number: u64,
    /// Trial or good.
    pub status: BootStatus,
    /// The components written to the slot, in plan order.
    pub components: Vec<BootComponent>,
}

/// On the ABI: `[slot, sequence-number, status, [boot-component...]]`, checked on read.
impl Codec<BootRecord> for BootRecord {
    fn write(value: &BootRecord, w: &mut Writer) {
        write_boot_record(w, value);
    }
    fn read(r: &mut Reader<'_>) -> Result<BootRecord> {
        read_boot_record(r)
    }
}

/// Writes a boot record.
pub fn write_boot_record(w: &mut Writer, r: &BootRecord) {
    w.array(4)
        .u64(r.slot)
        .u64(r.sequence_number)
        .u64(match r.status {
            BootStatus::Trial => 0,
            BootStatus::Good => 1,
        });
    w.array(r.components.len());
    for c in &r.components {
        w.array(4);
        write_component_id(w, &c.component_id);
        w.bytes(&c.verity.root)
            .bytes(&c.verity.salt)
            .u64(c.verity.data_blocks);
    }
}

fn invalid(element: &'static str, reason: &'static str) -> Error {
    Error::InvalidValue {
        context: "boot record",
        element,
        reason,
    }
}

/// Reads a boot record.
pub fn read_boot_record(r: &mut Reader<'_>) -> Result<BootRecord> {
    r.array_of(4, "boot record")?;
    let slot = r.u64()?;
    let sequence_number = r.u64()?;
    let status = match r.u64()? {
        0 => BootStatus::Trial,
        1 => BootStatus::Good,
        _ => return Err(invalid("status", "neither 0 (trial) nor 1 (good)")),
    };
    let n = r.array()?;
    let mut components = Vec::new();
    for _ in 0..n {
        r.array_of(4, "[component-id, root, salt, data-blocks]")?;
        components.push(BootComponent::new(
            read_component_id(r)?,
            r.bytes()?,
            r.bytes()?,
            r.u64()?,
        )?);
    }
    Ok(BootRecord {
        slot,
        sequence_number,
        status,
        components,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn sample() -> BootRecord {
        BootRecord {
            slot: 1,
            sequence_number: 7,
            status: BootStatus::Trial,
            components: vec![BootComponent {
                component_id: ComponentId::new([b"rootfs"]),
                verity: VerityParams {
                    root: [9; 32],
                    salt: vec![1, 2, 3],
                    data_blocks: 2048,
                },
            }],
        }
    }

    fn encode(r: &BootRecord) -> Vec<u8> {
        let mut w = Writer::new();
        write_boot_record(&mut w, r);
        w.into_bytes()
    }

    #[test]
    fn round_trip() {
        for status in [BootStatus::Trial, BootStatus::Good] {
            let mut r = sample();
            r.status = status;
            let bytes = encode(&r);
            let back = Reader::decode_exact(&bytes, "t", read_boot_record).unwrap();
            assert_eq!(back, r);
        }
    }

    #[test]
    fn boot_verify_travels_on_the_abi() {
        use crate::abi::{decode_response, encode_response, CommandId, Reply, Request};
        let req = Request::BootVerify { slot: 1 };
        assert_eq!(req.command(), CommandId::BootVerify);
        assert_eq!(CommandId::from_u32(13), Some(CommandId::BootVerify));
        assert_eq!(
            Request::decode(CommandId::BootVerify, &req.encode()).unwrap(),
            req
        );
        let reply = Reply::Boot(sample());
        let bytes = encode_response(&Ok(reply.clone()));
        assert_eq!(
            decode_response(CommandId::BootVerify, &bytes).unwrap(),
            Ok(reply)
        );
    }

    #[test]
    fn malformed_records_are_refused() {
        let mut bad_status = sample();
        bad_status.status = BootStatus::Good;
        let mut bytes = encode(&bad_status);
        // [slot, seq, status...]: the status is the fourth byte (0x84 01 07 01)
        assert_eq!(bytes[3], 1);
        bytes[3] = 2;
        assert!(Reader::decode_exact(&bytes, "t", read_boot_record).is_err());
        let mut zero = sample();
        zero.components[0].verity.data_blocks = 0;
        assert!(Reader::decode_exact(&encode(&zero), "t", read_boot_record).is_err());
        let mut long = sample();
        long.components[0].verity.salt = vec![0; 257];
        assert!(Reader::decode_exact(&encode(&long), "t", read_boot_record).is_err());
        let bytes = encode(&sample());
        for cut in 0..bytes.len() {
            assert!(Reader::decode_exact(&bytes[..cut], "t", read_boot_record).is_err());
        }
    }
}
