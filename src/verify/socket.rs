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

/// What came back for one packet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// Every datagram from the target within the wait.
    pub datagrams: Vec<Vec<u8>>,
    /// The kernel reported ICMP port unreachable: nothing listens there.
    pub port_unreachable: bool,
}

/// Sends `packet` from `from` (an ephemeral port) to `target` and returns
/// every datagram the target sends back before `wait` has passed.
///
/// The socket is connected, so the kernel drops datagrams from any other
/// address, and reports an ICMP port unreachable for the target as a
/// refused receive: that is an answer too ("nothing listens"), not an
/// error, and `verify` tells it apart from silence.
pub fn exchange(
    from: IpAddr,
    target: SocketAddr,
    packet: &[u8],
    wait: Duration,
) -> Result<Answer, String> {
    let socket = connected(from, target)?;
    socket.send(packet).map_err(|e| {
        format!(
            "sending {} bytes from {from} to {target}: {e}",
            packet.len()
        )
    })?;
    let deadline = Instant::now() + wait;
    let mut buf = vec![0u8; BUFFER];
    let mut datagrams = Vec::new();
    let mut port_unreachable = false;
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
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                port_unreachable = true;
                break;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("receiving from {target} on {from}: {e}")),
        }
    }
    Ok(Answer {
        datagrams,
        port_unreachable,
    })
}

/// A UDP socket on an ephemeral port of `from`, connected to `target` (the
/// kernel then drops datagrams from any other address).
fn connected(from: IpAddr, target: SocketAddr) -> Result<UdpSocket, String> {
    let socket = UdpSocket::bind(SocketAddr::new(from, 0)).map_err(|e| {
        format!("cannot bind a UDP socket to {from} (is it an address of this host?): {e}")
    })?;
    socket
        .connect(target)
        .map_err(|e| format!("cannot address {target} from {from}: {e}"))?;
    Ok(socket)
}

/// Sends each `(source, destination, packet)` in order, each from its own
/// socket bound to its source (an ephemeral port) and connected to its
/// destination, then
/// collects what comes back to each socket. Collection ends when `wait`
/// has passed, when every socket was refused (nothing listens), or, with
/// `settle`, `settle` after the last packet was answered.
///
/// `settle` is for a target on this host only: the four daemons answer one
/// socket's datagrams in the order they arrived, and loopback does not
/// reorder, so once the last packet is answered the others have been
/// (chronyd's one event loop reads its command socket beside its NTP
/// socket; `settle` is the margin for a packet sent before to another port).
pub fn exchange_batch(
    probes: &[(IpAddr, SocketAddr, Vec<u8>)],
    wait: Duration,
    settle: Option<Duration>,
) -> Result<Vec<Vec<Vec<u8>>>, String> {
    let mut sockets = Vec::with_capacity(probes.len());
    for (from, target, packet) in probes {
        let socket = connected(*from, *target)?;
        socket
            .set_nonblocking(true)
            .map_err(|e| format!("making a socket non-blocking: {e}"))?;
        sockets.push(socket);
        let socket = sockets.last().expect("just pushed");
        socket.send(packet).map_err(|e| {
            format!(
                "sending {} bytes from {from} to {target}: {e}",
                packet.len()
            )
        })?;
    }
    let started = Instant::now();
    let mut buf = vec![0u8; BUFFER];
    let mut answers: Vec<Vec<Vec<u8>>> = vec![Vec::new(); sockets.len()];
    let mut refused = vec![false; sockets.len()];
    let mut settle_until: Option<Instant> = None;
    loop {
        for (i, socket) in sockets.iter().enumerate() {
            while !refused[i] && answers[i].len() < MAX_DATAGRAMS {
                match socket.recv(&mut buf) {
                    Ok(n) => answers[i].push(buf[..n].to_vec()),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused => refused[i] = true,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("receiving from {}: {e}", probes[i].1)),
                }
            }
        }
        let now = Instant::now();
        if let (Some(settle), None, Some(last)) = (settle, settle_until, answers.last()) {
            if !last.is_empty() {
                settle_until = Some(now + settle);
            }
        }
        let settled = settle_until.is_some_and(|t| now >= t);
        if settled || refused.iter().all(|r| *r) || now.duration_since(started) >= wait {
            break;
        }
        // Loopback answers come within microseconds: a millisecond's poll
        // costs nothing and bounds the loop to about `wait` / 1 ms rounds.
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP socket on 127.0.0.1 that gives up reading after 5 s (a test
    /// that sends nothing ends instead of hanging), and its address.
    fn loopback_server() -> (UdpSocket, SocketAddr) {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let target = server.local_addr().unwrap();
        (server, target)
    }

    /// A loopback echo that answers one datagram with three, like a daemon
    /// whose answer spans several packets.
    #[test]
    fn collects_every_datagram_within_the_wait_and_only_from_the_target() {
        let (server, target) = loopback_server();
        let worker = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
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
            got.datagrams.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![12, 100, 200]
        );
        assert!(!got.port_unreachable);
    }

    #[test]
    fn nobody_listening_is_port_unreachable_and_the_wait_is_bounded() {
        // A port that was just free: the kernel answers with port unreachable.
        let target = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let started = Instant::now();
        // Port unreachable is an answer without datagrams, not an error.
        let got = exchange(
            "127.0.0.2".parse().unwrap(),
            target,
            &[0x1b],
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(
            got,
            Answer {
                datagrams: vec![],
                port_unreachable: true
            }
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "ends at the ICMP"
        );
    }

    #[test]
    fn a_socket_that_never_answers_is_silence_not_port_unreachable() {
        // Bound (so no ICMP) but never read: the whole wait passes.
        let (_silent, target) = loopback_server();
        let got = exchange(
            "127.0.0.2".parse().unwrap(),
            target,
            &[0x1b],
            Duration::from_millis(100),
        )
        .unwrap();
        assert_eq!(got, Answer::default());
    }

    /// A responder that answers the first and third datagrams it reads, in
    /// order, and ignores the second, like a daemon answering time but not
    /// control queries; half a second later it sends one more datagram to
    /// the first socket. The batch ends `settle` after the last packet is
    /// answered, so that straggler is not in it (the whole wait would take it).
    #[test]
    fn a_batch_ends_soon_after_its_last_packet_is_answered_and_keeps_each_socket_apart() {
        let (server, target) = loopback_server();
        let worker = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let mut peers = Vec::new();
            for _ in 0..3 {
                let (n, peer) = server.recv_from(&mut buf).unwrap();
                peers.push(peer);
                if buf[0] != b'x' {
                    server.send_to(&vec![buf[0]; n + 10], peer).unwrap();
                }
            }
            std::thread::sleep(Duration::from_millis(500));
            server.send_to(b"late", peers[0]).unwrap();
            peers
        });
        let a: IpAddr = "127.0.0.3".parse().unwrap();
        let b: IpAddr = "127.0.0.4".parse().unwrap();
        let got = exchange_batch(
            &[
                (a, target, b"a".to_vec()),
                (b, target, b"x".to_vec()),
                (a, target, b"b".to_vec()),
            ],
            Duration::from_secs(5),
            Some(Duration::from_millis(20)),
        )
        .unwrap();
        let peers = worker.join().unwrap();
        assert_eq!(
            peers.iter().map(|p| p.ip()).collect::<Vec<_>>(),
            vec![a, b, a],
            "sent in order, each from its source"
        );
        assert_eq!(
            got,
            vec![vec![vec![b'a'; 11]], vec![], vec![vec![b'b'; 11]]],
            "ended by the last answer, before the straggler"
        );
    }

    #[test]
    fn a_batch_to_a_port_nobody_listens_on_is_no_answer() {
        let target = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let from: IpAddr = "127.0.0.2".parse().unwrap();
        let got = exchange_batch(
            &[(from, target, vec![0x1b]), (from, target, vec![0x16])],
            Duration::from_secs(5),
            None,
        )
        .unwrap();
        assert_eq!(got, vec![Vec::<Vec<u8>>::new(), Vec::new()]);
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
