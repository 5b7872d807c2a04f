//! The files NTS reads on the node (`nts_ca`, `nts_server_cert`,
//! `nts_server_key`): they must be there, be PEM and be readable by the
//! daemon's user, checked before any change; their modes and owners are
//! kept for the lint (`nts-key-readable`). Nothing here writes.

use super::{FileState, Probe};
use crate::daemons::Daemon;
use crate::names::AbsPath;
use anyhow::{bail, Result};

/// An NTS file as the facts read it: who owns it and who may read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtsFile {
    /// The plan variable that names it (`nts_server_key`, ...).
    pub var: &'static str,
    pub path: AbsPath,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Checks every NTS file the plan names (`(variable, path)`) for `daemon`,
/// and returns what it read of each.
pub fn check(
    probe: &dyn Probe,
    daemon: &Daemon,
    files: &[(&'static str, AbsPath)],
) -> Result<Vec<NtsFile>> {
    let user = match daemon.flavor.runs_as() {
        Some(name) => Some((
            name,
            probe.account_id(name, false)?,
            probe.account_id(name, true)?,
        )),
        None => None,
    };
    let mut read = Vec::new();
    for (var, path) in files {
        let Some(state) = probe.file(path)? else {
            bail!("vars.{var}: {path} does not exist on the node (the operator provides it)");
        };
        check_file(var, path, &state, user).map_err(anyhow::Error::msg)?;
        read.push(NtsFile {
            var,
            path: path.clone(),
            mode: state.mode,
            uid: state.uid,
            gid: state.gid,
        });
    }
    Ok(read)
}

/// One file: PEM of the right kind, and readable by `user` (name, uid, gid
/// of its group) where the account exists already (a fresh node gets it
/// with the package). A key others can read works: the lint judges it.
pub fn check_file(
    var: &str,
    path: &AbsPath,
    state: &FileState,
    user: Option<(&str, Option<u32>, Option<u32>)>,
) -> Result<(), String> {
    let text = String::from_utf8_lossy(&state.content);
    let key = var == "nts_server_key";
    let pem = if key {
        text.contains("-----BEGIN ") && text.contains("PRIVATE KEY-----")
    } else {
        text.contains("-----BEGIN CERTIFICATE-----")
    };
    if !pem {
        let what = if key { "private key" } else { "certificate" };
        return Err(format!("vars.{var}: {path} is not a PEM {what}"));
    }
    if let Some((name, Some(uid), gid)) = user {
        let readable = state.mode & 0o004 != 0
            || (state.uid == uid && state.mode & 0o400 != 0)
            || (Some(state.gid) == gid && state.mode & 0o040 != 0);
        if !readable {
            return Err(format!(
                "vars.{var}: {path} (mode {:04o}, uid {}, gid {}) is not readable by {name}, \
                 the user the daemon reads it as",
                state.mode, state.uid, state.gid
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str, mode: u32, uid: u32, gid: u32) -> FileState {
        FileState {
            content: text.as_bytes().to_vec(),
            mode,
            uid,
            gid,
            modified: None,
        }
    }

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

    #[test]
    fn nts_files_must_be_pem_and_readable_by_the_daemon() {
        let path = AbsPath::parse("/etc/chrony/nts.key").unwrap();
        let chrony = Some(("_chrony", Some(100), Some(101)));
        assert!(check_file("nts_ca", &path, &file(CERT, 0o644, 0, 0), chrony).is_ok());
        let not_pem = check_file("nts_ca", &path, &file("hello", 0o644, 0, 0), chrony);
        assert_eq!(
            not_pem.unwrap_err(),
            "vars.nts_ca: /etc/chrony/nts.key is not a PEM certificate"
        );
        let cert_as_key = check_file("nts_server_key", &path, &file(CERT, 0o640, 0, 101), chrony);
        assert!(cert_as_key.unwrap_err().contains("not a PEM private key"));
        // Readable by others is readable by the daemon: a finding of the
        // lint, not a refusal here.
        assert!(check_file("nts_server_key", &path, &file(KEY, 0o644, 0, 0), chrony).is_ok());
        assert!(check_file("nts_server_key", &path, &file(KEY, 0o640, 0, 101), chrony).is_ok());
        assert!(check_file("nts_server_key", &path, &file(KEY, 0o400, 100, 0), chrony).is_ok());
        let root_only = check_file("nts_server_key", &path, &file(KEY, 0o600, 0, 0), chrony);
        assert!(root_only
            .unwrap_err()
            .contains("is not readable by _chrony, the user the daemon reads it as"));
        // Before the package made the account, only the mode can be judged.
        let fresh = Some(("_chrony", None, None));
        assert!(check_file("nts_server_key", &path, &file(KEY, 0o600, 0, 0), fresh).is_ok());
    }
}
