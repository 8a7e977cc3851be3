//! `suit-tool verity` and `suit-tool create --slot-dir`: the dm-verity root the TA will derive
//! and the slot image layout `[image, zero-padded to 4096][hash area]` (README, "Slot images").

#[path = "support/cli.rs"]
mod cli;

use cli::{code, ok, tool, Scratch};
use serde_json::Value;
use suit_shared::digest::DigestAlg;
use suit_shared::verity;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 253) as u8).collect()
}

#[test]
fn verity_prints_the_root_salted_with_the_image_digest_and_writes_tree_and_slot() {
    let dir = Scratch::new("verity-json");
    let data = image(129 * 4096 + 100);
    let img = dir.write("fw.img", &data);
    let (tree, slot) = (dir.path("fw.tree"), dir.path("fw.slot"));
    let out = ok(tool(&[
        "verity".as_ref(),
        "--image".as_ref(),
        img.as_os_str(),
        "--out-tree".as_ref(),
        tree.as_os_str(),
        "--out-slot".as_ref(),
        slot.as_os_str(),
        "--json".as_ref(),
    ]));
    let json: Value = serde_json::from_str(&out).unwrap();
    let salt = DigestAlg::Sha256.digest(&data);
    let (params, area) = verity::build(&data, salt.as_bytes()).unwrap();
    assert_eq!(json["root-hash"], hex(&params.root));
    assert_eq!(json["salt"], hex(salt.as_bytes()));
    assert_eq!(json["data-blocks"], 130);
    assert_eq!(json["image-size"], data.len());
    assert_eq!(json["hash-offset"], 130 * 4096);
    assert_eq!(json["hash-size"], 3 * 4096);
    assert_eq!(std::fs::read(&tree).unwrap(), area);
    let slot = std::fs::read(&slot).unwrap();
    assert_eq!(slot, verity::slot_image(&data, salt.as_bytes()).unwrap().1);
    assert_eq!(&slot[..data.len()], &data[..]);
    assert!(slot[data.len()..130 * 4096].iter().all(|b| *b == 0));
}

#[test]
fn verity_salt_follows_the_manifest_digest_or_an_explicit_salt() {
    let dir = Scratch::new("verity-salt");
    let data = image(5000);
    let img = dir.write("fw.img", &data);
    let json = |extra: &[&str]| -> Value {
        let mut args = vec!["verity", "--image", img.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&ok(tool(&args))).unwrap()
    };
    let sha384 = DigestAlg::Sha384.digest(&data);
    let j = json(&["--digest", "sha-384"]);
    assert_eq!(j["salt"], hex(sha384.as_bytes()));
    assert_eq!(
        j["root-hash"],
        hex(&verity::build(&data, sha384.as_bytes()).unwrap().0.root)
    );
    let j = json(&["--salt", "00ff"]);
    assert_eq!(j["salt"], "00ff");
    assert_eq!(
        j["root-hash"],
        hex(&verity::build(&data, &[0, 0xff]).unwrap().0.root)
    );
}

#[test]
fn verity_refuses_empty_images_bad_salts_and_missing_files() {
    let dir = Scratch::new("verity-bad");
    let empty = dir.write("empty.img", b"");
    let img = dir.write("fw.img", b"x");
    let missing = dir.path("missing.img");
    for args in [
        vec!["verity", "--image", empty.to_str().unwrap()],
        vec!["verity", "--image", img.to_str().unwrap(), "--salt", "xyz"],
        vec![
            "verity",
            "--image",
            img.to_str().unwrap(),
            "--salt",
            &"00".repeat(257),
        ],
        vec!["verity", "--image", missing.to_str().unwrap()],
    ] {
        let out = tool(&args);
        assert_eq!(
            code(&out),
            2,
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stderr.is_empty());
    }
}

#[test]
fn create_writes_slot_images_salted_with_the_manifest_digest() {
    let dir = Scratch::new("verity-create");
    let data = image(3 * 4096 + 1);
    dir.write("fw.img", &data);
    let spec =
        "sequence-number = 3\nvendor = \"example.com\"\nclass = \"c\"\ndigest = \"sha-384\"\n\
                [[component]]\nid = [\"fw\"]\nimage = \"fw.img\"\nuri = \"http://x/fw.img\"\n\
                [[component.slot]]\nslot = 0\n[[component.slot]]\nslot = 1\n";
    let spec = dir.write("spec.toml", spec.as_bytes());
    let (out, slots) = (dir.path("u.suit"), dir.path("slots"));
    let printed = ok(tool(&[
        "create".as_ref(),
        "--spec".as_ref(),
        spec.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--slot-dir".as_ref(),
        slots.as_os_str(),
    ]));
    let salt = DigestAlg::Sha384.digest(&data);
    let (params, want) = verity::slot_image(&data, salt.as_bytes()).unwrap();
    assert_eq!(std::fs::read(slots.join("fw.img.slot")).unwrap(), want);
    assert_eq!(printed.matches("wrote slot image").count(), 1, "{printed}");
    assert!(printed.contains(&hex(&params.root)), "{printed}");
}
