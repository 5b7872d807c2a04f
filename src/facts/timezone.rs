//! The node's time zone (`vars.timezone`), read-only: whether the plan's
//! zone is a tz file of the node's zoneinfo database, what /etc/localtime
//! is and what /etc/timezone says. A zone the node does not have is
//! refused here, before any change.

use crate::names::TimeZone;
use anyhow::{Context, Result};
use std::io::Read;
use std::path::Path;

/// The node's tz database, as tzdata installs it.
pub const ZONEINFO: &str = "/usr/share/zoneinfo";
/// The zone the C library reads: a link into `ZONEINFO`.
pub const LOCALTIME: &str = "/etc/localtime";
/// The zone's name, which Debian keeps beside the link.
pub const TIMEZONE_FILE: &str = "/etc/timezone";
/// How every compiled tz file starts (tzfile(5)).
const TZIF_MAGIC: &[u8] = b"TZif";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimezoneFact {
    /// The zone the plan asks for.
    pub zone: TimeZone,
    /// What `ZONEINFO/ZONE` is.
    pub zone_file: ZoneFile,
    pub localtime: Localtime,
    /// /etc/timezone's content; `None`: no such file.
    pub timezone_file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneFile {
    /// A tz file (links followed), inside the database.
    Tzif,
    Missing,
    /// There, but not a tz file (a table, a directory).
    NotTzif,
    /// Its links lead out of the database, here.
    Outside(String),
}

/// /etc/localtime, not followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Localtime {
    Missing,
    /// A symbolic link, and its target as written.
    Link(String),
    /// A regular file: a copy of some zone, which does not say which.
    File,
    /// Neither (a directory, a device).
    Other,
}

/// The link /etc/localtime gets, relative as systemd writes it.
pub fn link_target(zone: &TimeZone) -> String {
    format!("..{ZONEINFO}/{zone}")
}

/// What /etc/timezone holds for `zone`.
pub fn timezone_content(zone: &TimeZone) -> String {
    format!("{zone}\n")
}

impl TimezoneFact {
    /// Whether the node is in the zone as timedatectl leaves it: the link
    /// (relative, or absolute as older tzdata wrote it) and Debian's file.
    pub fn converged(&self) -> bool {
        let absolute = format!("{ZONEINFO}/{}", self.zone);
        let linked = matches!(&self.localtime, Localtime::Link(t)
            if *t == link_target(&self.zone) || *t == absolute);
        linked && self.timezone_file.as_deref() == Some(timezone_content(&self.zone).as_str())
    }

    /// The zone the node is in now, as /etc/localtime names it.
    pub fn current(&self) -> String {
        match &self.localtime {
            Localtime::Missing => "none (no /etc/localtime)".into(),
            Localtime::Link(target) => match target.split_once("zoneinfo/") {
                Some((_, zone)) => zone.to_string(),
                None => format!("/etc/localtime -> {target}"),
            },
            Localtime::File => "a copy in /etc/localtime".into(),
            Localtime::Other => "/etc/localtime is not a file".into(),
        }
    }

    /// What /etc/timezone says, when it disagrees with the link.
    pub fn timezone_file_differs(&self) -> Option<String> {
        let said = self.timezone_file.as_deref().map(str::trim_end);
        match said {
            None => Some("no /etc/timezone".into()),
            Some(s) if s == self.current() => None,
            Some(s) => Some(format!("/etc/timezone says {s:?}")),
        }
    }

    /// The refusal of a zone the node's database does not have.
    pub fn check(&self) -> Result<(), String> {
        let (zone, file) = (&self.zone, format!("{ZONEINFO}/{}", self.zone));
        let why = match &self.zone_file {
            ZoneFile::Tzif => return Ok(()),
            ZoneFile::Missing => format!("{file} does not exist"),
            ZoneFile::NotTzif => format!("{file} is not a tz file (no TZif header)"),
            ZoneFile::Outside(to) => format!("{file} leads to {to}, outside {ZONEINFO}"),
        };
        Err(format!(
            "vars.timezone: the time zone {zone} is not in this node's zoneinfo database: {why} \
             (the tzdata package provides the zones, as files under {ZONEINFO}; `timedatectl \
             list-timezones` lists them)"
        ))
    }
}

/// The facts under `root` (`/` on a node; a directory in tests).
pub fn read(root: &Path, zone: &TimeZone) -> Result<TimezoneFact> {
    let under = |path: &str| root.join(path.trim_start_matches('/'));
    let localtime = match std::fs::symlink_metadata(under(LOCALTIME)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Localtime::Missing,
        Err(e) => return Err(e).context(format!("stat {LOCALTIME}")),
        Ok(m) if m.file_type().is_symlink() => {
            let target = std::fs::read_link(under(LOCALTIME))
                .with_context(|| format!("reading the link {LOCALTIME}"))?;
            Localtime::Link(target.to_string_lossy().into_owned())
        }
        Ok(m) if m.is_file() => Localtime::File,
        Ok(_) => Localtime::Other,
    };
    let timezone_file = match std::fs::read(under(TIMEZONE_FILE)) {
        Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).context(format!("reading {TIMEZONE_FILE}")),
    };
    Ok(TimezoneFact {
        zone: zone.clone(),
        zone_file: zone_file(&under(ZONEINFO), zone)?,
        localtime,
        timezone_file,
    })
}

/// What the zone's file is, its links followed.
fn zone_file(zoneinfo: &Path, zone: &TimeZone) -> Result<ZoneFile> {
    let path = zoneinfo.join(zone.as_str());
    let real = match path.canonicalize() {
        Ok(real) => real,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ZoneFile::Missing),
        Err(e) => return Err(e).context(format!("resolving {}", path.display())),
    };
    let base = zoneinfo.canonicalize().unwrap_or_else(|_| zoneinfo.into());
    if !real.starts_with(&base) {
        return Ok(ZoneFile::Outside(real.display().to_string()));
    }
    let mut head = Vec::new();
    let read = std::fs::File::open(&real).and_then(|f| f.take(4).read_to_end(&mut head));
    Ok(match read {
        Ok(_) if head == TZIF_MAGIC => ZoneFile::Tzif,
        // A directory (Europe) cannot be read as a file: not a zone either.
        _ => ZoneFile::NotTzif,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(s: &str) -> TimeZone {
        TimeZone::parse(s).unwrap()
    }

    /// A root with Europe/Paris, a link US/Eastern, a table, a link out.
    fn root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let zi = dir.path().join("usr/share/zoneinfo");
        std::fs::create_dir_all(zi.join("Europe")).unwrap();
        std::fs::create_dir_all(zi.join("America")).unwrap();
        std::fs::create_dir_all(zi.join("US")).unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(zi.join("Europe/Paris"), b"TZif2\0\0\0").unwrap();
        std::fs::write(zi.join("America/New_York"), b"TZif2\0\0\0").unwrap();
        std::os::unix::fs::symlink("../America/New_York", zi.join("US/Eastern")).unwrap();
        std::fs::write(zi.join("zone.tab"), b"# tz zone descriptions\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("etc/passwd"), zi.join("Out")).unwrap();
        std::fs::write(dir.path().join("etc/passwd"), b"TZif, not really\n").unwrap();
        dir
    }

    #[test]
    fn a_zone_is_a_tz_file_inside_the_database() {
        let r = root();
        let file = |z: &str| read(r.path(), &zone(z)).unwrap().zone_file;
        assert_eq!(file("Europe/Paris"), ZoneFile::Tzif);
        assert_eq!(file("US/Eastern"), ZoneFile::Tzif);
        assert_eq!(file("Mars/Olympus"), ZoneFile::Missing);
        assert_eq!(file("zone.tab"), ZoneFile::NotTzif);
        assert_eq!(file("Europe"), ZoneFile::NotTzif);
        assert!(matches!(file("Out"), ZoneFile::Outside(to) if to.ends_with("etc/passwd")));
    }

    #[test]
    fn localtime_and_etc_timezone_are_read_as_they_are() {
        let r = root();
        let fact = read(r.path(), &zone("Europe/Paris")).unwrap();
        assert_eq!(fact.localtime, Localtime::Missing);
        assert_eq!(fact.timezone_file, None);
        assert!(!fact.converged());
        let etc = r.path().join("etc");
        std::os::unix::fs::symlink("/usr/share/zoneinfo/Etc/UTC", etc.join("localtime")).unwrap();
        std::fs::write(etc.join("timezone"), "Etc/UTC\n").unwrap();
        let fact = read(r.path(), &zone("Europe/Paris")).unwrap();
        assert_eq!(
            fact.localtime,
            Localtime::Link("/usr/share/zoneinfo/Etc/UTC".into())
        );
        assert_eq!(fact.current(), "Etc/UTC");
        assert_eq!(fact.timezone_file_differs(), None);
        assert!(!fact.converged());
        std::fs::remove_file(etc.join("localtime")).unwrap();
        std::fs::write(etc.join("localtime"), b"TZif2").unwrap();
        assert_eq!(
            read(r.path(), &zone("Europe/Paris")).unwrap().localtime,
            Localtime::File
        );
    }

    #[test]
    fn converged_means_the_link_and_debians_file_both_name_the_zone() {
        let fact = |link: &str, file: Option<&str>| TimezoneFact {
            zone: zone("Europe/Paris"),
            zone_file: ZoneFile::Tzif,
            localtime: Localtime::Link(link.into()),
            timezone_file: file.map(str::to_string),
        };
        let relative = "../usr/share/zoneinfo/Europe/Paris";
        assert!(fact(relative, Some("Europe/Paris\n")).converged());
        assert!(fact("/usr/share/zoneinfo/Europe/Paris", Some("Europe/Paris\n")).converged());
        assert!(!fact(relative, Some("Etc/UTC\n")).converged());
        assert!(!fact(relative, None).converged());
        assert!(!fact("../usr/share/zoneinfo/Etc/UTC", Some("Europe/Paris\n")).converged());
        let half = fact("../usr/share/zoneinfo/Europe/Paris", Some("Etc/UTC\n"));
        assert_eq!(
            half.timezone_file_differs().as_deref(),
            Some("/etc/timezone says \"Etc/UTC\"")
        );
    }

    #[test]
    fn a_zone_the_node_lacks_is_refused_naming_it_the_file_and_tzdata() {
        let r = root();
        let err = read(r.path(), &zone("Mars/Olympus"))
            .unwrap()
            .check()
            .unwrap_err();
        assert!(
            err.starts_with("vars.timezone: the time zone Mars/Olympus"),
            "{err}"
        );
        assert!(
            err.contains("/usr/share/zoneinfo/Mars/Olympus does not exist"),
            "{err}"
        );
        assert!(err.contains("tzdata"), "{err}");
        assert!(read(r.path(), &zone("Europe/Paris"))
            .unwrap()
            .check()
            .is_ok());
    }
}
