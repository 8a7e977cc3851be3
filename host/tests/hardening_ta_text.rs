//! Issue 12, TA size: messages quote input text with the core's own escaping instead of
//! `{:?}` (whose Unicode tables the TA no longer links); input still cannot forge a message
//! or a terminal control sequence.

use suit_shared::error::{MapKey, Quoted};
use suit_shared::params::{Version, VersionComparison};
use suit_shared::Error;

#[test]
fn quoted_text_escapes_quotes_backslashes_and_non_printable_characters() {
    assert_eq!(Quoted("fw").to_string(), "\"fw\"");
    assert_eq!(
        Quoted("a\"b\\c\u{1b}[31m\né").to_string(),
        "\"a\\\"b\\\\c\\u{1b}[31m\\u{a}\\u{e9}\""
    );
    let e = Error::IntegratedPayloadMissing(String::from("#x\u{7}"));
    assert_eq!(
        e.to_string(),
        "the manifest refers to integrated payload \"#x\\u{7}\", which the envelope does not carry"
    );
    assert_eq!(MapKey::Text(String::from("k\t")).to_string(), "\"k\\u{9}\"");
}

#[test]
fn versions_read_as_lists() {
    assert_eq!(Version(&[1, 2, -1]).to_string(), "[1, 2, -1]");
    assert_eq!(Version(&[]).to_string(), "[]");
    assert_eq!(
        VersionComparison::GreaterEqual.name(),
        "greater than or equal to"
    );
}
