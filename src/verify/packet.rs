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
    /// Mode 6 READVAR of one association (`ntpq -c "rv ID"`), one per ID
    /// that READSTAT listed: a peer's variables are the largest mode 6 answer.
    ReadPeerVar,
    /// chrony's command port (UDP 323) REQ_TRACKING (`chronyc tracking`).
    ChronyTracking,
    /// chrony's command port REQ_N_SOURCES (`chronyc sources` asks it first).
    ChronySources,
}

/// chrony's command port (candm.h DEFAULT_CANDM_PORT).
pub const CHRONY_COMMAND_PORT: u16 = 323;

impl Query {
    /// The time query first: ntpd's `limited` rate-limits a source by its
    /// packet spacing, and the first packet of a run is never limited.
    /// The queries every check sends; READVAR of each association follows
    /// READSTAT's answer (`ReadPeerVar`, not listed: its packets depend on it).
    pub const ALL: [Query; 7] = [
        Query::Time,
        Query::ReadVar,
        Query::ReadStat,
        Query::MonGetList,
        Query::PeerList,
        Query::ChronyTracking,
        Query::ChronySources,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Query::Time => "mode 3 time request",
            Query::ReadVar => "mode 6 READVAR",
            Query::ReadStat => "mode 6 READSTAT",
            Query::MonGetList => "mode 7 MON_GETLIST_1 (monlist)",
            Query::PeerList => "mode 7 PEER_LIST",
            Query::ReadPeerVar => "mode 6 READVAR of an association",
            Query::ChronyTracking => "chrony command port REQ_TRACKING",
            Query::ChronySources => "chrony command port REQ_N_SOURCES",
        }
    }

    /// The NTP mode of the request; 0 for chrony's command protocol, which
    /// is not NTP.
    pub fn mode(self) -> u8 {
        match self {
            Query::Time => 3,
            Query::ReadVar | Query::ReadStat | Query::ReadPeerVar => 6,
            Query::MonGetList | Query::PeerList => 7,
            Query::ChronyTracking | Query::ChronySources => 0,
        }
    }

    /// The port it goes to: the target's, or chrony's command port.
    pub fn port(self, ntp_port: u16) -> u16 {
        match self.kind() {
            QueryKind::Command => CHRONY_COMMAND_PORT,
            _ => ntp_port,
        }
    }

    /// Whether an answer is ordinary time service, a control/monitoring
    /// reply (the kind that turns a server into a reflector), or chrony's
    /// monitoring (answers as large as the request: a leak, no amplifier).
    pub fn kind(self) -> QueryKind {
        match self {
            Query::Time => QueryKind::TimeService,
            Query::ChronyTracking | Query::ChronySources => QueryKind::Command,
            _ => QueryKind::Control,
        }
    }

    /// The request, byte for byte as docs/platforms.md gives it.
    pub fn packet(self) -> Vec<u8> {
        self.packet_for(0)
    }

    /// The request for `association` (`ReadPeerVar` only; the others ignore it).
    pub fn packet_for(self, association: u16) -> Vec<u8> {
        let (head, len): (&[u8], usize) = match self {
            // LI 0, version 3, mode 3; the rest zero.
            Query::Time => (&[0x1b], 48),
            // Version 2, mode 6; opcode 2 READVAR / 1 READSTAT; sequence 1; association 0; no data.
            Query::ReadVar => (&[0x16, 0x02, 0x00, 0x01], 12),
            Query::ReadStat => (&[0x16, 0x01, 0x00, 0x01], 12),
            Query::ReadPeerVar => {
                let [hi, lo] = association.to_be_bytes();
                return vec![0x16, 0x02, 0x00, 0x01, 0, 0, hi, lo, 0, 0, 0, 0];
            }
            // Version 2, mode 7; sequence 0; implementation 3 (XNTPD); request 42 / 0.
            Query::MonGetList => (&[0x17, 0x00, 0x03, 0x2a], 48),
            Query::PeerList => (&[0x17, 0x00, 0x03, 0x00], 48),
            Query::ChronyTracking => return chrony_request(CHRONY_REQ_TRACKING),
            Query::ChronySources => return chrony_request(CHRONY_REQ_N_SOURCES),
        };
        let mut p = vec![0u8; len];
        p[..head.len()].copy_from_slice(head);
        p
    }
}

/// candm.h: REQ_N_SOURCES and REQ_TRACKING, and the lengths chronyd wants
/// for them (protocol 6 pads each request to its reply's length, so an
/// answer is never larger than its request).
const CHRONY_REQ_N_SOURCES: u16 = 14;
const CHRONY_REQ_TRACKING: u16 = 33;
const CHRONY_PROTO_VERSION: u8 = 6;
/// The reply header (CMD_Reply up to `data`); requests have 20 bytes of it.
const CHRONY_REPLY_HEADER: usize = 28;

fn chrony_request_length(command: u16) -> usize {
    let reply_data = match command {
        CHRONY_REQ_TRACKING => 80,
        _ => 4,
    };
    CHRONY_REPLY_HEADER + reply_data
}

/// CMD_Request: version 6, packet type 1 (request), the command, attempt 0,
/// sequence 1, then zeros up to the padded length.
fn chrony_request(command: u16) -> Vec<u8> {
    let mut p = vec![0u8; chrony_request_length(command)];
    p[0] = CHRONY_PROTO_VERSION;
    p[1] = 1;
    p[4..6].copy_from_slice(&command.to_be_bytes());
    p[8..12].copy_from_slice(&1u32.to_be_bytes());
    p
}

/// What one chronyd reply says: the command's status and, for the two
/// replies the check asks for, what a remote host learns from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChronyReply {
    /// candm.h STT_*: 0 is success; others refuse the command.
    pub status: u16,
    /// RPY_TRACKING: the reference's address (or refid) and stratum.
    pub tracking: Option<(String, u16)>,
    /// RPY_N_SOURCES: how many sources the daemon has.
    pub sources: Option<u32>,
}

/// Reads a CMD_Reply; `None` for anything else (wrong version or type, too short).
pub fn chrony_reply(datagram: &[u8]) -> Option<ChronyReply> {
    let be16 = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes(
            datagram.get(at..at + 2)?.try_into().ok()?,
        ))
    };
    let be32 = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(
            datagram.get(at..at + 4)?.try_into().ok()?,
        ))
    };
    if datagram.len() < CHRONY_REPLY_HEADER
        || datagram[0] != CHRONY_PROTO_VERSION
        || datagram[1] != 2
    {
        return None;
    }
    let (reply, status) = (be16(6)?, be16(8)?);
    let data = CHRONY_REPLY_HEADER;
    let mut answer = ChronyReply {
        status,
        tracking: None,
        sources: None,
    };
    if status != 0 {
        return Some(answer);
    }
    match reply {
        // RPY_N_SOURCES
        2 => answer.sources = be32(data),
        // RPY_TRACKING: ref_id, IPAddr (16 address bytes, family, pad), stratum.
        5 => {
            let ref_id = be32(data)?;
            let family = be16(data + 20)?;
            let addr = datagram.get(data + 4..data + 20)?;
            let reference = match family {
                1 => std::net::Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).to_string(),
                2 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(addr).ok()?).to_string(),
                // No address and no refid: not synchronised to anything yet.
                _ if ref_id == 0 => "none".to_string(),
                _ => format!("refid {ref_id:08X}"),
            };
            answer.tracking = Some((reference, be16(data + 24)?));
        }
        _ => {}
    }
    Some(answer)
}

/// The data of a mode 6 answer, its fragments put together by offset;
/// error answers and requests contribute nothing.
pub fn mode6_data(datagrams: &[Vec<u8>]) -> Vec<u8> {
    /// A mode 6 answer's data never gets near this; it bounds the buffer.
    const MAX: usize = 1 << 16;
    let mut data = Vec::new();
    for d in datagrams {
        if d.len() < 12 || d[0] & 0x07 != 6 || d[1] & 0xc0 != 0x80 {
            continue;
        }
        let offset = usize::from(u16::from_be_bytes([d[8], d[9]]));
        let count = usize::from(u16::from_be_bytes([d[10], d[11]]));
        let chunk = &d[12..d.len().min(12 + count)];
        let end = offset + chunk.len();
        if end > MAX {
            continue;
        }
        if data.len() < end {
            data.resize(end, 0);
        }
        data[offset..end].copy_from_slice(chunk);
    }
    data
}

/// The association IDs in a READSTAT answer's data: (ID, status) pairs.
pub fn associations(data: &[u8]) -> Vec<u16> {
    data.chunks_exact(4)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .filter(|id| *id != 0)
        .collect()
}

/// The `name=value` pairs of a READVAR answer's text (values unquoted).
pub fn variables(data: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(data);
    let mut items = Vec::new();
    let (mut item, mut quoted) = (String::new(), false);
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                item.push(c);
            }
            ',' if !quoted => items.push(std::mem::take(&mut item)),
            _ => item.push(c),
        }
    }
    items.push(item);
    items
        .iter()
        .filter_map(|i| {
            let (name, value) = i.trim().split_once('=')?;
            Some((
                name.trim().to_string(),
                value.trim().trim_matches('"').to_string(),
            ))
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum QueryKind {
    TimeService,
    Control,
    /// chrony's command port: monitoring answers, no larger than the request.
    Command,
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
        for q in Query::ALL
            .into_iter()
            .filter(|q| q.kind() != QueryKind::Command)
        {
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
    #[test]
    fn a_peer_s_readvar_names_its_association() {
        assert_eq!(
            hex(&Query::ReadPeerVar.packet_for(0xb1c2)),
            "16 02 00 01 00 00 b1 c2 00 00 00 00"
        );
        assert_eq!(Query::ReadPeerVar.packet_for(7).len(), 12);
    }

    #[test]
    fn chrony_requests_are_padded_to_their_reply_s_length() {
        // candm.h: 20-byte header (version 6, type 1 request, command,
        // attempt, sequence, two pads), no data, padding to the reply's size:
        // RPY_TRACKING 28 + 80 bytes, RPY_N_SOURCES 28 + 4.
        let tracking = Query::ChronyTracking.packet();
        assert_eq!(tracking.len(), 108);
        assert_eq!(hex(&tracking[..12]), "06 01 00 00 00 21 00 00 00 00 00 01");
        assert!(tracking[12..].iter().all(|b| *b == 0));
        let sources = Query::ChronySources.packet();
        assert_eq!(sources.len(), 32);
        assert_eq!(hex(&sources[..6]), "06 01 00 00 00 0e");
        assert_eq!(Query::ChronyTracking.port(123), CHRONY_COMMAND_PORT);
        assert_eq!(Query::ReadVar.port(1123), 1123);
    }

    /// A CMD_Reply header: version 6, type 2, command, reply code, status.
    fn chrony_head(command: u16, reply: u16, status: u16, len: usize) -> Vec<u8> {
        let mut d = vec![0u8; len];
        d[0] = 6;
        d[1] = 2;
        d[4..6].copy_from_slice(&command.to_be_bytes());
        d[6..8].copy_from_slice(&reply.to_be_bytes());
        d[8..10].copy_from_slice(&status.to_be_bytes());
        d
    }

    #[test]
    fn chrony_replies_tell_the_reference_and_the_number_of_sources() {
        let mut tracking = chrony_head(33, 5, 0, 108);
        tracking[28..32].copy_from_slice(&[0x0a, 0x7b, 0, 2]); // ref_id
        tracking[32..36].copy_from_slice(&[10, 123, 0, 2]); // in4
        tracking[48..50].copy_from_slice(&1u16.to_be_bytes()); // IPADDR_INET4
        tracking[52..54].copy_from_slice(&3u16.to_be_bytes()); // stratum
        assert_eq!(
            chrony_reply(&tracking),
            Some(ChronyReply {
                status: 0,
                tracking: Some(("10.123.0.2".into(), 3)),
                sources: None
            })
        );
        let mut sources = chrony_head(14, 2, 0, 32);
        sources[28..32].copy_from_slice(&4u32.to_be_bytes());
        assert_eq!(chrony_reply(&sources).unwrap().sources, Some(4));
        // STT_UNAUTH: answered, but it tells nothing.
        let refused = chrony_reply(&chrony_head(33, 1, 2, 28)).unwrap();
        assert_eq!((refused.status, refused.tracking), (2, None));
        // A local reference (no address): its refid.
        let mut local = chrony_head(33, 5, 0, 108);
        local[28..32].copy_from_slice(b"LOCL");
        assert_eq!(
            chrony_reply(&local).unwrap().tracking,
            Some(("refid 4C4F434C".into(), 0))
        );
        assert_eq!(
            chrony_reply(&Query::ChronyTracking.packet()),
            None,
            "a request"
        );
        assert_eq!(chrony_reply(&[6, 2, 0]), None);
    }

    /// A mode 6 answer fragment: opcode, association, offset, data.
    fn mode6(opcode: u8, more: bool, offset: u16, data: &[u8]) -> Vec<u8> {
        let mut d = vec![
            0x16,
            0x80 | opcode | if more { 0x20 } else { 0 },
            0,
            1,
            0,
            0,
            0,
            0,
        ];
        d.extend(offset.to_be_bytes());
        d.extend((data.len() as u16).to_be_bytes());
        d.extend(data);
        while d.len() % 4 != 0 {
            d.push(0);
        }
        d
    }

    #[test]
    fn mode_6_fragments_are_put_together_and_read_as_variables() {
        let text = b"version=\"ntpd 4.2.8p15@1.3728-o\", processor=\"x86_64\",\r\nsystem=\"Linux/6.1.0-13-amd64\", leap=00, refid=10.123.0.2";
        let (a, b) = text.split_at(40);
        // Out of order, as UDP may deliver them.
        let data = mode6_data(&[mode6(2, false, 40, b), mode6(2, true, 0, a)]);
        assert_eq!(data, text.to_vec());
        let vars = variables(&data);
        assert_eq!(vars[0], ("version".into(), "ntpd 4.2.8p15@1.3728-o".into()));
        assert_eq!(vars[2], ("system".into(), "Linux/6.1.0-13-amd64".into()));
        assert_eq!(vars[4], ("refid".into(), "10.123.0.2".into()));
        // A quoted comma stays in its value.
        assert_eq!(
            variables(b"a=\"x, y\",b=1"),
            vec![("a".into(), "x, y".into()), ("b".into(), "1".into())]
        );
        // An error answer carries no data.
        let mut error = mode6(2, false, 0, b"x=1");
        error[1] |= 0x40;
        assert!(mode6_data(&[error]).is_empty());
    }

    #[test]
    fn readstat_lists_association_ids() {
        let data = mode6_data(&[mode6(
            1,
            false,
            0,
            &[0xb1, 0xc2, 0x96, 0x1a, 0xb1, 0xc3, 0x91, 0x14],
        )]);
        assert_eq!(associations(&data), vec![0xb1c2, 0xb1c3]);
        assert!(associations(&[]).is_empty());
    }
}
