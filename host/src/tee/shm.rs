//! The layout of an OP-TEE session's shared memory (see [`super::optee`]): one buffer per
//! session holds the four parameters of an invoke side by side, and grows (rarely) when an
//! invoke needs more.

/// The smallest session buffer, and the unit it grows by.
const UNIT: usize = 64 * 1024;
/// Where each parameter's region starts in the session buffer is a multiple of this.
const ALIGN: usize = 64;

/// A part of a shared buffer: `len` bytes from `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Offset from the start of the buffer.
    pub offset: usize,
    /// Length in bytes.
    pub len: usize,
}

impl Region {
    /// Its bytes in `bytes`, if it lies inside.
    pub fn of<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        bytes.get(self.offset..self.offset.checked_add(self.len)?)
    }

    /// Its bytes in `bytes`, if it lies inside.
    pub fn of_mut<'a>(&self, bytes: &'a mut [u8]) -> Option<&'a mut [u8]> {
        bytes.get_mut(self.offset..self.offset.checked_add(self.len)?)
    }
}

/// The size of a session buffer that replaces one of `current` bytes too small for `needed`:
/// at least double, so that a session registers shared memory O(log(largest invoke)) times,
/// in practice once or twice (its first command, then the first chunk of a stream).
pub fn grown(current: usize, needed: usize) -> usize {
    needed
        .max(current.saturating_mul(2))
        .max(UNIT)
        .div_ceil(UNIT)
        .saturating_mul(UNIT)
}

/// Where the four parameters of an invoke go in the session buffer, in order, `lens[n]` bytes
/// each, disjoint; and the buffer size they need.
pub fn layout(lens: [usize; 4]) -> ([Region; 4], usize) {
    let mut regions = [Region { offset: 0, len: 0 }; 4];
    let mut end = 0usize;
    for (region, len) in regions.iter_mut().zip(lens) {
        let offset = end.div_ceil(ALIGN).saturating_mul(ALIGN);
        *region = Region { offset, len };
        end = offset.saturating_add(len);
    }
    (regions, end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use suit_shared::abi::{self, CommandId};
    use suit_shared::encryption::GCM_TAG_LEN;
    use suit_shared::verity::BLOCK_SIZE;

    /// The parameter sizes `Tee::call` gives an invoke of `command` with `data_in` bytes.
    fn lens(command: CommandId, request: usize, data_in: usize) -> [usize; 4] {
        let out = data_in + abi::DECRYPT_OUTPUT_SLACK + BLOCK_SIZE;
        [request, command.response_capacity(), data_in, out]
    }

    #[test]
    fn a_session_registers_its_buffer_at_most_twice_for_a_stream_of_any_length() {
        let full = abi::STREAM_HASH_ROOM + abi::MAX_CHUNK_LIMIT;
        // GET_INFO, LOAD_MANIFEST, then 4096 chunks (4 GiB) with fewer hash blocks than the
        // first, the last one carrying the AEAD tag, then STREAM_FINAL and COMMIT.
        let invokes = [
            lens(CommandId::GetInfo, 16, 0),
            lens(CommandId::LoadManifest, 8192, 0),
            lens(CommandId::StreamUpdate, 64, full),
        ]
        .into_iter()
        .chain((1..4096).map(|n| {
            let hashes = (n % 3) * BLOCK_SIZE;
            let tag = if n == 4095 { GCM_TAG_LEN } else { 0 };
            lens(
                CommandId::StreamUpdate,
                64,
                hashes + abi::MAX_CHUNK_LIMIT + tag,
            )
        }))
        .chain([
            lens(CommandId::StreamFinal, 16, 0),
            lens(CommandId::Commit, 1024, 0),
        ]);
        let (mut size, mut registrations, mut largest) = (0, 0, 0);
        for lens in invokes {
            let (regions, needed) = layout(lens);
            for (region, len) in regions.iter().zip(lens) {
                assert_eq!(region.len, len);
                assert!(region.offset + len <= needed);
            }
            for pair in regions.windows(2) {
                assert!(
                    pair[0].offset + pair[0].len <= pair[1].offset,
                    "{regions:?}"
                );
            }
            largest = largest.max(needed);
            if size < needed {
                size = grown(size, needed);
                registrations += 1;
            }
        }
        assert_eq!(registrations, 2);
        assert!(
            size < 2 * largest,
            "{size} bytes for invokes of at most {largest}"
        );
    }

    #[test]
    fn regions_outside_the_buffer_are_none() {
        let bytes = [0u8; 16];
        assert_eq!(Region { offset: 8, len: 8 }.of(&bytes), Some(&bytes[8..]));
        assert_eq!(Region { offset: 8, len: 9 }.of(&bytes), None);
        assert_eq!(
            Region {
                offset: usize::MAX,
                len: 2
            }
            .of(&bytes),
            None
        );
        let mut bytes = bytes;
        let tail = Region { offset: 12, len: 4 };
        assert_eq!(tail.of_mut(&mut bytes).map(|b| b.len()), Some(4));
        let beyond = Region { offset: 12, len: 5 };
        assert_eq!(beyond.of_mut(&mut bytes), None);
    }
}
