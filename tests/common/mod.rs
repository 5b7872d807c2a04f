//! What tests/cli.rs and tests/module.rs share: the binary under test, run
//! as an unprivileged user (nobody) even when the tests run as root. A run
//! the binary should refuse but does not then stops at `apply`'s root check
//! instead of changing the machine running the tests.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// uid and gid of `nobody` on Debian and Ubuntu.
const NOBODY: u32 = 65534;

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

/// A directory everyone may read, for the binary and the files that
/// `nobody` must reach (cargo's target directory may sit under a private one).
pub fn world_readable_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// The binary under test, copied where `nobody` can run it.
fn binary() -> &'static Path {
    static COPY: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &COPY
        .get_or_init(|| {
            let dir = world_readable_dir();
            let bin = dir.path().join("ntp-provision");
            std::fs::copy(env!("CARGO_BIN_EXE_ntp-provision"), &bin).unwrap();
            std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
            (dir, bin)
        })
        .1
}

/// A command of the binary under test, as nobody when the tests run as
/// root, without RUST_LOG.
pub fn ntp_provision_as_nobody() -> Command {
    let mut cmd = Command::new(binary());
    if running_as_root() {
        // std drops the supplementary groups too when root sets a uid.
        cmd.uid(NOBODY).gid(NOBODY);
    }
    cmd.env_remove("RUST_LOG");
    cmd
}
