//! Debian version comparison as deb-version(7) defines it and dpkg implements
//! it (`verrevcmp`): `[epoch:]upstream[-revision]`, compared part by part.
//!
//! Pure functions only: this module must not run commands (no calls to
//! `dpkg --compare-versions`); it takes text and returns an ordering.

use std::cmp::Ordering;

/// Orders two Debian version strings the way `dpkg --compare-versions` does.
///
/// Malformed input never panics: an epoch that is not all digits is treated
/// as part of the upstream version, so the result is still a total order.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    cmp_digits(ea.as_bytes(), eb.as_bytes())
        .then_with(|| verrevcmp(ua, ub))
        .then_with(|| verrevcmp(ra, rb))
}

/// Splits into (epoch, upstream, revision); a missing revision is "", which
/// dpkg treats as equal to "0" (so `1.0` == `1.0-0`).
fn split(v: &str) -> (&str, &str, &str) {
    let v = v.trim();
    let (epoch, rest) = match v.split_once(':') {
        Some((e, rest)) if !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit()) => (e, rest),
        _ => ("0", v),
    };
    // The upstream part may itself contain hyphens; only the last one starts the revision.
    match rest.rsplit_once('-') {
        Some((upstream, revision)) => (epoch, upstream, revision),
        None => (epoch, rest, ""),
    }
}

/// Sort weight of a non-digit byte: `~` before the end of the string, the end
/// before letters, letters before everything else.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    while !a.is_empty() || !b.is_empty() {
        let (na, nb) = (non_digit_prefix(a), non_digit_prefix(b));
        let len = na.max(nb);
        for i in 0..len {
            let (ca, cb) = (order(a.get(i).copied()), order(b.get(i).copied()));
            if ca != cb {
                return ca.cmp(&cb);
            }
        }
        // Equal weights up to `len` mean both prefixes had the same length.
        a = &a[na..];
        b = &b[nb..];
        let (da, db) = (digit_prefix(a), digit_prefix(b));
        let by_value = cmp_digits(&a[..da], &b[..db]);
        if by_value != Ordering::Equal {
            return by_value;
        }
        a = &a[da..];
        b = &b[db..];
    }
    Ordering::Equal
}

fn non_digit_prefix(s: &[u8]) -> usize {
    s.iter().position(u8::is_ascii_digit).unwrap_or(s.len())
}

fn digit_prefix(s: &[u8]) -> usize {
    s.iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(s.len())
}

/// Compares ASCII digit runs by value without parsing, so runs longer than
/// any integer type (seen in date-based versions) cannot overflow.
fn cmp_digits(a: &[u8], b: &[u8]) -> Ordering {
    let (a, b) = (strip_zeros(a), strip_zeros(b));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn strip_zeros(s: &[u8]) -> &[u8] {
    &s[s.iter().position(|&c| c != b'0').unwrap_or(s.len())..]
}

#[cfg(test)]
mod tests {
    use super::compare;
    use std::cmp::Ordering::{Equal, Greater, Less};

    #[track_caller]
    fn check(a: &str, b: &str, want: std::cmp::Ordering) {
        assert_eq!(compare(a, b), want, "{a} vs {b}");
        assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
    }

    #[test]
    fn bookworm_transitional_ntp_is_newer_than_bullseye_ntp() {
        // bookworm's ntp became a transitional package built from ntpsec.
        check(
            "1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1",
            "1:4.2.8p15+dfsg-1",
            Greater,
        );
        // ... and ntpsec's Breaks: ntp (<< 1:4.2.8p15+dfsg-2~) must catch bullseye's ntp.
        check("1:4.2.8p15+dfsg-1", "1:4.2.8p15+dfsg-2~", Less);
        check(
            "1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1",
            "1:4.2.8p15+dfsg-2~",
            Greater,
        );
        // Only the last hyphen starts the revision, so "-2~1.2.2+dfsg1" belongs to upstream.
        check(
            "1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1",
            "1:4.2.8p15+dfsg-2",
            Greater,
        );
    }

    #[test]
    fn tilde_sorts_before_everything_even_the_end() {
        check("1.0~rc1", "1.0", Less);
        check("1.0~rc1", "1.0~rc2", Less);
        check("1.0~~", "1.0~", Less);
        check("1.2.2+dfsg1-1~bpo11+1", "1.2.2+dfsg1-1", Less);
    }

    #[test]
    fn missing_revision_sorts_before_any_revision_but_equals_zero() {
        check("1.0", "1.0-1", Less);
        check("1.0", "1.0-0", Equal);
    }

    #[test]
    fn epoch_wins_over_everything() {
        check("1:1.0", "2.0", Greater);
        check("0:2.0", "2.0", Equal);
        check("2:0.1", "1:9.9", Greater);
        check("1:4.2.8p15+dfsg-1", "4.2.8p15+dfsg-1", Greater);
    }

    #[test]
    fn trusty_ntp_is_older_than_xenial_ntp() {
        check(
            "1:4.2.6.p5+dfsg-3ubuntu2.14.04.13",
            "1:4.2.8p4+dfsg-3ubuntu5",
            Less,
        );
        // Same upstream across Ubuntu security updates: only the revision differs.
        check(
            "1:4.2.8p10+dfsg-5ubuntu7.3",
            "1:4.2.8p10+dfsg-5ubuntu7",
            Greater,
        );
        check(
            "1:4.2.8p12+dfsg-3ubuntu4.20.04.1",
            "1:4.2.8p12+dfsg-3ubuntu4",
            Greater,
        );
    }

    #[test]
    fn letters_sort_before_non_letters_and_digit_runs_numerically() {
        check("1.0a", "1.0+", Less);
        check("1.0a", "1.0.", Less);
        check("4.2.8p9", "4.2.8p15", Less);
        check("1.010", "1.9", Greater);
        check("1.001", "1.1", Equal);
        check("1.2.2+dfsg1-1+deb12u1", "1.2.2+dfsg1-1", Greater);
        check("4.3-2+deb12u1", "4.3-2+deb12u3", Less);
    }

    #[test]
    fn equal_versions() {
        check(
            "1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1",
            "1:4.2.8p15+dfsg-2~1.2.2+dfsg1-1+deb12u1",
            Equal,
        );
        check("", "", Equal);
    }

    #[test]
    fn odd_input_does_not_panic() {
        check("", "0", Equal);
        check("a:1.0", "1.0", Greater);
        let _ = (compare(":", "-"), compare("-", "::~"), compare("~", ""));
        check("99999999999999999999999999:1", "1:1", Greater);
        check("1.é", "1.e", Greater);
    }
}
