//! CBOR diagnostic notation (RFC 8949 §8, with the `<< >>` embedded-CBOR extension of
//! RFC 8610 Appendix G) for `suit-tool inspect --diag`.

use std::fmt::Write;

use minicbor::data::Type;
use minicbor::Decoder;

/// Deepest nesting rendered, counted over the whole input: arrays, maps, tags and CBOR embedded
/// in byte strings each add a level. Deeper items are elided, so no input overflows the stack.
const MAX_DEPTH: usize = 64;

/// Renders `bytes` (one or more CBOR items) as indented diagnostic notation. Byte strings whose
/// content is itself a single well-formed array, map or tagged item are shown as `<< … >>`.
pub fn to_diag(bytes: &[u8]) -> Result<String, String> {
    let mut out = String::new();
    let mut d = Decoder::new(bytes);
    while d.position() < bytes.len() {
        item(&mut d, &mut out, 0, 0)?;
        out.push('\n');
    }
    Ok(out)
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

/// `content` rendered as one embedded CBOR item at nesting level `nest`, if it is one.
fn embedded(content: &[u8], nest: usize) -> Option<String> {
    let first = *content.first()?;
    // Only arrays, maps and tags: short scalars inside bstrs are usually not CBOR.
    if !matches!(first >> 5, 4..=6) {
        return None;
    }
    let mut d = Decoder::new(content);
    let mut s = String::new();
    item(&mut d, &mut s, 0, nest).ok()?;
    (d.position() == content.len()).then_some(s)
}

/// What holds the entries [`entries`] renders.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Container {
    /// Entries of one item, in `[ ]`.
    Array,
    /// Entries of a key and a value, in `{ }`.
    Map,
}

/// Renders the `n` entries of an array or map whose head is read, one per line at
/// `depth + 1`, the closing bracket at `depth`.
fn entries(
    d: &mut Decoder<'_>,
    out: &mut String,
    (depth, nest): (usize, usize),
    n: u64,
    container: Container,
) -> Result<(), String> {
    let (open, close) = match container {
        Container::Array => ('[', ']'),
        Container::Map => ('{', '}'),
    };
    out.push(open);
    for i in 0..n {
        out.push('\n');
        indent(out, depth + 1);
        item(d, out, depth + 1, nest + 1)?;
        if container == Container::Map {
            out.push_str(": ");
            item(d, out, depth + 1, nest + 1)?;
        }
        if i + 1 < n {
            out.push(',');
        }
    }
    if n > 0 {
        out.push('\n');
        indent(out, depth);
    }
    out.push(close);
    Ok(())
}

/// Renders one item indented at `depth`, `nest` levels deep in the whole input.
fn item(d: &mut Decoder<'_>, out: &mut String, depth: usize, nest: usize) -> Result<(), String> {
    let at = d.position();
    let err = |e: minicbor::decode::Error| format!("malformed CBOR at byte {at}: {e}");
    if nest > MAX_DEPTH {
        d.skip().map_err(err)?;
        out.push('…');
        return Ok(());
    }
    match d.datatype().map_err(err)? {
        Type::Bool => write!(out, "{}", d.bool().map_err(err)?).ok(),
        Type::Null => {
            d.null().map_err(err)?;
            out.push_str("null");
            None
        }
        Type::Undefined => {
            d.undefined().map_err(err)?;
            out.push_str("undefined");
            None
        }
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => {
            write!(out, "{}", d.u64().map_err(err)?).ok()
        }
        Type::I8 | Type::I16 | Type::I32 | Type::I64 | Type::Int => {
            write!(out, "{}", i128::from(d.int().map_err(err)?)).ok()
        }
        Type::F16 | Type::F32 | Type::F64 => write!(out, "{}", d.f64().map_err(err)?).ok(),
        Type::Simple => write!(out, "simple({})", d.simple().map_err(err)?).ok(),
        Type::Bytes => {
            let b = d.bytes().map_err(err)?;
            match embedded(b, nest + 1) {
                Some(inner) => {
                    out.push_str("<< ");
                    out.push_str(&inner.replace('\n', &format!("\n{}", "  ".repeat(depth))));
                    out.push_str(" >>");
                }
                None => {
                    out.push_str("h'");
                    for x in b {
                        write!(out, "{x:02x}").ok();
                    }
                    out.push('\'');
                }
            }
            None
        }
        Type::String => write!(out, "{:?}", d.str().map_err(err)?).ok(),
        Type::Array => {
            let n = d.array().map_err(err)?.ok_or("indefinite-length array")?;
            entries(d, out, (depth, nest), n, Container::Array)?;
            None
        }
        Type::Map => {
            let n = d.map().map_err(err)?.ok_or("indefinite-length map")?;
            entries(d, out, (depth, nest), n, Container::Map)?;
            None
        }
        Type::Tag => {
            let t = d.tag().map_err(err)?;
            write!(out, "{}(", t.as_u64()).ok();
            item(d, out, depth, nest + 1)?;
            out.push(')');
            None
        }
        other => return Err(format!("unsupported CBOR item {other:?} at byte {at}")),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_nested_and_embedded_cbor() {
        // 107({2: h'8100', 3: << {1: 1} >>})
        let bytes = [
            0xd8, 0x6b, 0xa2, 0x02, 0x42, 0x81, 0x00, 0x03, 0x43, 0xa1, 0x01, 0x01,
        ];
        let text = to_diag(&bytes).unwrap();
        assert!(text.starts_with("107({"), "{text}");
        assert!(text.contains("<< [\n"), "{text}");
        assert!(text.contains("<< {\n"), "{text}");
    }

    #[test]
    fn reports_malformed_input() {
        assert!(to_diag(&[0x82, 0x01]).is_err());
    }
}
