//! The secrets of `vars.keys`, read from the operator's files on the node
//! (read-only). Every refusal names the file and why, never the secret.

use crate::daemons::keys::{Key, Secret, Secrets};
use crate::daemons::{Daemon, Flavor};
use crate::names::AbsPath;
use anyhow::{bail, Result};

/// Reads each key's secret file, refusing a type the daemon lacks, a
/// missing, empty or malformed file, one others may read or write, and a
/// secret the daemon's key file cannot hold.
pub fn read(probe: &dyn super::Probe, daemon: &Daemon, keys: &[Key]) -> Result<Secrets> {
    let Some(file) = daemon.flavor.key_file() else {
        // facts::daemon::check_settings refused keys for it already.
        return Ok(Secrets::new());
    };
    let mut secrets = Secrets::new();
    for (i, key) in keys.iter().enumerate() {
        let at = format!("vars.keys[{i}]");
        if file.spelling(&key.kind).is_none() {
            let with: Vec<&str> = Flavor::all()
                .filter(|f| {
                    f.key_file()
                        .is_some_and(|k| k.spelling(&key.kind).is_some())
                })
                .map(|f| f.as_str())
                .collect();
            let own: Vec<&str> = file.types.iter().map(|(t, _)| *t).collect();
            bail!(
                "{at}.type: {} has no {} keys ({} {} them); {} takes {}",
                daemon.package,
                key.kind,
                with.join(" and "),
                if with.len() == 1 { "has" } else { "have" },
                daemon.flavor.as_str(),
                own.join(", ")
            );
        }
        let path = AbsPath::parse(&key.secret_file).map_err(anyhow::Error::msg)?;
        let Some(state) = probe.file(&path)? else {
            bail!("{at}.secret_file: {path} does not exist on this node: put the key's secret there (one line, mode 0600, root's)");
        };
        if state.mode & 0o006 != 0 {
            bail!(
                "{at}.secret_file: {path} is {} by others (mode {:04o}): chmod o-rwx {path}, and replace the secret if others may have read it",
                if state.mode & 0o004 != 0 { "readable" } else { "writable" },
                state.mode
            );
        }
        let text = String::from_utf8(state.content)
            .map_err(|_| anyhow::anyhow!("{at}.secret_file: {path} is not text"))?;
        let secret = Secret::parse(&text)
            .map_err(|why| anyhow::anyhow!("{at}.secret_file: {path} {why}"))?;
        if let Some(why) = secret.unfit(&file, &key.kind) {
            bail!("{at}.secret_file: the secret in {path} {why}");
        }
        secrets.insert(key.secret_file.clone(), secret);
    }
    Ok(secrets)
}
