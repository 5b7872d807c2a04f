//! Who holds the NTP port: when a daemon cannot bind UDP 123, the error
//! names the process that has it (pid, command, its systemd unit or none),
//! read from /proc, so no tool need be installed.

use std::path::Path;

/// A process with a UDP socket bound to the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub command: String,
    /// The systemd unit whose cgroup the process is in, if any.
    pub unit: Option<String>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = self.unit.as_deref().unwrap_or("no unit");
        write!(f, "pid {} ({}, {unit})", self.pid, self.command)
    }
}

/// The processes holding UDP `port` (IPv4 or IPv6) under `proc`.
pub fn udp_port_holders(proc: &Path, port: u16) -> Vec<Holder> {
    let mut inodes: Vec<u64> = ["net/udp", "net/udp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(proc.join(table)).ok())
        .flat_map(|text| socket_inodes(&text, port))
        .collect();
    inodes.sort_unstable();
    inodes.dedup();
    if inodes.is_empty() {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(proc) else {
        return Vec::new();
    };
    let mut holders: Vec<Holder> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| holds_any(&proc.join(pid.to_string()), &inodes))
        .map(|pid| describe(proc, pid))
        .collect();
    holders.sort_by_key(|h| h.pid);
    holders
}

/// The socket inodes bound to local `port` in a /proc/net/udp table
/// (`sl local_address rem_address st ... inode`, the port in hex).
fn socket_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit_once(':')?.1;
            (u16::from_str_radix(local_port, 16).ok()? == port)
                .then(|| fields.get(9)?.parse().ok())
                .flatten()
        })
        .collect()
}

fn holds_any(process: &Path, inodes: &[u64]) -> bool {
    let Ok(fds) = std::fs::read_dir(process.join("fd")) else {
        return false;
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_str()?;
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .any(|inode: u64| inodes.contains(&inode))
}

fn describe(proc: &Path, pid: u32) -> Holder {
    let dir = proc.join(pid.to_string());
    let command = std::fs::read_to_string(dir.join("comm"))
        .map(|c| c.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let unit = std::fs::read_to_string(dir.join("cgroup"))
        .ok()
        .and_then(|c| unit_of_cgroup(&c));
    Holder { pid, command, unit }
}

/// The unit in a /proc/PID/cgroup (`0::/system.slice/ntp.service`).
fn unit_of_cgroup(cgroup: &str) -> Option<String> {
    cgroup
        .lines()
        .filter_map(|l| l.rsplit(':').next())
        .flat_map(|path| path.split('/'))
        .rfind(|part| {
            [".service", ".scope", ".socket"]
                .iter()
                .any(|suffix| part.ends_with(suffix))
        })
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from a Debian 12 host with ntpsec running.
    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 8769: 020200C0:007B 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 451981 2 0000000032bf90a4 0
 8769: 0100007F:007B 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 451979 2 000000001b9624f7 0
 1234: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1111 2 000000001b9624f7 0
";

    #[test]
    fn the_tables_give_the_inodes_of_the_port() {
        assert_eq!(socket_inodes(UDP, 123), [451981, 451979]);
        assert_eq!(socket_inodes(UDP, 68), [1111]);
        assert!(socket_inodes(UDP, 124).is_empty());
        assert!(socket_inodes("garbage\nmore garbage here\n", 123).is_empty());
    }

    #[test]
    fn the_unit_comes_from_the_cgroup_path() {
        assert_eq!(
            unit_of_cgroup("0::/system.slice/ntpsec.service\n").as_deref(),
            Some("ntpsec.service")
        );
        assert_eq!(
            unit_of_cgroup("0::/user.slice/user-0.slice/session-3.scope\n").as_deref(),
            Some("session-3.scope")
        );
        assert_eq!(unit_of_cgroup("0::/\n"), None);
    }

    #[test]
    fn a_process_holding_a_socket_is_found_through_a_fake_proc() {
        let proc = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(proc.path().join("net")).unwrap();
        std::fs::write(proc.path().join("net/udp"), UDP).unwrap();
        let pid = proc.path().join("4242");
        std::fs::create_dir_all(pid.join("fd")).unwrap();
        std::fs::write(pid.join("comm"), "ntpd\n").unwrap();
        std::fs::write(pid.join("cgroup"), "0::/system.slice/ntp.service\n").unwrap();
        std::os::unix::fs::symlink("socket:[451979]", pid.join("fd/3")).unwrap();
        let other = proc.path().join("7");
        std::fs::create_dir_all(other.join("fd")).unwrap();
        std::os::unix::fs::symlink("socket:[1111]", other.join("fd/3")).unwrap();
        let holders = udp_port_holders(proc.path(), 123);
        assert_eq!(
            holders,
            [Holder {
                pid: 4242,
                command: "ntpd".into(),
                unit: Some("ntp.service".into())
            }]
        );
        assert_eq!(holders[0].to_string(), "pid 4242 (ntpd, ntp.service)");
    }
}
