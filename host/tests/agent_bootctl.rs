//! The U-Boot environment backend against Debian's `fw_printenv`/`fw_setenv`
//! (libubootenv-tool, installed by the test when missing): what the agent writes they read,
//! what they write the agent reads, and for the same variables both write the same bytes;
//! single and redundant environments (flags counter, wrap-around) described by a
//! `fw_env.config` that points at files.

#[path = "support/debian.rs"]
mod debian;

use std::path::{Path, PathBuf};
use std::process::Command;

use suit_host::agent::bootctl::uboot::{decode_copy, encode_copy, UBootBootControl, UBootEnv};
use suit_host::agent::bootctl::{BootControl, BootError, BootState};
use suit_host::agent::config::{EnvLocation, UBootEnvConfig};
use suit_host::agent::Slot;

const ENV_SIZE: usize = 0x4000;
/// libubootenv's lock file, which the agent shares.
const LOCK_FILE: &str = "/var/lock/fw_printenv.lock";

/// A scratch directory with an environment file and the matching `fw_env.config`.
struct Setup {
    _dir: tempfile::TempDir,
    image: PathBuf,
    fw_config: PathBuf,
    agent_config: UBootEnvConfig,
}

/// The environment lives in one file at `offset`; a redundant copy, when asked for, at
/// `offset + ENV_SIZE` of the same file. The file is larger than both, as a partition is.
fn setup(offset: u64, redundant: bool) -> Setup {
    debian::ensure_tool("fw_printenv", "libubootenv-tool");
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("uboot-env.img");
    std::fs::write(&image, vec![0xffu8; offset as usize + 3 * ENV_SIZE]).unwrap();
    let second = offset + ENV_SIZE as u64;
    let mut fw = format!("{} {offset:#x} {ENV_SIZE:#x}\n", image.display());
    if redundant {
        fw.push_str(&format!("{} {second:#x} {ENV_SIZE:#x}\n", image.display()));
    }
    let fw_config = dir.path().join("fw_env.config");
    std::fs::write(&fw_config, fw).unwrap();
    let location = |offset: u64| EnvLocation {
        device: image.clone(),
        offset: offset as i64,
    };
    let agent_config = UBootEnvConfig {
        env_size: ENV_SIZE,
        primary: location(offset),
        redundant: redundant.then(|| location(second)),
        lock_file: LOCK_FILE.into(),
    };
    Setup {
        _dir: dir,
        image,
        fw_config,
        agent_config,
    }
}

impl Setup {
    fn boot(&self) -> UBootBootControl {
        UBootBootControl::new(self.agent_config.clone())
    }

    fn copy_offset(&self, copy: usize) -> usize {
        match copy {
            0 => self.agent_config.primary.offset as usize,
            _ => self.agent_config.redundant.as_ref().unwrap().offset as usize,
        }
    }

    /// Writes one copy directly (the board's initial environment, as U-Boot's `saveenv`
    /// or mkenvimage would leave it).
    fn put_copy(&self, copy: usize, vars: &[(&str, &str)], flags: Option<u8>) {
        let mut env = UBootEnv::new();
        for (name, value) in vars {
            env.set(name, value).unwrap();
        }
        let mut disk = std::fs::read(&self.image).unwrap();
        let at = self.copy_offset(copy);
        disk[at..at + ENV_SIZE].copy_from_slice(&encode_copy(&env, ENV_SIZE, flags).unwrap());
        std::fs::write(&self.image, disk).unwrap();
    }

    fn raw_copy(&self, copy: usize) -> Vec<u8> {
        let disk = std::fs::read(&self.image).unwrap();
        let at = self.copy_offset(copy);
        disk[at..at + ENV_SIZE].to_vec()
    }

    /// `fw_printenv` output as sorted `name=value` lines.
    fn printenv(&self) -> Vec<String> {
        let out = self.tool("fw_printenv", &[]);
        let mut lines: Vec<String> = out.lines().map(str::to_string).collect();
        lines.sort();
        lines
    }

    fn setenv(&self, name: &str, value: &str) {
        self.tool("fw_setenv", &[name, value]);
    }

    fn tool(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new(program)
            .arg("-c")
            .arg(&self.fw_config)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

fn lines(items: &[&str]) -> Vec<String> {
    let mut lines: Vec<String> = items.iter().map(|s| s.to_string()).collect();
    lines.sort();
    lines
}

const BOARD_ENV: &[(&str, &str)] = &[
    ("bootcmd", "run distro_bootcmd"),
    ("bootdelay", "0"),
    ("fdt_addr", "0x40000000"),
];

#[test]
fn single_environment_agent_writes_fw_printenv_reads() {
    let s = setup(0x2000, false);
    s.put_copy(0, BOARD_ENV, None);
    assert_eq!(
        s.printenv(),
        lines(&[
            "bootcmd=run distro_bootcmd",
            "bootdelay=0",
            "fdt_addr=0x40000000"
        ])
    );
    let boot = s.boot();
    assert_eq!(boot.load().unwrap(), BootState::default());

    boot.mark_trial(Slot::B).unwrap();
    assert_eq!(
        s.printenv(),
        lines(&[
            "BOOT_ORDER=B A",
            "BOOT_A_LEFT=3",
            "BOOT_B_LEFT=1",
            "bootcmd=run distro_bootcmd",
            "bootdelay=0",
            "fdt_addr=0x40000000"
        ])
    );
    assert_eq!(s.tool("fw_printenv", &["-n", "BOOT_ORDER"]), "B A\n");

    boot.mark_bad(Slot::B).unwrap();
    assert_eq!(s.tool("fw_printenv", &["BOOT_ORDER"]), "BOOT_ORDER=A B\n");
    assert_eq!(s.tool("fw_printenv", &["BOOT_B_LEFT"]), "BOOT_B_LEFT=0\n");
}

#[test]
fn single_environment_fw_setenv_writes_agent_reads_byte_for_byte() {
    let s = setup(0, false);
    s.put_copy(0, BOARD_ENV, None);
    s.setenv("BOOT_ORDER", "B A");
    s.setenv("BOOT_B_LEFT", "2");
    let boot = s.boot();
    assert_eq!(
        boot.load().unwrap(),
        BootState::new(&[Slot::B, Slot::A], 3, 2).unwrap()
    );

    // What fw_setenv wrote is exactly what the agent writes for the same variables (libubootenv
    // keeps the padding bytes of the copy it read, which the agent wrote here).
    let theirs = s.raw_copy(0);
    let decoded = decode_copy(&theirs, false).unwrap().expect("valid CRC");
    assert_eq!(encode_copy(&decoded.env, ENV_SIZE, None).unwrap(), theirs);

    // And the agent's change of one variable equals fw_setenv's change of it.
    boot.mark_good(Slot::B).unwrap();
    let ours = s.raw_copy(0);
    s.setenv("BOOT_A_LEFT", "3");
    s.setenv("BOOT_B_LEFT", "2");
    s.setenv("BOOT_B_LEFT", "3");
    assert_eq!(s.raw_copy(0), ours);
}

#[test]
fn redundant_environment_alternates_copies_with_fw_setenv() {
    let s = setup(0x1000, true);
    s.put_copy(0, BOARD_ENV, Some(1));
    let boot = s.boot();
    let flags = |copy| s.raw_copy(copy)[4];

    // fw_setenv writes the other copy (flags 2); the agent reads it.
    s.setenv("BOOT_ORDER", "A B");
    assert_eq!(flags(1), 2);
    assert_eq!(boot.load().unwrap(), BootState::default());

    // The agent writes copy 0 (flags 3); fw_printenv reads it.
    boot.mark_trial(Slot::B).unwrap();
    assert_eq!(flags(0), 3);
    assert_eq!(s.tool("fw_printenv", &["-n", "BOOT_ORDER"]), "B A\n");

    // And so on, each side picking up the other's newest copy.
    s.setenv("BOOT_B_LEFT", "0");
    assert_eq!(flags(1), 4);
    assert_eq!(boot.load().unwrap().attempts_left(Slot::B), 0);
    boot.mark_bad(Slot::B).unwrap();
    assert_eq!(flags(0), 5);
    assert_eq!(
        s.printenv(),
        lines(&[
            "BOOT_ORDER=A B",
            "BOOT_A_LEFT=3",
            "BOOT_B_LEFT=0",
            "bootcmd=run distro_bootcmd",
            "bootdelay=0",
            "fdt_addr=0x40000000"
        ])
    );

    // Byte for byte: the copy fw_setenv writes decodes and re-encodes to itself (CRC, flags,
    // variable order, terminator; the padding is inherited from the copy it read).
    s.setenv("BOOT_A_LEFT", "2");
    let theirs = s.raw_copy(1);
    let decoded = decode_copy(&theirs, true).unwrap().expect("valid CRC");
    assert_eq!(decoded.flags, Some(6));
    assert_eq!(
        encode_copy(&decoded.env, ENV_SIZE, Some(6)).unwrap(),
        theirs
    );
}

#[test]
fn redundant_flags_wrap_from_255_to_0_on_both_sides() {
    let s = setup(0, true);
    s.put_copy(0, &[("BOOT_ORDER", "A B"), ("bootcmd", "old")], Some(254));
    s.put_copy(1, &[("BOOT_ORDER", "B A"), ("bootcmd", "new")], Some(255));
    assert_eq!(s.tool("fw_printenv", &["-n", "bootcmd"]), "new\n");
    let boot = s.boot();
    assert_eq!(boot.load().unwrap().order(), [Slot::B, Slot::A]);

    // The agent's next copy gets flags 0, which both count as newer than 255.
    boot.mark_good(Slot::A).unwrap();
    assert_eq!(s.raw_copy(0)[4], 0);
    assert_eq!(s.tool("fw_printenv", &["-n", "BOOT_ORDER"]), "A B\n");
    assert_eq!(s.tool("fw_printenv", &["-n", "bootcmd"]), "new\n");

    // fw_setenv continues with flags 1 in the other copy; the agent follows.
    s.setenv("BOOT_ORDER", "B A");
    assert_eq!(s.raw_copy(1)[4], 1);
    assert_eq!(boot.load().unwrap().order(), [Slot::B, Slot::A]);

    // Wrap the other way round: fw_setenv from 255 to 0 in copy 0.
    s.put_copy(1, &[("BOOT_ORDER", "A B"), ("bootcmd", "x")], Some(255));
    s.put_copy(0, &[("BOOT_ORDER", "B A"), ("bootcmd", "x")], Some(254));
    s.setenv("BOOT_B_LEFT", "1");
    assert_eq!(s.raw_copy(0)[4], 0);
    let state = boot.load().unwrap();
    assert_eq!(state.order(), [Slot::A, Slot::B]);
    assert_eq!(state.attempts_left(Slot::B), 1);
}

#[test]
fn neither_side_writes_over_an_invalid_environment() {
    let s = setup(0, true);
    let before = std::fs::read(&s.image).unwrap();
    let boot = s.boot();
    let err = boot.mark_trial(Slot::B).unwrap_err();
    assert!(matches!(err, BootError::NoValidEnvironment { .. }), "{err}");
    let out = Command::new("fw_setenv")
        .arg("-c")
        .arg(&s.fw_config)
        .args(["BOOT_ORDER", "B A"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "fw_setenv accepted an invalid environment"
    );
    assert_eq!(std::fs::read(&s.image).unwrap(), before);
    assert!(Path::new(&s.image).exists());
}
