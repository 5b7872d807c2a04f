//! The one place that sends probe packets: a UDP socket bound to the chosen
//! source address, one request, and every datagram that comes back within a
//! bounded wait.
//!
//! Must not: resolve names, retry, or send more than the one packet it is
//! given. Reading the answers is `packet::analyze`'s job.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// A monlist answer is at most a few hundred datagrams; this bounds the loop
/// even against a peer that keeps sending.
const MAX_DATAGRAMS: usize = 10_000;
/// Larger than any NTP datagram (mode 7 items stay well below this).
const BUFFER: usize = 65_536;

/// Sends `packet` from `from` (an ephemeral port) to `target` and returns
/// every datagram the target sends back before `wait` has passed.
///
/// The socket is connected, so the kernel drops datagrams from any other
/// address. "Nothing listens" (ICMP port unreachable) is an empty answer,
/// not an error: it is exactly "no amplification".
pub fn exchange(
    from: IpAddr,
    target: SocketAddr,
    packet: &[u8],
    wait: Duration,
) -> Result<Vec<Vec<u8>>, String> {
    let socket = UdpSocket::bind(SocketAddr::new(from, 0)).map_err(|e| {
        format!("cannot bind a UDP socket to {from} (is it an address of this host?): {e}")
    })?;
    socket
        .connect(target)
        .map_err(|e| format!("cannot address {target} from {from}: {e}"))?;
    socket.send(packet).map_err(|e| {
        format!(
            "sending {} bytes from {from} to {target}: {e}",
            packet.len()
        )
    })?;
    let deadline = Instant::now() + wait;
    let mut buf = vec![0u8; BUFFER];
    let mut datagrams = Vec::new();
    while datagrams.len() < MAX_DATAGRAMS {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        socket
            .set_read_timeout(Some(left))
            .map_err(|e| format!("setting a receive timeout: {e}"))?;
        match socket.recv(&mut buf) {
            Ok(n) => datagrams.push(buf[..n].to_vec()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            // ICMP port unreachable from an earlier send: nobody is listening.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("receiving from {target} on {from}: {e}")),
        }
    }
    Ok(datagrams)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback echo that answers one datagram with three, like a daemon
    /// whose answer spans several packets.
    #[test]
    fn collects_every_datagram_within_the_wait_and_only_from_the_target() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let target = server.local_addr().unwrap();
        let worker = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            server
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let (n, peer) = server.recv_from(&mut buf).unwrap();
            for size in [n, 100, 200] {
                server.send_to(&vec![7u8; size], peer).unwrap();
            }
            peer
        });
        let from: IpAddr = "127.0.0.2".parse().unwrap();
        let got = exchange(
            from,
            target,
            &[0x16, 0x02, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
            Duration::from_millis(500),
        )
        .unwrap();
        let peer = worker.join().unwrap();
        assert_eq!(
            peer.ip(),
            from,
            "the probe comes from the chosen source address"
        );
        assert_eq!(
            got.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![12, 100, 200]
        );
    }

    #[test]
    fn nobody_listening_is_no_answer_and_the_wait_is_bounded() {
        // A port that was just free: the kernel answers with port unreachable.
        let target = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let started = Instant::now();
        let got = exchange(
            "127.0.0.2".parse().unwrap(),
            target,
            &[0x1b],
            Duration::from_millis(300),
        )
        .unwrap();
        assert!(got.is_empty());
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_source_address_not_on_this_host_is_an_error_naming_it() {
        // 192.0.2.0/24 is TEST-NET-1: never assigned to a host; nothing is sent.
        let err = exchange(
            "192.0.2.1".parse().unwrap(),
            "127.0.0.1:9".parse().unwrap(),
            &[0x1b],
            Duration::from_millis(10),
        )
        .unwrap_err();
        assert!(
            err.contains("cannot bind a UDP socket to 192.0.2.1"),
            "{err}"
        );
    }
}
