//! The names every stage shares, importing nothing of the crate: validated
//! package, unit and path names, daemon ids and lint rule names.
//!
//! Validated names: each newtype is built once, at load time, and can then be
//! written into a command line or a config file without changing meaning.
//!
//! The rules are strict on purpose: a value that would need quoting or could be
//! read as an option (leading `-`) or as a second config line is refused here,
//! before anything touches the node.

use serde::Serialize;
use std::fmt;

/// Why a value was refused; the caller adds the key path and position.
pub type NameError = String;

macro_rules! newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

newtype!(
    /// A Debian package name (policy 5.6.1: `[a-z0-9][a-z0-9+.-]+`).
    PackageName
);
newtype!(
    /// A systemd unit name such as `ntpsec.service`.
    UnitName
);
newtype!(
    /// An NTP server or pool: a DNS name, an IPv4 or an IPv6 address.
    Host
);
newtype!(
    /// A normalised absolute path: no `..`, `.` or empty components, no NUL
    /// or line breaks.
    AbsPath
);
newtype!(
    /// A user or group name as found in /etc/passwd.
    Account
);

fn quoted(s: &str) -> String {
    format!("{s:?}")
}

impl PackageName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let b = s.as_bytes();
        let first_ok = b
            .first()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let rest_ok = b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'+' | b'.' | b'-')
        });
        if b.len() >= 2 && first_ok && rest_ok {
            Ok(Self(s.to_string()))
        } else {
            Err(format!(
                "{} is not a Debian package name (policy: [a-z0-9][a-z0-9+.-]+, at least 2 characters)",
                quoted(s)
            ))
        }
    }
}

impl UnitName {
    /// Accepts `ntp` (taken as `ntp.service`) or a full unit name.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let ok_chars = !s.is_empty()
            && !s.starts_with(['-', '.'])
            && s.bytes().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, b':' | b'_' | b'.' | b'@' | b'-')
            });
        if !ok_chars || s.len() > 255 {
            return Err(format!(
                "{} is not a systemd unit name (letters, digits and :_.@- only, not starting with - or .)",
                quoted(s)
            ));
        }
        const SUFFIXES: [&str; 4] = [".service", ".socket", ".timer", ".target"];
        if SUFFIXES.iter().any(|suf| s.ends_with(suf)) {
            Ok(Self(s.to_string()))
        } else if s.contains('.') {
            Err(format!(
                "{} is not a service unit (expected a name ending in .service)",
                quoted(s)
            ))
        } else {
            Ok(Self(format!("{s}.service")))
        }
    }

    /// The name without `.service`, as SysV `service` and init.d want it.
    pub fn stem(&self) -> &str {
        self.0.strip_suffix(".service").unwrap_or(&self.0)
    }
}

impl Host {
    /// A hostname (RFC 1123 labels), an IPv4 address, or an IPv6 address
    /// (optionally with a `%zone`). Anything else is refused: in ntp.conf a
    /// space, `#` or line break would start another directive.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let refuse = || Err(format!("{} is not a hostname or address", quoted(s)));
        if s.is_empty() || s.len() > 253 || s.starts_with('-') {
            return refuse();
        }
        if s.parse::<std::net::Ipv4Addr>().is_ok() {
            return Ok(Self(s.to_string()));
        }
        let (addr, zone) = s.split_once('%').unwrap_or((s, ""));
        if addr.parse::<std::net::Ipv6Addr>().is_ok()
            && zone
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
        {
            return Ok(Self(s.to_string()));
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        };
        let name = s.strip_suffix('.').unwrap_or(s);
        let all_numeric = name.bytes().all(|c| c.is_ascii_digit() || c == b'.');
        if !all_numeric && name.split('.').all(label_ok) {
            Ok(Self(s.to_string()))
        } else {
            refuse()
        }
    }
}

impl AbsPath {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if !s.starts_with('/') {
            return Err(format!("{} is not an absolute path", quoted(s)));
        }
        if s.split('/').any(|part| part == "..") {
            return Err(format!("{} contains `..`", quoted(s)));
        }
        // One spelling per file: `//`, `/./` or a trailing `/` would let a
        // path name a file without being equal to that file's path string.
        if s[1..].split('/').any(|part| part.is_empty() || part == ".") {
            return Err(format!(
                "not a normalised absolute path: {} (no empty or `.` components, no trailing `/`)",
                quoted(s)
            ));
        }
        if s.contains(['\0', '\n', '\r']) || s.len() > 4096 {
            return Err(format!("{} is not a usable file path", quoted(s)));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_path(&self) -> &std::path::Path {
        std::path::Path::new(&self.0)
    }
}

impl Account {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && !s.starts_with('-')
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'));
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(format!("{} is not a user or group name", quoted(s)))
        }
    }
}

/// A file mode, 0 to 0o7777, written in YAML as a quoted octal string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

/// As people read modes: `"0644"`, not 420.
impl Serialize for Mode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An octal string of four digits.
impl schemars::JsonSchema for Mode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FileMode".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": "^[0-7]{4}$"})
    }
}

impl Mode {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let digits = s.strip_prefix("0o").unwrap_or(s);
        match u32::from_str_radix(digits, 8) {
            Ok(m) if m <= 0o7777 && !digits.is_empty() => Ok(Mode(m)),
            _ => Err(format!(
                "{} is not a file mode (an octal number from \"0000\" to \"7777\")",
                quoted(s)
            )),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

/// A lint rule; its name is stable (plans list it in `allow_insecure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    Ipv6DefaultMissing,
    KodWithoutLimited,
    NoqueryMissing,
    NoqueryMissingNetwork,
    NomodifyMissing,
    MonitorEnabled,
    ChronyAllowAll,
    ChronyCmdallow,
    OpenntpdListenAny,
    IncludeNotLinted,
    NtsKeyReadable,
}

impl Rule {
    pub const ALL: [Rule; 11] = [
        Rule::Ipv6DefaultMissing,
        Rule::KodWithoutLimited,
        Rule::NoqueryMissing,
        Rule::NoqueryMissingNetwork,
        Rule::NomodifyMissing,
        Rule::MonitorEnabled,
        Rule::ChronyAllowAll,
        Rule::ChronyCmdallow,
        Rule::OpenntpdListenAny,
        Rule::IncludeNotLinted,
        Rule::NtsKeyReadable,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rule::Ipv6DefaultMissing => "ipv6-default-missing",
            Rule::KodWithoutLimited => "kod-without-limited",
            Rule::NoqueryMissing => "noquery-missing",
            Rule::NoqueryMissingNetwork => "noquery-missing-network",
            Rule::NomodifyMissing => "nomodify-missing",
            Rule::MonitorEnabled => "monitor-enabled",
            Rule::ChronyAllowAll => "chrony-allow-all",
            Rule::ChronyCmdallow => "chrony-cmdallow",
            Rule::OpenntpdListenAny => "openntpd-listen-any",
            Rule::IncludeNotLinted => "include-not-linted",
            Rule::NtsKeyReadable => "nts-key-readable",
        }
    }

    pub fn parse(name: &str) -> Result<Rule, String> {
        Rule::ALL
            .into_iter()
            .find(|r| r.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Rule::ALL.iter().map(|r| r.name()).collect();
                format!("{name:?} is not a lint rule ({})", known.join(", "))
            })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// Time zones (`vars.timezone`).

newtype!(
    /// A tz database zone name such as `Europe/Paris`: the path of its file
    /// under /usr/share/zoneinfo, so it may never climb out of it.
    TimeZone
);

impl TimeZone {
    /// The shape of a tz name (Area/Location, `UTC`, `Etc/GMT+5`): parts of
    /// ASCII letters, digits, `_`, `-`, `+` and `.`, each starting with a
    /// letter or digit (no `..`, no hidden file), the whole with a letter.
    /// `localtime` is refused: Debian's zoneinfo has it as a link to
    /// /etc/localtime, which would then point at itself.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let part_ok = |p: &str| {
            p.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
                && p.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'+' | b'.'))
                && !p.contains("..")
        };
        let shaped = s.len() <= 128
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.split('/').all(part_ok);
        if !shaped {
            return Err(format!(
                "{} is not a time zone name: expected a name of the tz database such as Europe/Paris or UTC (parts of letters, digits, _ - + . separated by /, no leading /, no ..)",
                quoted(s)
            ));
        }
        if s == "localtime" {
            return Err(
                "\"localtime\" is the node's own setting, not a zone: name the zone, such as Europe/Paris"
                    .into(),
            );
        }
        Ok(Self(s.to_string()))
    }
}

#[cfg(test)]
mod timezone_tests {
    use super::TimeZone;

    #[test]
    fn zone_names_have_the_shape_of_the_tz_database() {
        for ok in [
            "Europe/Paris",
            "UTC",
            "Etc/GMT+5",
            "Etc/GMT-14",
            "America/Argentina/Buenos_Aires",
            "America/Port-au-Prince",
            "EST5EDT",
        ] {
            assert_eq!(TimeZone::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "/etc/passwd",
            "../etc/passwd",
            "Europe/../../etc/passwd",
            "Europe/..",
            "Europe/",
            "Europe//Paris",
            "Europe/.Paris",
            "Europe/Paris\n",
            "Europe/Par is",
            "-Europe",
            "5Europe",
            "Europe/-Paris",
            "Europe/Paris;rm",
        ] {
            let err = TimeZone::parse(bad).unwrap_err();
            assert!(err.contains("is not a time zone name"), "{bad:?}: {err}");
        }
        assert!(TimeZone::parse("localtime")
            .unwrap_err()
            .contains("not a zone"));
        assert!(TimeZone::parse(&"A".repeat(129)).is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_follow_debian_policy() {
        for ok in ["ntp", "ntpsec-ntpdate", "libstdc++6", "g++", "0ad"] {
            assert_eq!(PackageName::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "a",
            "Ntp",
            "-ntp",
            "ntp ntpdate",
            "ntp;rm",
            "+x",
            "ntp\n",
        ] {
            assert!(PackageName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn hosts_refuse_anything_that_changes_a_config_line() {
        for ok in [
            "0.ubuntu.pool.ntp.org",
            "127.0.0.1",
            "::1",
            "fe80::1%eth0",
            "time.example.",
            "ntp1",
        ] {
            assert!(Host::parse(ok).is_ok(), "{ok:?} refused");
        }
        for bad in [
            "pool.ntp.org\nrestrict default",
            "a b",
            "a#b",
            "\"x\"",
            "-ntp",
            "",
            "1.2.3.999",
            "x..y",
            "under_score.example",
        ] {
            let err = Host::parse(bad).unwrap_err();
            assert!(err.contains("is not a hostname or address"), "{err}");
        }
    }

    #[test]
    fn units_get_service_suffix() {
        assert_eq!(UnitName::parse("ntp").unwrap().as_str(), "ntp.service");
        assert_eq!(UnitName::parse("ntpsec.service").unwrap().stem(), "ntpsec");
        assert!(UnitName::parse("ntp;reboot").is_err());
        assert!(UnitName::parse("-x").is_err());
        assert!(UnitName::parse("a.conf").is_err());
    }

    #[test]
    fn paths_are_absolute_without_dotdot() {
        assert!(AbsPath::parse("/etc/ntp.conf").is_ok());
        assert!(AbsPath::parse("etc/ntp.conf")
            .unwrap_err()
            .contains("not an absolute path"));
        assert!(AbsPath::parse("/etc/../shadow").unwrap_err().contains(".."));
        assert!(AbsPath::parse("/etc/x\n").is_err());
    }

    #[test]
    fn paths_have_one_spelling() {
        for bad in [
            "/etc/./ntp.conf",
            "/etc//ntp.conf",
            "//etc/ntp.conf",
            "/./etc/ntp.conf",
            "/etc/ntp.conf/",
            "/etc/ntp.conf/.",
            "/",
        ] {
            let err = AbsPath::parse(bad).unwrap_err();
            assert_eq!(
                err,
                format!(
                    "not a normalised absolute path: {bad:?} (no empty or `.` components, no trailing `/`)"
                )
            );
        }
        for ok in ["/etc/ntpsec/ntp.conf", "/etc/.hidden", "/etc/ntp..conf"] {
            assert_eq!(AbsPath::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn modes_are_octal_and_bounded() {
        assert_eq!(Mode::parse("0644").unwrap(), Mode(0o644));
        assert_eq!(Mode::parse("7777").unwrap(), Mode(0o7777));
        assert!(Mode::parse("10000").is_err());
        assert!(Mode::parse("0899").is_err());
        assert!(Mode::parse("").is_err());
        assert_eq!(Mode(0o644).to_string(), "0644");
    }
}
