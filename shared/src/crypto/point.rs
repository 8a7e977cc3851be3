//! SEC1 points of P-256/P-384 checked on their curve and decompressed, and the range check of
//! a private scalar, in portable code, for providers whose backend takes affine coordinates
//! and misbehaves on a bad point (GP's `TEE_DeriveKey` panics the TA). The field arithmetic
//! is not constant time: only public points go through it ([`is_scalar`] is constant time).
//!
//! Montgomery multiplication (CIOS) over 64-bit limbs; both primes are 3 mod 4, so a square
//! root is one exponentiation by (p + 1) / 4.

use alloc::vec::Vec;

use super::Curve;

const MAX_LIMBS: usize = 6;

/// A field element or integer, little-endian 64-bit limbs (only the curve's limbs are used).
type Limbs = [u64; MAX_LIMBS];

/// The prime and the constant b of y² = x³ − 3x + b, big-endian.
fn curve_constants(curve: Curve) -> (&'static [u8], &'static [u8]) {
    match curve {
        Curve::P256 => (
            &[
                0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff, 0xff, 0xff,
            ],
            &[
                0x5a, 0xc6, 0x35, 0xd8, 0xaa, 0x3a, 0x93, 0xe7, 0xb3, 0xeb, 0xbd, 0x55, 0x76, 0x98,
                0x86, 0xbc, 0x65, 0x1d, 0x06, 0xb0, 0xcc, 0x53, 0xb0, 0xf6, 0x3b, 0xce, 0x3c, 0x3e,
                0x27, 0xd2, 0x60, 0x4b,
            ],
        ),
        Curve::P384 => (
            &[
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff, 0xff, 0xfe, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
            ],
            &[
                0xb3, 0x31, 0x2f, 0xa7, 0xe2, 0x3e, 0xe7, 0xe4, 0x98, 0x8e, 0x05, 0x6b, 0xe3, 0xf8,
                0x2d, 0x19, 0x18, 0x1d, 0x9c, 0x6e, 0xfe, 0x81, 0x41, 0x12, 0x03, 0x14, 0x08, 0x8f,
                0x50, 0x13, 0x87, 0x5a, 0xc6, 0x56, 0x39, 0x8d, 0x8a, 0x2e, 0xd1, 0x9d, 0x2a, 0x85,
                0xc8, 0xed, 0xd3, 0xec, 0x2a, 0xef,
            ],
        ),
    }
}

/// Big-endian bytes (exactly `n` limbs' worth) to limbs.
fn from_be(bytes: &[u8], n: usize) -> Limbs {
    let mut out = [0u64; MAX_LIMBS];
    for (i, chunk) in bytes.rchunks(8).take(n).enumerate() {
        let mut b = [0u8; 8];
        b[8 - chunk.len()..].copy_from_slice(chunk);
        out[i] = u64::from_be_bytes(b);
    }
    out
}

fn to_be(a: &Limbs, n: usize) -> Vec<u8> {
    a[..n].iter().rev().flat_map(|l| l.to_be_bytes()).collect()
}

/// `a < b` over `n` limbs.
fn less(a: &Limbs, b: &Limbs, n: usize) -> bool {
    for i in (0..n).rev() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
    }
    false
}

/// `a - b` over `n` limbs, and the borrow.
fn sub(a: &Limbs, b: &Limbs, n: usize) -> (Limbs, bool) {
    let mut out = [0u64; MAX_LIMBS];
    let mut borrow = false;
    for i in 0..n {
        let (d, b1) = a[i].overflowing_sub(b[i]);
        let (d, b2) = d.overflowing_sub(u64::from(borrow));
        out[i] = d;
        borrow = b1 || b2;
    }
    (out, borrow)
}

/// The prime field of one curve, elements in Montgomery form.
struct Field {
    p: Limbs,
    n: usize,
    /// −p⁻¹ mod 2⁶⁴.
    p_neg_inv: u64,
    /// R² mod p, R = 2^(64n).
    r2: Limbs,
}

impl Field {
    fn new(p_be: &[u8]) -> Self {
        let n = p_be.len() / 8;
        let p = from_be(p_be, n);
        // Newton's iteration doubles the correct low bits of p⁻¹ mod 2⁶⁴ each round.
        let mut inv: u64 = 1;
        for _ in 0..6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(p[0].wrapping_mul(inv)));
        }
        let mut field = Field {
            p,
            n,
            p_neg_inv: inv.wrapping_neg(),
            r2: [0; MAX_LIMBS],
        };
        // R² mod p by doubling 1 modulo p, 2·64n times.
        let mut r2 = [0u64; MAX_LIMBS];
        r2[0] = 1;
        for _ in 0..2 * 64 * n {
            r2 = field.add(&r2, &r2);
        }
        field.r2 = r2;
        field
    }

    fn add(&self, a: &Limbs, b: &Limbs) -> Limbs {
        let mut sum = [0u64; MAX_LIMBS];
        let mut carry = false;
        for i in 0..self.n {
            let (s, c1) = a[i].overflowing_add(b[i]);
            let (s, c2) = s.overflowing_add(u64::from(carry));
            sum[i] = s;
            carry = c1 || c2;
        }
        if carry || !less(&sum, &self.p, self.n) {
            sub(&sum, &self.p, self.n).0
        } else {
            sum
        }
    }

    fn sub(&self, a: &Limbs, b: &Limbs) -> Limbs {
        let (d, borrow) = sub(a, b, self.n);
        if borrow {
            self.add_raw(&d)
        } else {
            d
        }
    }

    /// `a + p`, dropping the carry (for a wrapped difference).
    fn add_raw(&self, a: &Limbs) -> Limbs {
        let mut out = [0u64; MAX_LIMBS];
        let mut carry = false;
        for i in 0..self.n {
            let (s, c1) = a[i].overflowing_add(self.p[i]);
            let (s, c2) = s.overflowing_add(u64::from(carry));
            out[i] = s;
            carry = c1 || c2;
        }
        out
    }

    /// a·b·R⁻¹ mod p (CIOS).
    fn mul(&self, a: &Limbs, b: &Limbs) -> Limbs {
        let n = self.n;
        let mut t = [0u64; MAX_LIMBS + 2];
        for &ai in a.iter().take(n) {
            let mut carry = 0u128;
            for j in 0..n {
                let v = u128::from(t[j]) + u128::from(ai) * u128::from(b[j]) + carry;
                t[j] = v as u64;
                carry = v >> 64;
            }
            let v = u128::from(t[n]) + carry;
            t[n] = v as u64;
            t[n + 1] = (v >> 64) as u64;
            let m = t[0].wrapping_mul(self.p_neg_inv);
            let v = u128::from(t[0]) + u128::from(m) * u128::from(self.p[0]);
            let mut carry = v >> 64;
            for j in 1..n {
                let v = u128::from(t[j]) + u128::from(m) * u128::from(self.p[j]) + carry;
                t[j - 1] = v as u64;
                carry = v >> 64;
            }
            let v = u128::from(t[n]) + carry;
            t[n - 1] = v as u64;
            t[n] = t[n + 1] + (v >> 64) as u64;
        }
        let mut out = [0u64; MAX_LIMBS];
        out[..n].copy_from_slice(&t[..n]);
        if t[n] != 0 || !less(&out, &self.p, n) {
            out = sub(&out, &self.p, n).0;
        }
        out
    }

    fn to_mont(&self, a: &Limbs) -> Limbs {
        self.mul(a, &self.r2)
    }

    fn out_of_mont(&self, a: &Limbs) -> Limbs {
        let mut one = [0u64; MAX_LIMBS];
        one[0] = 1;
        self.mul(a, &one)
    }

    /// `base^exp` (Montgomery form in and out; `exp` an ordinary integer).
    fn pow(&self, base: &Limbs, exp: &Limbs) -> Limbs {
        let mut one = [0u64; MAX_LIMBS];
        one[0] = 1;
        let mut acc = self.to_mont(&one);
        for i in (0..self.n * 64).rev() {
            acc = self.mul(&acc, &acc);
            if (exp[i / 64] >> (i % 64)) & 1 == 1 {
                acc = self.mul(&acc, base);
            }
        }
        acc
    }
}

/// The point `sec1` (SEC1: `04 || x || y`, or `02/03 || x`) as `x || y`, or `None` when it is
/// not an encoding of a point on `curve` (wrong length or prefix, a coordinate not below p,
/// off the curve; the point at infinity has no affine form and is refused too).
pub fn affine_xy(curve: Curve, sec1: &[u8]) -> Option<Vec<u8>> {
    let len = curve.field_len();
    let (p_be, b_be) = curve_constants(curve);
    let field = Field::new(p_be);
    let n = field.n;
    let (&prefix, rest) = sec1.split_first()?;
    let x_bytes = rest.get(..len)?;
    let x = from_be(x_bytes, n);
    if !less(&x, &field.p, n) {
        return None;
    }
    let xm = field.to_mont(&x);
    let bm = field.to_mont(&from_be(b_be, n));
    // rhs = x³ − 3x + b
    let x3 = field.mul(&field.mul(&xm, &xm), &xm);
    let three_x = field.add(&field.add(&xm, &xm), &xm);
    let rhs = field.add(&field.sub(&x3, &three_x), &bm);
    let y = match (prefix, rest.len()) {
        (0x04, l) if l == 2 * len => {
            let y = from_be(&rest[len..], n);
            if !less(&y, &field.p, n) {
                return None;
            }
            let ym = field.to_mont(&y);
            if field.mul(&ym, &ym) != rhs {
                return None;
            }
            y
        }
        (0x02 | 0x03, l) if l == len => {
            // (p + 1) / 4
            let mut e = field.p;
            let mut carry = true;
            for limb in e.iter_mut().take(n) {
                let (s, c) = limb.overflowing_add(u64::from(carry));
                *limb = s;
                carry = c;
            }
            for i in 0..n {
                let high = if i + 1 < n { e[i + 1] << 62 } else { 0 };
                e[i] = (e[i] >> 2) | high;
            }
            let root = field.pow(&rhs, &e);
            if field.mul(&root, &root) != rhs {
                return None;
            }
            let y = field.out_of_mont(&root);
            let want_odd = prefix == 0x03;
            if (y[0] & 1 == 1) == want_odd {
                y
            } else if y == [0; MAX_LIMBS] {
                return None;
            } else {
                sub(&field.p, &y, n).0
            }
        }
        _ => return None,
    };
    let mut out = x_bytes.to_vec();
    out.extend_from_slice(&to_be(&y, n));
    Some(out)
}

/// The group order n of `curve`, big-endian.
fn order(curve: Curve) -> &'static [u8] {
    match curve {
        Curve::P256 => &[
            0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2,
            0xfc, 0x63, 0x25, 0x51,
        ],
        Curve::P384 => &[
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc7, 0x63, 0x4d, 0x81,
            0xf4, 0x37, 0x2d, 0xdf, 0x58, 0x1a, 0x0d, 0xb2, 0x48, 0xb0, 0xa7, 0x7a, 0xec, 0xec,
            0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73,
        ],
    }
}

/// Whether `scalar` (big-endian, the curve's field length) is a valid private scalar: in
/// [1, n − 1]. Constant time in the scalar's value.
pub fn is_scalar(curve: Curve, scalar: &[u8]) -> bool {
    let n = order(curve);
    if scalar.len() != n.len() {
        return false;
    }
    // Big-endian comparison without early exit: `less` ends true when the first differing
    // byte is smaller; `nonzero` collects any set bit.
    let mut less = 0u8;
    let mut decided = 0u8;
    let mut nonzero = 0u8;
    for (&a, &b) in scalar.iter().zip(n) {
        let lt = u8::from(a < b);
        let ne = u8::from(a != b);
        less |= lt & !decided;
        decided |= ne;
        nonzero |= a;
    }
    less == 1 && nonzero != 0
}

/// The point `sec1` in SEC1 uncompressed form (`04 || x || y`), checked as [`affine_xy`].
pub fn uncompressed(curve: Curve, sec1: &[u8]) -> Option<Vec<u8>> {
    let xy = affine_xy(curve, sec1)?;
    let mut out = Vec::with_capacity(1 + xy.len());
    out.push(0x04);
    out.extend_from_slice(&xy);
    Some(out)
}

#[cfg(all(test, feature = "rustcrypto"))]
mod tests {
    use super::*;

    /// Public keys of scalars 1..=40 on both curves, as the RustCrypto crates encode them.
    fn points(curve: Curve) -> Vec<(Vec<u8>, Vec<u8>)> {
        (1u8..=40)
            .map(|seed| {
                let mut scalar = alloc::vec![seed; curve.field_len()];
                scalar[0] = 0x11;
                match curve {
                    Curve::P256 => {
                        use p256::elliptic_curve::sec1::ToSec1Point;
                        let k = p256::SecretKey::from_slice(&scalar).unwrap().public_key();
                        (
                            k.to_sec1_point(false).as_bytes().to_vec(),
                            k.to_sec1_point(true).as_bytes().to_vec(),
                        )
                    }
                    Curve::P384 => {
                        use p384::elliptic_curve::sec1::ToSec1Point;
                        let k = p384::SecretKey::from_slice(&scalar).unwrap().public_key();
                        (
                            k.to_sec1_point(false).as_bytes().to_vec(),
                            k.to_sec1_point(true).as_bytes().to_vec(),
                        )
                    }
                }
            })
            .collect()
    }

    #[test]
    fn points_on_the_curve_are_accepted_and_decompressed() {
        for curve in [Curve::P256, Curve::P384] {
            for (full, compressed) in points(curve) {
                assert_eq!(uncompressed(curve, &full).as_deref(), Some(&full[..]));
                assert_eq!(uncompressed(curve, &compressed).as_deref(), Some(&full[..]));
                assert_eq!(affine_xy(curve, &full).as_deref(), Some(&full[1..]));
            }
        }
    }

    /// The scalar range agrees with the RustCrypto crates' at its edges and in between.
    #[test]
    fn scalars_are_one_to_n_minus_one() {
        for curve in [Curve::P256, Curve::P384] {
            let n = order(curve).to_vec();
            let minus = |by: u8| {
                let mut v = n.clone();
                let last = v.len() - 1;
                v[last] -= by;
                v
            };
            let mut one = alloc::vec![0u8; n.len()];
            let last = one.len() - 1;
            one[last] = 1;
            let mut candidates = alloc::vec![
                alloc::vec![0u8; n.len()],
                one,
                minus(1),
                minus(2),
                n.clone(),
                alloc::vec![0xff; n.len()],
                alloc::vec![0x7f; n.len()],
            ];
            let mut above = n.clone();
            above[0] = 0xff;
            above[24] = 0xff;
            candidates.push(above);
            for c in candidates {
                let theirs = match curve {
                    Curve::P256 => p256::SecretKey::from_slice(&c).is_ok(),
                    Curve::P384 => p384::SecretKey::from_slice(&c).is_ok(),
                };
                assert_eq!(is_scalar(curve, &c), theirs, "{curve:?} {c:02x?}");
            }
            assert!(!is_scalar(curve, &n[1..]));
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for curve in [Curve::P256, Curve::P384] {
            let len = curve.field_len();
            for (full, compressed) in points(curve) {
                // Off the curve: y changed.
                let mut bad = full.clone();
                bad[2 * len] ^= 1;
                assert_eq!(uncompressed(curve, &bad), None);
                // Wrong lengths, prefixes, the other curve's lengths, infinity.
                assert_eq!(uncompressed(curve, &full[..full.len() - 1]), None);
                assert_eq!(uncompressed(curve, &compressed[..len]), None);
                let mut prefix = full.clone();
                prefix[0] = 0x05;
                assert_eq!(uncompressed(curve, &prefix), None);
                assert_eq!(uncompressed(curve, &[0x00]), None);
                assert_eq!(uncompressed(curve, &[]), None);
                // A coordinate equal to p (x + p would alias x modulo p).
                let (p, _) = curve_constants(curve);
                let mut big = full.clone();
                big[1 + len..].copy_from_slice(p);
                assert_eq!(uncompressed(curve, &big), None);
            }
            // x whose x³ − 3x + b is not a square: some compressed x has no point.
            let refused = (0u8..20)
                .filter(|&v| {
                    let mut c = alloc::vec![0x02];
                    c.extend(core::iter::repeat_n(v, len));
                    uncompressed(curve, &c).is_none()
                })
                .count();
            assert!(refused > 0, "about half of all x have no point");
        }
    }
}
