//! Installs the Debian packages an integration test needs (through `qemu/debian.sh`, which
//! installs only what is missing). A test that cannot get its tools fails with the reason;
//! it never skips.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

/// Serializes installs: apt would otherwise wait on its own lock in every test thread.
static INSTALL: Mutex<()> = Mutex::new(());

/// Makes sure `program` exists, installing Debian `package` when it does not.
pub fn ensure_tool(program: &str, package: &str) {
    let _guard = INSTALL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if which(program) {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../qemu/debian.sh");
    let output = Command::new("bash")
        .arg(&script)
        .args(["host-tools", package])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        output.status.success() && which(program),
        "this test needs `{program}` from the Debian package {package}, and installing it \
         failed (`bash qemu/debian.sh host-tools {package}`):\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn which(program: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|dir| Path::new(dir).join(program).is_file())
}
