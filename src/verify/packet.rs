//! The probe packets an attacker sends (docs/platforms.md, "Probe packets") and
//! the reading of what comes back.
//!
//! Pure: bytes in, values out. Nothing here opens a socket; `socket` sends
//! these packets and hands the datagrams back for `analyze`.

use serde::Serialize;

/// One query of the amplification check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Query {
    /// Mode 3 client request: ordinary time service, answered with 48 bytes.
    Time,
    /// Mode 6 READVAR (`ntpq -c rv`): about 30 times the request without noquery.
    ReadVar,
    /// Mode 6 READSTAT (`ntpq -c as`).
    ReadStat,
    /// Mode 7 MON_GETLIST_1 ("monlist"), the amplifier of CVE-2013-5211.
    MonGetList,
    /// Mode 7 PEER_LIST (`ntpdc -c listpeers`).
    PeerList,
}

impl Query {
    /// The time query first: ntpd's `limited` rate-limits a source by its
    /// packet spacing, and the first packet of a run is never limited.
    pub const ALL: [Query; 5] = [
        Query::Time,
        Query::ReadVar,
        Query::ReadStat,
        Query::MonGetList,
        Query::PeerList,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Query::Time => "mode 3 time request",
            Query::ReadVar => "mode 6 READVAR",
            Query::ReadStat => "mode 6 READSTAT",
            Query::MonGetList => "mode 7 MON_GETLIST_1 (monlist)",
            Query::PeerList => "mode 7 PEER_LIST",
        }
    }

    /// The NTP mode of the request.
    pub fn mode(self) -> u8 {
        match self {
            Query::Time => 3,
            Query::ReadVar | Query::ReadStat => 6,
            Query::MonGetList | Query::PeerList => 7,
        }
    }

    /// Whether an answer is ordinary time service or a control/monitoring
    /// reply, the kind that turns a server into a reflector.
    pub fn kind(self) -> QueryKind {
        match self {
            Query::Time => QueryKind::TimeService,
            _ => QueryKind::Control,
        }
    }

    /// The request, byte for byte as docs/platforms.md gives it.
    pub fn packet(self) -> Vec<u8> {
        let (head, len): (&[u8], usize) = match self {
            // LI 0, version 3, mode 3; the rest zero.
            Query::Time => (&[0x1b], 48),
            // Version 2, mode 6; opcode 2 READVAR / 1 READSTAT; sequence 1; association 0; no data.
            Query::ReadVar => (&[0x16, 0x02, 0x00, 0x01], 12),
            Query::ReadStat => (&[0x16, 0x01, 0x00, 0x01], 12),
            // Version 2, mode 7; sequence 0; implementation 3 (XNTPD); request 42 / 0.
            Query::MonGetList => (&[0x17, 0x00, 0x03, 0x2a], 48),
            Query::PeerList => (&[0x17, 0x00, 0x03, 0x00], 48),
        };
        let mut p = vec![0u8; len];
        p[..head.len()].copy_from_slice(head);
        p
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum QueryKind {
    TimeService,
    Control,
}

/// Whether a datagram says it is an answer (the R bit of modes 6 and 7;
/// mode 4 is the server's answer to mode 3 by definition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Response,
    Request,
}

/// What the header of one received datagram says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Reply {
    pub bytes: usize,
    pub mode: u8,
    pub version: u8,
    pub direction: Direction,
    /// Mode 6 E bit, or a non-zero mode 7 error code: the daemon answered,
    /// if only to refuse (the bytes still reach the victim).
    pub error: bool,
    /// For a mode 4 answer with stratum 0: the kiss code, a refusal (`RATE`,
    /// `DENY`, `RSTR`) or a state (`INIT`: not synchronised yet).
    pub kiss_code: Option<String>,
}

/// Reads the header of one datagram; `None` when it is too short to be NTP.
pub fn analyze(datagram: &[u8]) -> Option<Reply> {
    let first = *datagram.first()?;
    let mode = first & 0x07;
    let version = (first >> 3) & 0x07;
    let (direction, error, kiss_code) = match mode {
        // Byte 1: R E M opcode.
        6 => {
            let b1 = *datagram.get(1)?;
            (response(b1 & 0x80 != 0), b1 & 0x40 != 0, None)
        }
        // Byte 0: R M version mode; the error code is the high nibble of byte 4.
        7 => {
            let err = datagram.get(4).map_or(0, |b| b >> 4);
            (response(first & 0x80 != 0), err != 0, None)
        }
        4 | 5 => {
            if datagram.len() < 48 {
                return None;
            }
            let kiss = (datagram[1] == 0).then(|| {
                String::from_utf8_lossy(&datagram[12..16])
                    .trim_end_matches('\0')
                    .to_string()
            });
            (Direction::Response, false, kiss)
        }
        _ => (Direction::Request, false, None),
    };
    Some(Reply {
        bytes: datagram.len(),
        mode,
        version,
        direction,
        error,
        kiss_code,
    })
}

fn response(bit: bool) -> Direction {
    if bit {
        Direction::Response
    } else {
        Direction::Request
    }
}

/// Received bytes per sent byte; 0 when nothing came back.
pub fn amplification(sent: usize, received: usize) -> f64 {
    if sent == 0 {
        return 0.0;
    }
    let factor = received as f64 / sent as f64;
    // Two decimals are all a report needs, and they keep the JSON readable.
    (factor * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn packets_are_exactly_those_of_docs_platforms_md() {
        let zeros = |n: usize| vec!["00"; n].join(" ");
        assert_eq!(hex(&Query::Time.packet()), format!("1b {}", zeros(47)));
        assert_eq!(
            hex(&Query::ReadVar.packet()),
            "16 02 00 01 00 00 00 00 00 00 00 00"
        );
        assert_eq!(
            hex(&Query::ReadStat.packet()),
            "16 01 00 01 00 00 00 00 00 00 00 00"
        );
        assert_eq!(
            hex(&Query::MonGetList.packet()),
            format!("17 00 03 2a {}", zeros(44))
        );
        assert_eq!(
            hex(&Query::PeerList.packet()),
            format!("17 00 03 00 {}", zeros(44))
        );
        for q in Query::ALL {
            let request = analyze(&q.packet()).unwrap();
            assert_eq!(request.mode, q.mode(), "{q:?}");
            assert_eq!(request.direction, Direction::Request, "{q:?}");
        }
        assert_eq!(analyze(&Query::Time.packet()).unwrap().version, 3);
        assert_eq!(analyze(&Query::ReadVar.packet()).unwrap().version, 2);
        assert_eq!(analyze(&Query::MonGetList.packet()).unwrap().version, 2);
    }

    #[test]
    fn mode_6_reply_has_the_r_bit_and_may_carry_an_error() {
        // Header of a READVAR answer as ntpd 4.2.8 sends it: R set, opcode 2.
        let mut reply = vec![
            0x16, 0x82, 0x00, 0x01, 0x06, 0x15, 0x00, 0x00, 0x00, 0x00, 0x01, 0x6c,
        ];
        reply.extend(vec![b'x'; 364]);
        let r = analyze(&reply).unwrap();
        assert_eq!(
            (r.mode, r.version, r.direction, r.error, r.bytes),
            (6, 2, Direction::Response, false, 376)
        );
        let refused = analyze(&[0x16, 0xc2, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(
            (refused.direction, refused.error),
            (Direction::Response, true)
        );
    }

    #[test]
    fn mode_7_reply_has_the_r_bit_in_the_first_byte() {
        let mut reply = vec![0x97, 0x00, 0x03, 0x2a, 0x00, 0x06, 0x00, 0x48];
        reply.extend(vec![0u8; 432]);
        let r = analyze(&reply).unwrap();
        assert_eq!(
            (r.mode, r.version, r.direction, r.error),
            (7, 2, Direction::Response, false)
        );
        // INFO_ERR_IMPL (1) in the high nibble of byte 4.
        let err = analyze(&[0x97, 0x00, 0x03, 0x2a, 0x10, 0, 0, 0]).unwrap();
        assert!(err.error);
    }

    #[test]
    fn mode_4_answers_and_kiss_codes() {
        let mut answer = vec![0u8; 48];
        answer[0] = 0xe4; // LI 3 (unsynchronised), version 4, mode 4
        answer[1] = 16;
        let r = analyze(&answer).unwrap();
        assert_eq!(
            (r.mode, r.version, r.direction, r.kiss_code.clone()),
            (4, 4, Direction::Response, None)
        );
        answer[1] = 0;
        answer[12..16].copy_from_slice(b"RATE");
        assert_eq!(analyze(&answer).unwrap().kiss_code.as_deref(), Some("RATE"));
        assert_eq!(
            analyze(&answer[..20]),
            None,
            "a truncated mode 4 packet is not an answer"
        );
        assert_eq!(analyze(&[]), None);
        assert_eq!(analyze(&[0x16]), None, "a mode 6 header needs two bytes");
    }

    #[test]
    fn amplification_is_received_over_sent() {
        assert_eq!(amplification(12, 0), 0.0);
        assert_eq!(amplification(12, 396), 33.0);
        assert_eq!(amplification(48, 48), 1.0);
        assert_eq!(amplification(48, 440 * 6), 55.0);
        assert_eq!(amplification(12, 100), 8.33);
        assert_eq!(amplification(0, 100), 0.0);
    }
}
