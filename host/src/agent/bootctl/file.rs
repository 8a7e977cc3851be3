//! The file backend: the boot variables as `NAME=value` lines of a text file.
//!
//! ```text
//! BOOT_ORDER=A B
//! BOOT_A_LEFT=3
//! BOOT_B_LEFT=3
//! ```
//!
//! This is the format the QEMU image's `/init` reads and writes (`qemu/init.sh`): quotes
//! around values are ignored, other lines are kept, a missing file means the defaults. The
//! file is replaced atomically ([`crate::agent::atomic::replace_file`]), so a power cut
//! leaves either the old or the new state.

use std::io;
use std::path::{Path, PathBuf};

use super::{BootControl, BootError, BootState, Slot};
use crate::agent::atomic;

/// Boot control through a text file.
#[derive(Debug, Clone)]
pub struct FileBootControl {
    path: PathBuf,
}

/// The file's content: the three variables and every other line, in order.
struct StateFile {
    order: Option<String>,
    a_left: Option<String>,
    b_left: Option<String>,
    other_lines: Vec<String>,
}

impl FileBootControl {
    /// Boot control through the file at `path`.
    pub fn new(path: &Path) -> FileBootControl {
        FileBootControl {
            path: path.to_path_buf(),
        }
    }

    fn read(&self) -> Result<StateFile, BootError> {
        let text = match std::fs::read(&self.path) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| BootError::Malformed {
                location: self.path.display().to_string(),
                reason: "the file is not text (UTF-8)".into(),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(BootError::io("read", &self.path, e)),
        };
        let mut file = StateFile {
            order: None,
            a_left: None,
            b_left: None,
            other_lines: Vec::new(),
        };
        for line in text.lines() {
            let unquoted = |value: &str| value.replace(['"', '\''], "");
            match line.split_once('=') {
                Some(("BOOT_ORDER", value)) => file.order = Some(unquoted(value)),
                Some(("BOOT_A_LEFT", value)) => file.a_left = Some(unquoted(value)),
                Some(("BOOT_B_LEFT", value)) => file.b_left = Some(unquoted(value)),
                _ if line.is_empty() => {}
                _ => file.other_lines.push(line.to_string()),
            }
        }
        Ok(file)
    }

    fn state_of(&self, file: &StateFile) -> Result<BootState, BootError> {
        BootState::from_variables(
            file.order.as_deref(),
            file.a_left.as_deref(),
            file.b_left.as_deref(),
            &self.path.display().to_string(),
        )
    }
}

impl BootControl for FileBootControl {
    fn describe(&self) -> String {
        format!("boot state file {}", self.path.display())
    }

    fn load(&self) -> Result<BootState, BootError> {
        self.state_of(&self.read()?)
    }

    fn modify(&self, change: &mut dyn FnMut(&mut BootState)) -> Result<BootState, BootError> {
        let file = self.read()?;
        let mut state = self.state_of(&file)?;
        change(&mut state);
        let mut text = format!(
            "BOOT_ORDER={}\nBOOT_A_LEFT={}\nBOOT_B_LEFT={}\n",
            state.order_text(),
            state.attempts_left(Slot::A),
            state.attempts_left(Slot::B)
        );
        for line in &file.other_lines {
            text.push_str(line);
            text.push('\n');
        }
        let dir = atomic::parent_dir(&self.path);
        std::fs::create_dir_all(dir).map_err(|e| BootError::io("create", dir, e))?;
        atomic::replace_file(&self.path, text.as_bytes())
            .map_err(|e| BootError::io("write", &self.path, e))?;
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_reads_as_defaults_and_is_created_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boot").join("bootstate");
        let boot = FileBootControl::new(&path);
        assert_eq!(boot.load().unwrap(), BootState::default());
        boot.mark_trial(Slot::B).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "BOOT_ORDER=B A\nBOOT_A_LEFT=3\nBOOT_B_LEFT=1\n"
        );
        assert!(boot.describe().contains("bootstate"));
    }

    #[test]
    fn keeps_other_lines_and_accepts_quotes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bootstate");
        std::fs::write(
            &path,
            "# written by hand\nBOOT_A_LEFT=2\nBOOT_ORDER=\"A B\"\n\nBOOT_B_LEFT='0'\nVENDOR_FLAG=1",
        )
        .unwrap();
        let boot = FileBootControl::new(&path);
        let state = boot.load().unwrap();
        assert_eq!(state, BootState::new(&[Slot::A, Slot::B], 2, 0).unwrap());
        boot.mark_good(Slot::A).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=0\n# written by hand\nVENDOR_FLAG=1\n"
        );
        let state = boot.mark_bad(Slot::A).unwrap();
        assert_eq!(boot.load().unwrap(), state);
        assert_eq!(state.order(), [Slot::B, Slot::A]);
    }

    #[test]
    fn malformed_state_is_an_error_and_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bootstate");
        std::fs::write(&path, "BOOT_ORDER=A X\n").unwrap();
        let boot = FileBootControl::new(&path);
        let err = boot.mark_trial(Slot::B).unwrap_err();
        assert!(err.to_string().contains("unknown slot \"X\""), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "BOOT_ORDER=A X\n");
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(matches!(boot.load(), Err(BootError::Malformed { .. })));
    }
}
