//! Tests of the strict reader, the writer and the COSE pre-check.

use super::*;
use alloc::vec;

#[test]
fn writer_round_trips_integers() {
    for v in [
        0i64,
        23,
        24,
        255,
        256,
        65535,
        65536,
        u32::MAX as i64 + 1,
        i64::MAX,
        -1,
        -24,
        -25,
        -257,
        i64::MIN,
    ] {
        let mut w = Writer::new();
        w.i64(v);
        let bytes = w.into_bytes();
        assert_eq!(Reader::decode_exact(&bytes, "t", |r| r.i64()).unwrap(), v);
    }
}

#[test]
fn rejects_trailing_bytes() {
    let err = Reader::decode_exact(&[0x01, 0x02], "test", |r| r.u64()).unwrap_err();
    assert_eq!(
        err,
        Error::TrailingBytes {
            context: "test",
            count: 1
        }
    );
}

#[test]
fn rejects_indefinite_items() {
    for bytes in [
        &[0x9f, 0xff][..],
        &[0xbf, 0xff],
        &[0x5f, 0xff],
        &[0x7f, 0xff],
    ] {
        let err = Reader::decode_exact(bytes, "test", |r| r.skip()).unwrap_err();
        assert!(
            matches!(err, Error::IndefiniteLength { offset: 0, .. }),
            "{err:?}"
        );
    }
}

#[test]
fn rejects_duplicate_keys() {
    // {1: 0, 1: 0}
    let err = Reader::decode_exact(&[0xa2, 0x01, 0x00, 0x01, 0x00], "test", |r| {
        let mut m = r.map()?;
        while m.next_entry() {
            r.map_key(&mut m)?;
            r.skip()?;
        }
        Ok(())
    })
    .unwrap_err();
    assert_eq!(
        err,
        Error::DuplicateKey {
            context: "test",
            key: MapKey::Int(1)
        }
    );
}

/// `{0: 0, 1: 0, ...}` with `n` entries (n < 2^16).
fn int_map(n: usize) -> Vec<u8> {
    let mut bytes = vec![0xb9, (n >> 8) as u8, n as u8];
    for k in 0..n {
        match k {
            0..=23 => bytes.push(k as u8),
            24..=255 => bytes.extend([0x18, k as u8]),
            _ => bytes.extend([0x19, (k >> 8) as u8, k as u8]),
        }
        bytes.push(0x00);
    }
    bytes
}

fn read_int_map(bytes: &[u8]) -> Result<usize> {
    Reader::decode_exact(bytes, "test", |r| {
        let mut m = r.map()?;
        let mut n = 0;
        while m.next_entry() {
            r.map_key(&mut m)?;
            r.skip()?;
            n += 1;
        }
        Ok(n)
    })
}

#[test]
fn bounds_map_entries() {
    assert_eq!(read_int_map(&int_map(MAX_MAP_ENTRIES)), Ok(MAX_MAP_ENTRIES));
    assert_eq!(
        read_int_map(&int_map(MAX_MAP_ENTRIES + 1)),
        Err(Error::LimitExceeded {
            what: "CBOR map entries",
            limit: MAX_MAP_ENTRIES
        })
    );
}

#[test]
fn raw_item_takes_exactly_one_scalar() {
    // Each item followed by a 0x00 that must stay unread.
    for item in [
        &[0x17][..],                           // 23
        &[0x18, 0x18],                         // 24
        &[0x3b, 0, 0, 0, 0, 0, 0, 0, 1],       // -2
        &[0x43, 1, 2, 3],                      // h'010203'
        &[0x62, b'h', b'i'],                   // "hi"
        &[0xf5],                               // true
        &[0xf8, 0x20],                         // simple(32)
        &[0xf9, 0x3c, 0x00],                   // 1.0 (half)
        &[0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0], // 1.0 (double)
    ] {
        let mut bytes = item.to_vec();
        bytes.push(0x00);
        let mut r = Reader::new(&bytes, "test");
        assert_eq!(r.raw_item(), Ok(item), "{item:02x?}");
        assert_eq!(r.position(), item.len());
    }
}

#[test]
fn skip_refuses_malformed_scalars() {
    for bad in [
        &[0x1c][..],                           // reserved additional information
        &[0x19, 0x01],                         // truncated argument
        &[0x44, 1, 2, 3],                      // byte string shorter than its length
        &[0x7a, 0xff, 0xff, 0xff, 0xff, b'a'], // text string far past the end
        &[0xf8, 0x10],                         // simple value below 32 in two bytes
    ] {
        let err = Reader::new(bad, "test").skip().unwrap_err();
        assert!(
            matches!(
                err,
                Error::Cbor {
                    expected: "a well-formed item",
                    ..
                }
            ),
            "{bad:02x?}: {err:?}"
        );
    }
}

#[test]
fn bounds_nesting() {
    let mut deep = alloc::vec![0x81u8; 40];
    deep.push(0x00);
    let err = Reader::decode_exact(&deep, "test", |r| r.skip()).unwrap_err();
    assert!(matches!(err, Error::LimitExceeded { .. }));
}

/// A COSE_Sign1 whose protected header maps label 100 to `value`.
fn sign1_with_protected(value: &[u8]) -> alloc::vec::Vec<u8> {
    let mut protected = Writer::new();
    protected.map(1).u64(100).raw(value);
    let mut w = Writer::new();
    w.tag(18)
        .array(4)
        .bytes(&protected.into_bytes())
        .map(0)
        .null()
        .bytes(&[0; 64]);
    w.into_bytes()
}

fn nested(depth: usize) -> alloc::vec::Vec<u8> {
    let mut v = alloc::vec![0x81u8; depth];
    v.push(0);
    v
}

#[test]
fn cose_precheck_bounds_nesting_inside_protected_headers() {
    // The protected header map is one level: 15 arrays inside it are the most accepted.
    check_cose(&sign1_with_protected(&nested(MAX_FOREIGN_DEPTH - 1)), "t").unwrap();
    let err = check_cose(&sign1_with_protected(&nested(MAX_FOREIGN_DEPTH)), "t").unwrap_err();
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                what: "CBOR nesting depth",
                ..
            }
        ),
        "{err:?}"
    );
    // Deep nesting in the unprotected header or anywhere else in the structure, too.
    let mut w = Writer::new();
    w.tag(18)
        .array(4)
        .bytes(&[])
        .map(1)
        .u64(100)
        .raw(&nested(40));
    w.null().bytes(&[]);
    assert!(matches!(
        check_cose(&w.into_bytes(), "t"),
        Err(Error::LimitExceeded { .. })
    ));
}

#[test]
fn cose_precheck_bounds_items_and_refuses_counter_signatures() {
    // 600 empty arrays: shallow, but one decoder value each.
    let mut many = Writer::new();
    many.array(600);
    for _ in 0..600 {
        many.array(0);
    }
    let err = check_cose(&sign1_with_protected(&many.into_bytes()), "t").unwrap_err();
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                what: "CBOR items in a COSE structure",
                ..
            }
        ),
        "{err:?}"
    );
    // A counter signature carries a protected header of its own, decoded recursively.
    let mut w = Writer::new();
    w.tag(18).array(4).bytes(&[]).map(1).u64(7);
    w.array(3).bytes(&[]).map(0).bytes(&[0; 8]);
    w.null().bytes(&[]);
    assert!(matches!(
        check_cose(&w.into_bytes(), "t"),
        Err(Error::Unsupported(_))
    ));
    // Indefinite lengths and trailing bytes are refused as everywhere else.
    assert!(check_cose(&[0xd2, 0x9f, 0xff], "t").is_err());
    assert!(check_cose(&[0xd2, 0x80, 0x00], "t").is_err());
}

#[test]
fn huge_announced_lengths_do_not_allocate() {
    // An array announcing 2^63 elements with none present.
    let bytes = [0x9b, 0x80, 0, 0, 0, 0, 0, 0, 0];
    assert!(Reader::decode_exact(&bytes, "test", |r| r.skip()).is_err());
    // A byte string announcing 4 GiB.
    let bytes = [0x5a, 0xff, 0xff, 0xff, 0xff];
    assert!(Reader::decode_exact(&bytes, "test", |r| r.bytes().map(|_| ())).is_err());
}
