//! Parses apt's output: `apt-cache policy`, `apt-cache show` stanzas and
//! their `Depends` fields, `apt-get -s` simulations, and apt/dpkg error text.
//! All of it is expected in the C locale (`LC_ALL=C`).
//!
//! Pure functions only: this module must not run commands; the probes run
//! elsewhere and hand their text in here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::names::PackageName;

/// One package's lines from `apt-cache policy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub installed: Option<String>,
    pub candidate: Option<String>,
}

/// Parses `apt-cache policy PKG...`. Every package in `wanted` gets an entry;
/// ones apt did not print (it never heard of them) get installed/candidate None.
pub fn parse_policy(
    stdout: &str,
    wanted: &[PackageName],
) -> Result<BTreeMap<PackageName, Policy>, String> {
    let mut policies: BTreeMap<PackageName, Policy> = wanted
        .iter()
        .map(|p| (p.clone(), Policy::default()))
        .collect();
    // The wanted package the current block describes; None inside blocks of
    // packages nobody asked about.
    let mut current: Option<&PackageName> = None;
    let mut in_block = false;
    // Only a name's first block counts: an unqualified name resolves to the
    // native architecture, and `name:arch` blocks only follow if asked for.
    let mut seen: Vec<&PackageName> = Vec::new();
    for line in stdout.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            let Some(header) = line.trim_end().strip_suffix(':') else {
                return Err(format!("unexpected apt-cache policy line: {line:?}"));
            };
            let name = header.split(':').next().unwrap_or(header);
            current = wanted
                .iter()
                .find(|p| p.as_str() == name)
                .filter(|p| !seen.contains(p));
            seen.extend(current);
            in_block = true;
            continue;
        }
        if !in_block {
            return Err(format!(
                "apt-cache policy line outside a package block: {line:?}"
            ));
        }
        let Some(policy) = current.and_then(|p| policies.get_mut(p)) else {
            continue;
        };
        let line = line.trim_start();
        if let Some(value) = line.strip_prefix("Installed:") {
            policy.installed = policy_version(value);
        } else if let Some(value) = line.strip_prefix("Candidate:") {
            policy.candidate = policy_version(value);
        }
    }
    Ok(policies)
}

fn policy_version(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty() && value != "(none)").then(|| value.to_string())
}

/// One RFC 822 paragraph of `apt-cache show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stanza {
    /// In order; continuation lines joined with '\n'.
    pub fields: Vec<(String, String)>,
}

impl Stanza {
    /// Field names are case-insensitive in deb822.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// Splits `apt-cache show` output into stanzas. Lines that are neither a
/// field nor a continuation are skipped: apt does not print them, and a
/// stray line must not cost the fields around it.
pub fn parse_stanzas(text: &str) -> Vec<Stanza> {
    let mut stanzas = Vec::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !fields.is_empty() {
                stanzas.push(Stanza {
                    fields: std::mem::take(&mut fields),
                });
            }
        } else if let Some(rest) = line.strip_prefix([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                // Drop only the one marker blank so Description keeps its indentation.
                if !value.is_empty() {
                    value.push('\n');
                }
                value.push_str(rest.trim_end());
            }
        } else if let Some((key, value)) = line.split_once(':') {
            fields.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    if !fields.is_empty() {
        stanzas.push(Stanza { fields });
    }
    stanzas
}

/// `Depends: a (>= 1), b | c:any, d [amd64]` -> `[["a"], ["b","c"], ["d"]]`:
/// names only, arch qualifiers, version constraints, architecture
/// restrictions and build profiles dropped.
pub fn parse_depends(value: &str) -> Vec<Vec<String>> {
    value
        .split(',')
        .map(|group| {
            group
                .split('|')
                .filter_map(|alternative| {
                    let alternative = alternative.trim_start();
                    let end = alternative
                        .find(|c: char| c.is_whitespace() || matches!(c, '(' | '[' | '<' | ':'))
                        .unwrap_or(alternative.len());
                    Some(alternative[..end].to_string()).filter(|name| !name.is_empty())
                })
                .collect::<Vec<_>>()
        })
        .filter(|group| !group.is_empty())
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SimAction {
    Install,
    Remove,
    Purge,
    Configure,
}

/// One `Inst`/`Remv`/`Purg`/`Conf` line of `apt-get -s`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimLine {
    pub action: SimAction,
    /// Without the `:arch` qualifier, to match plan package names.
    pub package: String,
    /// For Inst/Conf the version being installed, for Remv/Purg the one
    /// being removed.
    pub version: Option<String>,
}

/// Picks the actions out of `apt-get -s ...` output; the prose around them
/// ("The following packages will be REMOVED:" ...) is ignored.
pub fn parse_simulation(stdout: &str) -> Vec<SimLine> {
    stdout.lines().filter_map(parse_sim_line).collect()
}

fn parse_sim_line(line: &str) -> Option<SimLine> {
    let (verb, rest) = line.split_once(' ')?;
    let action = match verb {
        "Inst" => SimAction::Install,
        "Remv" => SimAction::Remove,
        "Purg" => SimAction::Purge,
        "Conf" => SimAction::Configure,
        _ => return None,
    };
    let rest = rest.trim_start();
    let (name, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let package = name
        .split(':')
        .next()
        .filter(|n| !n.is_empty())?
        .to_string();
    // `Inst pkg [old] (new release [arch])`: the parenthesised version is the
    // one that ends up installed; a bracketed one alone is the current version.
    let delimited = |open: char, close: char| {
        let inside = tail.split_once(open)?.1;
        let version = inside
            .split(|c: char| c == close || c.is_whitespace())
            .next()?;
        Some(version.to_string()).filter(|v| !v.is_empty())
    };
    let version = delimited('(', ')').or_else(|| delimited('[', ']'));
    Some(SimLine {
        action,
        package,
        version,
    })
}

/// Why an apt-get or dpkg run failed, as far as its stderr tells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AptFailure {
    /// Another process holds a dpkg or apt lock; waiting may help.
    Locked {
        path: String,
        holder_pid: Option<u32>,
        holder_name: Option<String>,
    },
    /// A previous dpkg run stopped half way; `dpkg --configure -a` is needed.
    DpkgInterrupted,
    /// apt knows no installable version (or no package at all) of that name.
    NoCandidate {
        package: String,
    },
    Other,
}

/// Classifies a failure by the first apt `E:` (or dpkg `error:`) line that
/// says something specific.
pub fn classify_failure(stderr: &str) -> AptFailure {
    stderr
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            line.strip_prefix("E: ")
                .or_else(|| line.strip_prefix("dpkg: error: "))
        })
        .find_map(classify_line)
        .unwrap_or(AptFailure::Other)
}

fn classify_line(msg: &str) -> Option<AptFailure> {
    // apt >= 1.9: "Could not get lock PATH. It is held by process PID (NAME)";
    // older: "Could not get lock PATH - open (11: Resource temporarily unavailable)".
    if let Some(rest) = msg.strip_prefix("Could not get lock ") {
        let path = rest.split_whitespace().next()?.trim_end_matches('.');
        let holder = rest.split_once("held by process ").map(|(_, h)| h.trim());
        let holder_pid = holder
            .and_then(|h| h.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|pid| pid.parse().ok());
        let holder_name = holder
            .and_then(|h| h.split_once('(')?.1.rsplit_once(')'))
            .map(|(name, _)| name.to_string());
        return Some(AptFailure::Locked {
            path: path.to_string(),
            holder_pid,
            holder_name,
        });
    }
    // "..., are you root?" is the same sentence for a permission problem, not a lock.
    if let Some(rest) = msg.strip_prefix("Unable to acquire the dpkg frontend lock (") {
        let (path, why) = rest.split_once(')')?;
        return why.contains("another process").then(|| AptFailure::Locked {
            path: path.to_string(),
            holder_pid: None,
            holder_name: None,
        });
    }
    // dpkg itself: "dpkg frontend lock was locked by another process with pid 1234".
    if let Some((what, rest)) = msg
        .split_once(" was locked by another process")
        .or_else(|| msg.split_once(" is locked by another process"))
    {
        let path = match what {
            "dpkg frontend lock" | "dpkg frontend" => "/var/lib/dpkg/lock-frontend",
            "dpkg database lock" | "dpkg status database" => "/var/lib/dpkg/lock",
            other => other,
        };
        let holder_pid = rest
            .trim()
            .strip_prefix("with pid ")
            .and_then(|pid| pid.trim().parse().ok());
        return Some(AptFailure::Locked {
            path: path.to_string(),
            holder_pid,
            holder_name: None,
        });
    }
    if msg.starts_with("dpkg was interrupted") {
        return Some(AptFailure::DpkgInterrupted);
    }
    if let Some(rest) = msg.strip_prefix("Package ") {
        let package = rest.strip_suffix(" has no installation candidate")?;
        return Some(AptFailure::NoCandidate {
            package: unquote(package),
        });
    }
    if let Some(package) = msg.strip_prefix("Unable to locate package ") {
        return Some(AptFailure::NoCandidate {
            package: unquote(package),
        });
    }
    None
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches(|c| c == '\'' || c == '"').to_string()
}

/// The `E:` and `W:` lines of apt's stderr, in order (for error messages).
pub fn error_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("E: ") || line.starts_with("W: "))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<PackageName> {
        list.iter()
            .map(|n| PackageName::parse(n).expect("test name"))
            .collect()
    }

    fn policy(map: &BTreeMap<PackageName, Policy>, name: &str) -> Policy {
        map[&PackageName::parse(name).expect("test name")].clone()
    }

    fn some(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    // `LC_ALL=C apt-cache policy ntp ntpsec` on Debian 12 with ntpsec installed.
    const BOOKWORM_POLICY: &str = "\
ntp:
  Installed: (none)
  Candidate: 1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1
  Version table:
     1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
ntpsec:
  Installed: 1.2.2+dfsg1-1+deb12u1
  Candidate: 1.2.2+dfsg1-1+deb12u1
  Version table:
 *** 1.2.2+dfsg1-1+deb12u1 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
        100 /var/lib/dpkg/status
";

    #[test]
    fn bookworm_policy() {
        let got = parse_policy(BOOKWORM_POLICY, &names(&["ntp", "ntpsec"])).unwrap();
        assert_eq!(
            policy(&got, "ntp"),
            Policy {
                installed: None,
                candidate: some("1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1")
            }
        );
        assert_eq!(
            policy(&got, "ntpsec"),
            Policy {
                installed: some("1.2.2+dfsg1-1+deb12u1"),
                candidate: some("1.2.2+dfsg1-1+deb12u1")
            }
        );
    }

    #[test]
    fn unknown_and_virtual_packages() {
        // `apt-cache policy time-daemon nonexistentpkg chrony`: nothing at all
        // for nonexistentpkg (its "N: Unable to locate" goes to stderr), an
        // empty version table for the virtual package.
        let stdout = "\
time-daemon:
  Installed: (none)
  Candidate: (none)
  Version table:
chrony:
  Installed: (none)
  Candidate: 4.3-2+deb12u3
  Version table:
     4.3-2+deb12u3 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
";
        let got =
            parse_policy(stdout, &names(&["time-daemon", "nonexistentpkg", "chrony"])).unwrap();
        let none = Policy {
            installed: None,
            candidate: None,
        };
        assert_eq!(policy(&got, "time-daemon"), none);
        assert_eq!(policy(&got, "nonexistentpkg"), none);
        assert_eq!(policy(&got, "chrony").candidate, some("4.3-2+deb12u3"));
        assert_eq!(parse_policy("", &names(&["ntp"])).unwrap().len(), 1);
    }

    #[test]
    fn bionic_upgrade_pending_with_multiarch_header() {
        let stdout = "\
ntp:amd64:
  Installed: 1:4.2.8p10+dfsg-5ubuntu7
  Candidate: 1:4.2.8p10+dfsg-5ubuntu7.3
  Version table:
     1:4.2.8p10+dfsg-5ubuntu7.3 500
        500 http://archive.ubuntu.com/ubuntu bionic-updates/main amd64 Packages
        500 http://security.ubuntu.com/ubuntu bionic-security/main amd64 Packages
 *** 1:4.2.8p10+dfsg-5ubuntu7 500
        500 http://archive.ubuntu.com/ubuntu bionic/main amd64 Packages
        100 /var/lib/dpkg/status
ntp:i386:
  Installed: (none)
  Candidate: 1:4.2.8p10+dfsg-5ubuntu7.3
  Version table:
     1:4.2.8p10+dfsg-5ubuntu7.3 500
        500 http://archive.ubuntu.com/ubuntu bionic-updates/main i386 Packages
";
        let got = parse_policy(stdout, &names(&["ntp"])).unwrap();
        assert_eq!(
            policy(&got, "ntp"),
            Policy {
                installed: some("1:4.2.8p10+dfsg-5ubuntu7"),
                candidate: some("1:4.2.8p10+dfsg-5ubuntu7.3")
            }
        );
    }

    #[test]
    fn policy_garbage_is_an_error() {
        for text in [
            "W: something odd\n",
            "  Installed: 1.0\n",
            "ntp\n  Installed: 1.0\n",
        ] {
            let err = parse_policy(text, &names(&["ntp"])).unwrap_err();
            assert!(
                err.contains(text.lines().next().unwrap_or_default()),
                "{err}"
            );
        }
    }

    // `apt-cache show --no-all-versions ntp ntpsec` on Debian 12.
    const BOOKWORM_SHOW: &str = "\
Package: ntp
Source: ntpsec (1.2.2+dfsg1-1+deb12u1)
Version: 1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1
Installed-Size: 62
Maintainer: Richard Laager <rlaager@debian.org>
Architecture: all
Depends: ntpsec
Description: Network Time Protocol daemon/utilities (transitional package)
Description-md5: 478df64ab7ec53f98fde4b6609b69b9c
Homepage: https://www.ntpsec.org
Tag: admin::benchmarking, admin::configuring, implemented-in::c,
 interface::commandline, interface::daemon, network::server,
 network::service, protocol::TODO, role::program, scope::utility,
 use::monitor, use::timekeeping
Section: net
Priority: optional
Filename: pool/main/n/ntpsec/ntp_4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1_all.deb
Size: 22008
MD5sum: dc35c5051911da1cd8a0b1e2348017db
SHA256: 181b9fc2a0df2ea97b71e23142689aa3fe7df1a95503ee66459d6fd8402623f4

Package: ntpsec
Version: 1.2.2+dfsg1-1+deb12u1
Installed-Size: 894
Maintainer: Richard Laager <rlaager@debian.org>
Architecture: amd64
Replaces: ntp (<< 1:4.2.8p15+dfsg-2~), time-daemon
Provides: time-daemon
Depends: adduser, lsb-base, netbase, python3, python3-ntp (= 1.2.2+dfsg1-1+deb12u1), tzdata, libbsd0 (>= 0.0), libc6 (>= 2.34), libcap2 (>= 1:2.10), libssl3 (>= 3.0.0)
Pre-Depends: init-system-helpers (>= 1.54~)
Recommends: systemd | cron | cron-daemon
Suggests: apparmor, certbot, ntpsec-doc, ntpsec-ntpviz
Conflicts: time-daemon
Breaks: ntp (<< 1:4.2.8p15+dfsg-2~)
Description: Network Time Protocol daemon and utility programs
Description-md5: c455d4fac72d8d6e46cfdbc0a5ddb7b3
Homepage: https://www.ntpsec.org
Tag: implemented-in::c, implemented-in::python, implemented-in::shell,
 interface::commandline, interface::daemon, network::client,
 network::server, role::program, use::timekeeping
Section: net
Priority: optional
Filename: pool/main/n/ntpsec/ntpsec_1.2.2+dfsg1-1+deb12u1_amd64.deb
Size: 339764
MD5sum: 9ace9d1851930d6bad097ee5287d4edb
SHA256: 6ef804d1a7e37cb308a9f5b0ff67c9a981cc9cf956dadb44496110943efad9a2

";

    #[test]
    fn bookworm_ntp_is_a_transitional_package_for_ntpsec() {
        let stanzas = parse_stanzas(BOOKWORM_SHOW);
        assert_eq!(stanzas.len(), 2);
        let ntp = &stanzas[0];
        assert_eq!(ntp.get("Package"), Some("ntp"));
        assert_eq!(
            ntp.get("version"),
            Some("1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1")
        );
        let depends = parse_depends(ntp.get("Depends").unwrap_or_default());
        assert!(depends.contains(&vec!["ntpsec".to_string()]), "{depends:?}");
        assert_eq!(
            ntp.get("Tag").map(|t| t.lines().count()),
            Some(4),
            "continuation lines are kept as lines"
        );
        assert!(ntp
            .get("tag")
            .unwrap_or_default()
            .starts_with("admin::benchmarking, "));
        assert!(ntp
            .get("Tag")
            .unwrap_or_default()
            .contains(",\ninterface::commandline,"));
        assert_eq!(ntp.fields[0], ("Package".to_string(), "ntp".to_string()));
        assert_eq!(ntp.get("Conflicts"), None);

        let ntpsec = &stanzas[1];
        let breaks = parse_depends(ntpsec.get("Breaks").unwrap_or_default());
        assert_eq!(breaks, vec![vec!["ntp".to_string()]]);
        let recommends = parse_depends(ntpsec.get("Recommends").unwrap_or_default());
        assert_eq!(recommends, vec![vec!["systemd", "cron", "cron-daemon"]]);
        let depends = parse_depends(ntpsec.get("Depends").unwrap_or_default());
        assert_eq!(depends.len(), 10);
        assert_eq!(depends[4], vec!["python3-ntp"]);
        assert_eq!(depends[8], vec!["libcap2"]);
    }

    #[test]
    fn depends_syntax_noise_is_dropped() {
        assert_eq!(
            parse_depends("a (>= 1), b | c:any, d [amd64]"),
            vec![vec!["a"], vec!["b", "c"], vec!["d"]]
        );
        assert_eq!(
            parse_depends("python3:any (>= 3.6~),\n libssl3 [!i386] <!nocheck> | libssl1.1,  , |"),
            vec![vec!["python3"], vec!["libssl3", "libssl1.1"]]
        );
        assert!(parse_depends("").is_empty());
    }

    #[test]
    fn stanza_description_keeps_its_shape_and_odd_lines_are_skipped() {
        let text = "\
Package: ntpdate
Description-en: client for setting system time from NTP servers
 ntpdate sets the local clock by polling NTP servers.
 .
   indented verbatim line
Conffiles:
 /etc/default/ntpdate 0b3c0a2a5f3d32b7c6b8f06f67a1c2d3
 \n\n\n
garbage without colon
Package: second
";
        let stanzas = parse_stanzas(text);
        assert_eq!(stanzas.len(), 2);
        assert_eq!(
            stanzas[0].get("Description-EN"),
            Some("client for setting system time from NTP servers\nntpdate sets the local clock by polling NTP servers.\n.\n  indented verbatim line")
        );
        assert_eq!(
            stanzas[0].get("Conffiles"),
            Some("/etc/default/ntpdate 0b3c0a2a5f3d32b7c6b8f06f67a1c2d3")
        );
        assert_eq!(
            stanzas[1].fields,
            vec![("Package".to_string(), "second".to_string())]
        );
        assert!(parse_stanzas("").is_empty());
        assert!(parse_stanzas(" orphan continuation\n").is_empty());
    }

    #[test]
    fn bookworm_install_ntp_simulation() {
        // `LC_ALL=C apt-get -s install ntp` on Debian 12 (systemd-timesyncd installed).
        let stdout = "\
Reading package lists...
Building dependency tree...
Reading state information...
The following additional packages will be installed:
  ntpsec python3-ntp
Suggested packages:
  apparmor certbot ntpsec-doc ntpsec-ntpviz
The following packages will be REMOVED:
  systemd-timesyncd
The following NEW packages will be installed:
  ntp ntpsec python3-ntp
0 upgraded, 3 newly installed, 1 to remove and 124 not upgraded.
Remv systemd-timesyncd [252.39-1~deb12u2]
Inst python3-ntp (1.2.2+dfsg1-1+deb12u1 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [amd64])
Inst ntpsec (1.2.2+dfsg1-1+deb12u1 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [amd64])
Inst ntp (1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [all])
Conf python3-ntp (1.2.2+dfsg1-1+deb12u1 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [amd64])
Conf ntpsec (1.2.2+dfsg1-1+deb12u1 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [amd64])
Conf ntp (1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [all])
";
        let lines = parse_simulation(stdout);
        assert_eq!(lines.len(), 7);
        assert_eq!(
            lines[0],
            SimLine {
                action: SimAction::Remove,
                package: "systemd-timesyncd".into(),
                version: some("252.39-1~deb12u2")
            }
        );
        assert_eq!(
            lines[3],
            SimLine {
                action: SimAction::Install,
                package: "ntp".into(),
                version: some("1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1")
            }
        );
        assert_eq!(lines[6].action, SimAction::Configure);
    }

    #[test]
    fn autoremove_purge_and_upgrade_simulation() {
        let stdout = "\
Reading package lists...
Building dependency tree...
Reading state information...
The following packages will be REMOVED:
  libopts25* ntpdate*
0 upgraded, 0 newly installed, 2 to remove and 0 not upgraded.
Purg libopts25 [1:5.18.16-4]
Purg ntpdate [1:4.2.8p15+dfsg-1]
Remv libevent-2.1-7:amd64 [2.1.12-stable-8]
Inst libc6 [2.36-9+deb12u7] (2.36-9+deb12u14 Debian:12.15/oldstable [amd64]) []
Inst ntp [1:4.2.8p15+dfsg-1] (1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1 Debian:12.11/stable [all])
Remv odd
";
        let lines = parse_simulation(stdout);
        let summary: Vec<(SimAction, &str, Option<&str>)> = lines
            .iter()
            .map(|l| (l.action, l.package.as_str(), l.version.as_deref()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (SimAction::Purge, "libopts25", Some("1:5.18.16-4")),
                (SimAction::Purge, "ntpdate", Some("1:4.2.8p15+dfsg-1")),
                (SimAction::Remove, "libevent-2.1-7", Some("2.1.12-stable-8")),
                (SimAction::Install, "libc6", Some("2.36-9+deb12u14")),
                (
                    SimAction::Install,
                    "ntp",
                    Some("1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1")
                ),
                (SimAction::Remove, "odd", None),
            ]
        );
        // Nothing to do (real bookworm output).
        let idle =
            "Reading package lists...\nBuilding dependency tree...\nReading state information...\n\
                    0 upgraded, 0 newly installed, 0 to remove and 124 not upgraded.\n";
        assert!(parse_simulation(idle).is_empty());
        assert!(parse_simulation("Inst\nInst \nRemv (\nPurg [\n")
            .iter()
            .all(|l| l.version.is_none()));
    }

    #[test]
    fn lock_held_by_another_apt() {
        let stderr = "\
E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1234 (apt-get)
N: Be aware that removing the lock file is not a solution and may break your system.
E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?
";
        assert_eq!(
            classify_failure(stderr),
            AptFailure::Locked {
                path: "/var/lib/dpkg/lock-frontend".into(),
                holder_pid: Some(1234),
                holder_name: some("apt-get")
            }
        );
        // apt-get update with the lists lock taken (real apt 2.6 output).
        let stderr =
            "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4532 (python3)\n\
                      E: Unable to lock directory /var/lib/apt/lists/\n";
        assert!(matches!(
            classify_failure(stderr),
            AptFailure::Locked { path, holder_pid: Some(4532), .. } if path == "/var/lib/apt/lists/lock"
        ));
    }

    #[test]
    fn lock_messages_of_older_apt_and_of_dpkg() {
        // Ubuntu 18.04 (apt 1.6).
        let stderr = "\
E: Could not get lock /var/lib/dpkg/lock-frontend - open (11: Resource temporarily unavailable)
E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?
";
        assert_eq!(
            classify_failure(stderr),
            AptFailure::Locked {
                path: "/var/lib/dpkg/lock-frontend".into(),
                holder_pid: None,
                holder_name: None
            }
        );
        let stderr = "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?\n";
        assert!(matches!(
            classify_failure(stderr),
            AptFailure::Locked { .. }
        ));
        // Not a lock: the same sentence when run without root.
        let stderr = "E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)\n\
                      E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), are you root?\n";
        assert_eq!(classify_failure(stderr), AptFailure::Other);
        // dpkg 1.21 run directly.
        let stderr = "dpkg: error: dpkg frontend lock was locked by another process with pid 2210\n\
                      Note: removing the lock file is always wrong, can damage the locked area\n\
                      and the entire system. See <https://wiki.debian.org/Teams/Dpkg/FAQ#db-lock>.\n";
        assert_eq!(
            classify_failure(stderr),
            AptFailure::Locked {
                path: "/var/lib/dpkg/lock-frontend".into(),
                holder_pid: Some(2210),
                holder_name: None
            }
        );
        // dpkg 1.19 (Ubuntu 18.04).
        let stderr = "dpkg: error: dpkg status database is locked by another process\n";
        assert!(
            matches!(classify_failure(stderr), AptFailure::Locked { path, .. } if path == "/var/lib/dpkg/lock")
        );
    }

    #[test]
    fn dpkg_interrupted_and_missing_candidates() {
        let stderr = "E: dpkg was interrupted, you must manually run 'dpkg --configure -a' to correct the problem. \n";
        assert_eq!(classify_failure(stderr), AptFailure::DpkgInterrupted);
        // `apt-get install time-daemon` / `apt-get install nonexistentpkg` on bookworm.
        let stderr = "E: Package 'time-daemon' has no installation candidate\n";
        assert_eq!(
            classify_failure(stderr),
            AptFailure::NoCandidate {
                package: "time-daemon".into()
            }
        );
        let stderr = "E: Unable to locate package nonexistentpkg\n";
        assert_eq!(
            classify_failure(stderr),
            AptFailure::NoCandidate {
                package: "nonexistentpkg".into()
            }
        );
        assert_eq!(classify_failure(""), AptFailure::Other);
        assert_eq!(
            classify_failure("E: Sub-process /usr/bin/dpkg returned an error code (1)\n"),
            AptFailure::Other
        );
        assert_eq!(
            classify_failure("E: Could not get lock \nE: Package \n"),
            AptFailure::Other
        );
        let json = serde_json::to_string(&AptFailure::NoCandidate {
            package: "ntp".into(),
        })
        .unwrap();
        assert_eq!(json, r#"{"kind":"no_candidate","package":"ntp"}"#);
    }

    #[test]
    fn update_failures_come_out_of_error_lines() {
        // `LC_ALL=C apt-get update` against a closed port (real apt 2.6 stderr).
        let stderr = "\
W: Failed to fetch http://127.0.0.1:9/debian/dists/bookworm/InRelease  Could not connect to 127.0.0.1:9 (127.0.0.1). - connect (111: Connection refused)
W: Some index files failed to download. They have been ignored, or old ones used instead.
";
        assert_eq!(
            error_lines(stderr),
            vec![
                "W: Failed to fetch http://127.0.0.1:9/debian/dists/bookworm/InRelease  Could not connect to 127.0.0.1:9 (127.0.0.1). - connect (111: Connection refused)",
                "W: Some index files failed to download. They have been ignored, or old ones used instead.",
            ]
        );
        let stderr = "\nE: Failed to fetch http://127.0.0.1:9/debian/pool/main/n/ntpsec/ntpsec_1.2.2+dfsg1-1+deb12u1_amd64.deb  Could not connect to 127.0.0.1:9 (127.0.0.1). - connect (111: Connection refused)\n\
                      N: Be aware that removing the lock file is not a solution and may break your system.\n\
                      E: Unable to fetch some archives, maybe run apt-get update or try with --fix-missing?\n";
        let lines = error_lines(stderr);
        assert_eq!(lines.len(), 2);
        assert!(lines[1].starts_with("E: Unable to fetch some archives"));
        assert_eq!(classify_failure(stderr), AptFailure::Other);
    }
}
