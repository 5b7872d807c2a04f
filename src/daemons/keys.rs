//! Symmetric keys (`vars.keys`, a source's `key: ID`): the key file each
//! daemon reads, the key types it knows, and its lines. A secret is read
//! from a file on the node by facts and never shown: every output masks it.

use serde::Serialize;
use std::fmt;

/// The key ids every daemon with keys accepts (NTP's key ID field; 0 is
/// reserved, and classic ntpd and NTPsec stop at 65535).
pub const KEY_IDS: std::ops::RangeInclusive<u64> = 1..=65535;

/// What replaces a secret wherever the key file is shown.
pub const MASK: &str = "********";

/// The key types a plan may name, from the strongest.
pub const PLAN_TYPES: [&str; 7] = [
    "AES128", "AES256", "SHA512", "SHA384", "SHA256", "SHA1", "MD5",
];

/// A daemon's key file: where it reads it, and its spelling of each of the
/// plan's key types it has (plan name, its name).
#[derive(Debug, Clone, Copy)]
pub struct KeyFile {
    pub path: &'static str,
    pub types: &'static [(&'static str, &'static str)],
    /// ASCII keys longer than this are read as hex (the ntp family: 20),
    /// so longer ones are written in hex; `None`: chrony's `HEX:` prefix.
    pub ascii_up_to: Option<usize>,
    /// The longest key in bytes, if the daemon has a limit.
    pub max_bytes: Option<usize>,
}

impl KeyFile {
    /// The daemon's name of a plan key type, if it has that type.
    pub fn spelling(&self, plan_type: &str) -> Option<&'static str> {
        self.types
            .iter()
            .find(|(t, _)| *t == plan_type)
            .map(|(_, s)| *s)
    }
}

/// The secrets facts read, by `secret_file`.
pub type Secrets = std::collections::BTreeMap<String, Secret>;

/// One entry of `vars.keys`, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Key {
    pub id: u64,
    /// One of `PLAN_TYPES`.
    #[serde(rename = "type")]
    pub kind: String,
    pub secret_file: String,
}

/// A secret as the operator's file gives it: printable ASCII, or `HEX:`
/// and hex digits. Never printed: `Debug` and `Display` mask it.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Ascii(String),
    Bytes(Vec<u8>),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl Secret {
    /// Parses a secret file's text (one secret; surrounding white space
    /// dropped). The message never quotes the secret.
    pub fn parse(text: &str) -> Result<Secret, String> {
        let s = text.trim();
        if s.is_empty() {
            return Err("is empty: it must hold one secret".into());
        }
        if s.lines().count() > 1 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("holds more than one word: it must hold one secret, printable ASCII or HEX: and hex digits".into());
        }
        if let Some(hex) = s.strip_prefix("HEX:") {
            if hex.is_empty() || hex.len() % 2 != 0 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err("starts with HEX: but is not an even number of hex digits".into());
            }
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digits"))
                .collect();
            return Ok(Secret::Bytes(bytes));
        }
        if !s.chars().all(|c| c.is_ascii_graphic()) || s.contains('#') {
            return Err(
                "is not printable ASCII without #: write other secrets as HEX: and hex digits"
                    .into(),
            );
        }
        Ok(Secret::Ascii(s.to_string()))
    }

    pub fn len(&self) -> usize {
        match self {
            Secret::Ascii(s) => s.len(),
            Secret::Bytes(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            Secret::Ascii(s) => s.as_bytes().to_vec(),
            Secret::Bytes(b) => b.clone(),
        }
    }

    /// The secret as `file` writes it: ASCII where the daemon reads it as
    /// ASCII, else hex (with chrony's `HEX:` prefix).
    pub fn written(&self, file: &KeyFile) -> String {
        let hex: String = self.bytes().iter().map(|b| format!("{b:02X}")).collect();
        let Some(max) = file.ascii_up_to else {
            return match self {
                Secret::Ascii(s) => s.clone(),
                Secret::Bytes(_) => format!("HEX:{hex}"),
            };
        };
        match self {
            Secret::Ascii(s) if s.len() <= max => s.clone(),
            _ if hex.len() > max => hex,
            // Too short to be read as hex: its bytes, which `unfit` made
            // sure are ASCII.
            other => String::from_utf8_lossy(&other.bytes()).into_owned(),
        }
    }

    /// Why `file` cannot hold this secret for a key of `plan_type`, if it
    /// cannot; never quotes the secret.
    pub fn unfit(&self, file: &KeyFile, plan_type: &str) -> Option<String> {
        let n = self.len();
        if let Some(max) = file.max_bytes.filter(|max| n > *max) {
            return Some(format!(
                "is {n} bytes long; this daemon takes keys of at most {max} bytes"
            ));
        }
        let aes = match plan_type {
            "AES128" => Some(16),
            "AES256" => Some(32),
            _ => None,
        };
        if let Some(want) = aes.filter(|want| n != *want) {
            return Some(format!("is {n} bytes long; an {plan_type} key is exactly {want} bytes (HEX: and {} hex digits)", want * 2));
        }
        if let (Some(max), Secret::Bytes(b)) = (file.ascii_up_to, self) {
            let short = n * 2 <= max;
            if short && !b.iter().all(|c| c.is_ascii_graphic() && *c != b'#') {
                return Some(format!(
                    "is {n} bytes in hex; this daemon reads a key of {max} characters or fewer as ASCII, and these bytes are not: give at least {} bytes",
                    max / 2 + 1
                ));
            }
        }
        None
    }
}

/// The lines of `file` for `keys`, secrets from `secret` (by secret_file);
/// a type the daemon lacks is written as the plan names it (facts refuse
/// it before anything is rendered for a node).
pub fn lines(file: &KeyFile, keys: &[Key], secret: &dyn Fn(&str) -> Option<Secret>) -> Vec<String> {
    keys.iter()
        .map(|k| {
            let kind = file.spelling(&k.kind).unwrap_or(&k.kind);
            let written =
                secret(&k.secret_file).map_or_else(|| MASK.to_string(), |s| s.written(file));
            format!("{} {kind} {written}", k.id)
        })
        .collect()
}

/// A key file's text with every secret masked: comments and blank lines
/// kept, each key line as `ID TYPE ********`.
pub fn mask(text: &str) -> String {
    text.lines()
        .map(|line| {
            let body = line.trim_start();
            if body.is_empty() || body.starts_with('#') {
                return line.to_string();
            }
            let words: Vec<&str> = body.split_whitespace().take(2).collect();
            format!("{} {MASK}", words.join(" "))
        })
        .map(|l| l + "\n")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NTP: KeyFile = KeyFile {
        path: "/etc/ntp.keys",
        types: &[("SHA1", "SHA1"), ("AES128", "AES128CMAC")],
        ascii_up_to: Some(20),
        max_bytes: Some(32),
    };
    const CHRONY: KeyFile = KeyFile {
        path: "/etc/chrony/chrony.keys",
        types: &[("SHA1", "SHA1")],
        ascii_up_to: None,
        max_bytes: None,
    };

    #[test]
    fn secrets_parse_and_never_print() {
        let s = Secret::parse("topsecret\n").unwrap();
        assert_eq!(format!("{s:?}"), MASK);
        assert_eq!(
            Secret::parse("HEX:0aFF").unwrap(),
            Secret::Bytes(vec![10, 255])
        );
        for bad in [
            "",
            " \n",
            "two words",
            "HEX:abc",
            "HEX:zz",
            "has#hash",
            "a\nb",
        ] {
            let e = Secret::parse(bad).unwrap_err();
            assert!(bad.trim().is_empty() || !e.contains(bad.trim()), "{e}");
        }
    }

    #[test]
    fn each_daemon_gets_the_form_it_reads() {
        let short = Secret::parse("abc").unwrap();
        let long = Secret::parse("abcdefghijklmnopqrstuvwxyz").unwrap();
        let hex = Secret::parse(&format!("HEX:{}", "ab".repeat(20))).unwrap();
        assert_eq!(short.written(&NTP), "abc");
        assert_eq!(
            long.written(&NTP),
            "6162636465666768696A6B6C6D6E6F707172737475767778797A"
        );
        assert_eq!(hex.written(&NTP), "AB".repeat(20));
        assert_eq!(short.written(&CHRONY), "abc");
        assert_eq!(hex.written(&CHRONY), format!("HEX:{}", "AB".repeat(20)));
        // 26 ASCII bytes hexified are 52 digits: longer than 20, read as hex.
        assert_eq!(long.unfit(&NTP, "SHA1"), None);
        let too_long = Secret::parse(&format!("HEX:{}", "ab".repeat(33))).unwrap();
        assert!(too_long
            .unfit(&NTP, "SHA1")
            .unwrap()
            .contains("at most 32 bytes"));
        assert!(short
            .unfit(&CHRONY, "AES128")
            .unwrap()
            .contains("exactly 16 bytes"));
        let binary_short = Secret::parse("HEX:00ff").unwrap();
        assert!(binary_short.unfit(&NTP, "SHA1").is_some());
        assert_eq!(binary_short.unfit(&CHRONY, "SHA1"), None);
    }

    #[test]
    fn lines_use_the_daemons_type_names_and_mask_hides_every_secret() {
        let keys = [Key {
            id: 7,
            kind: "AES128".into(),
            secret_file: "/k".into(),
        }];
        let secret = |_: &str| Secret::parse("HEX:00112233445566778899aabbccddeeff").ok();
        let lines = lines(&NTP, &keys, &secret);
        assert_eq!(lines, ["7 AES128CMAC 00112233445566778899AABBCCDDEEFF"]);
        let text = format!("# comment\n\n{}\n", lines[0]);
        assert_eq!(mask(&text), "# comment\n\n7 AES128CMAC ********\n");
    }
}
