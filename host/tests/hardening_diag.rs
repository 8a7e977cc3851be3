//! `suit-tool inspect --diag` bounds the nesting of a file as a whole: byte strings holding CBOR
//! and chains of tags do not restart the depth count, so no file overflows the tool's stack.

#[path = "support/cli.rs"]
mod cli;

use cli::{ok, tool, Scratch};

/// The CBOR head of major type `major` with argument `n`.
fn head(major: u8, n: usize) -> Vec<u8> {
    let m = major << 5;
    match n {
        0..=23 => vec![m | n as u8],
        24..=0xff => vec![m | 24, n as u8],
        0x100..=0xffff => [vec![m | 25], (n as u16).to_be_bytes().to_vec()].concat(),
        _ => [vec![m | 26], (n as u32).to_be_bytes().to_vec()].concat(),
    }
}

/// Renders `bytes` with `inspect --diag`; it must succeed and elide what is too deep.
fn diag_of(name: &str, bytes: &[u8]) -> String {
    let dir = Scratch::new(name);
    let file = dir.write("deep.cbor", bytes);
    let text = ok(tool(&[
        "inspect".as_ref(),
        file.as_os_str(),
        "--diag".as_ref(),
    ]));
    assert!(
        text.contains('…'),
        "nothing elided: {}",
        &text[..text.len().min(400)]
    );
    text
}

#[test]
fn nested_byte_strings_do_not_overflow_the_stack() {
    // [ << [ << [ ... [] ... ] >> ] >> ]: each byte string holds a one-element array.
    let mut item = vec![0x80];
    for _ in 0..100_000 {
        let mut bstr = head(2, item.len());
        bstr.extend_from_slice(&item);
        item = [vec![0x81], bstr].concat();
    }
    let text = diag_of("nested-bstr", &item);
    assert!(
        text.starts_with("[\n  << ["),
        "{}",
        &text[..text.len().min(200)]
    );
}

#[test]
fn chained_tags_do_not_overflow_the_stack() {
    // 6(6(6(... 0 ...))): a tag is one byte, each one a level.
    let mut item = vec![0xc6; 1_000_000];
    item.push(0x00);
    let text = diag_of("tag-chain", &item);
    assert!(text.starts_with("6(6("), "{}", &text[..text.len().min(200)]);
}
