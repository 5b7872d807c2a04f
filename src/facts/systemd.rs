//! Parses service state: `systemctl show UNIT... -p Id,LoadState,ActiveState,
//! SubState,UnitFileState,MainPID,ExecMainStartTimestampMonotonic`, and for
//! hosts without systemd the exit code of `service NAME status` and the
//! listing of `/etc/rc[2-5].d`.
//!
//! Pure functions only: this module must not run commands; the probes run
//! elsewhere and hand their text in here.

use serde::Serialize;

/// One unit's block of `systemctl show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitStatus {
    /// The unit systemd resolved the name to: for an alias such as
    /// `ntp.service` this is the target (`ntpsec.service`), so blocks must be
    /// matched to the requested names by position, not by Id.
    pub id: String,
    pub load: LoadState,
    pub active: ActiveState,
    pub sub: String,
    pub enabled: Enablement,
    /// None when no main process runs (systemd prints 0).
    pub main_pid: Option<u32>,
    /// None when the unit never started (0) or the property is missing
    /// (older systemd); a changed value means the daemon was restarted.
    pub started_at_monotonic: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadState {
    Loaded,
    NotFound,
    Masked,
    /// bad-setting, error, stub, merged ...
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActiveState {
    Active,
    Reloading,
    Inactive,
    Failed,
    Activating,
    Deactivating,
    Other(String),
}

/// `UnitFileState`: whether the unit starts at boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Enablement {
    Enabled,
    Disabled,
    Masked,
    Static,
    Alias,
    Indirect,
    Generated,
    EnabledRuntime,
    /// Anything else (linked, masked-runtime, transient, bad ...); empty for
    /// units without a unit file.
    Unknown(String),
}

impl UnitStatus {
    /// Active, reloading, or starting; not a unit waiting to be restarted
    /// after its process died (`activating` / `auto-restart`: no process
    /// runs, and a crash loop must not pass for a running daemon).
    pub fn is_running(&self) -> bool {
        match self.active {
            ActiveState::Active | ActiveState::Reloading => true,
            ActiveState::Activating => self.sub != "auto-restart",
            _ => false,
        }
    }

    /// Static, alias, indirect and generated units cannot be enabled further:
    /// they start through whatever pulls them in, so they count as enabled.
    pub fn is_enabled(&self) -> bool {
        matches!(
            self.enabled,
            Enablement::Enabled
                | Enablement::EnabledRuntime
                | Enablement::Static
                | Enablement::Alias
                | Enablement::Indirect
                | Enablement::Generated
        )
    }

    pub fn exists(&self) -> bool {
        self.load != LoadState::NotFound
    }
}

/// Parses `systemctl show` for `units` units. Err if the number of blocks
/// differs or a block lacks Id/LoadState/ActiveState, since blocks are only
/// tied to unit names by their position.
pub fn parse_show(stdout: &str, units: usize) -> Result<Vec<UnitStatus>, String> {
    let mut blocks: Vec<Vec<&str>> = Vec::new();
    let mut block: Vec<&str> = Vec::new();
    for line in stdout.lines() {
        if line.trim().is_empty() {
            if !block.is_empty() {
                blocks.push(std::mem::take(&mut block));
            }
        } else {
            block.push(line);
        }
    }
    if !block.is_empty() {
        blocks.push(block);
    }
    if blocks.len() != units {
        return Err(format!(
            "systemctl show printed {} unit block(s) for {units} unit(s)",
            blocks.len()
        ));
    }
    blocks.iter().map(|lines| parse_block(lines)).collect()
}

fn parse_block(lines: &[&str]) -> Result<UnitStatus, String> {
    let (mut id, mut load, mut active) = (None, None, None);
    let (mut sub, mut enabled) = (String::new(), Enablement::Unknown(String::new()));
    let (mut main_pid, mut started_at_monotonic) = (None, None);
    for line in lines {
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("unexpected systemctl show line: {line:?}"));
        };
        let number = || {
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("{key} is not a number: {line:?}"))
        };
        match key {
            "Id" => id = Some(value.to_string()).filter(|id| !id.is_empty()),
            "LoadState" => load = Some(parse_load(value)),
            "ActiveState" => active = Some(parse_active(value)),
            "SubState" => sub = value.to_string(),
            "UnitFileState" => enabled = parse_enablement(value),
            "MainPID" => {
                let pid = u32::try_from(number()?)
                    .map_err(|_| format!("MainPID out of range: {line:?}"))?;
                main_pid = Some(pid).filter(|&pid| pid != 0);
            }
            "ExecMainStartTimestampMonotonic" => {
                started_at_monotonic = Some(number()?).filter(|&t| t != 0);
            }
            // Properties nobody asked for are harmless (newer systemd may add some).
            _ => {}
        }
    }
    let missing = |what: &str| {
        format!(
            "systemctl show block without {what}: {:?}",
            lines.join("\n")
        )
    };
    Ok(UnitStatus {
        id: id.ok_or_else(|| missing("Id"))?,
        load: load.ok_or_else(|| missing("LoadState"))?,
        active: active.ok_or_else(|| missing("ActiveState"))?,
        sub,
        enabled,
        main_pid,
        started_at_monotonic,
    })
}

fn parse_load(value: &str) -> LoadState {
    match value {
        "loaded" => LoadState::Loaded,
        "not-found" => LoadState::NotFound,
        "masked" => LoadState::Masked,
        other => LoadState::Other(other.to_string()),
    }
}

fn parse_active(value: &str) -> ActiveState {
    match value {
        "active" => ActiveState::Active,
        "reloading" => ActiveState::Reloading,
        "inactive" => ActiveState::Inactive,
        "failed" => ActiveState::Failed,
        "activating" => ActiveState::Activating,
        "deactivating" => ActiveState::Deactivating,
        other => ActiveState::Other(other.to_string()),
    }
}

fn parse_enablement(value: &str) -> Enablement {
    match value {
        "enabled" => Enablement::Enabled,
        "disabled" => Enablement::Disabled,
        "masked" => Enablement::Masked,
        "static" => Enablement::Static,
        "alias" => Enablement::Alias,
        "indirect" => Enablement::Indirect,
        "generated" => Enablement::Generated,
        "enabled-runtime" => Enablement::EnabledRuntime,
        other => Enablement::Unknown(other.to_string()),
    }
}

/// `service NAME status` outcome on a host without systemd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SysvState {
    Running,
    Stopped,
    /// 4 (unknown service or status) and the codes LSB leaves vague.
    Unknown(i32),
}

/// LSB init script status codes: 0 running, 3 not running, anything else
/// does not say for sure.
pub fn sysv_status_from_exit(code: i32) -> SysvState {
    match code {
        0 => SysvState::Running,
        3 => SysvState::Stopped,
        other => SysvState::Unknown(other),
    }
}

/// Names in /etc/rc2.d..rc5.d: enabled when some `S??NAME` link exists in any
/// of them (`K??NAME` links only stop the service).
pub fn sysv_enabled(rc_entries: &[String], service: &str) -> bool {
    rc_entries.iter().any(|entry| {
        let name = entry.rsplit('/').next().unwrap_or(entry);
        let Some(rest) = name.strip_prefix('S') else {
            return false;
        };
        match (rest.get(..2), rest.get(2..)) {
            (Some(order), Some(unit)) => {
                order.bytes().all(|c| c.is_ascii_digit()) && unit == service
            }
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_ntpsec_and_missing_chrony() {
        let stdout = "\
MainPID=2388
Id=ntpsec.service
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=enabled
ExecMainStartTimestampMonotonic=123456789

MainPID=0
Id=chrony.service
LoadState=not-found
ActiveState=inactive
SubState=dead
UnitFileState=
ExecMainStartTimestampMonotonic=0
";
        let units = parse_show(stdout, 2).unwrap();
        assert_eq!(
            units[0],
            UnitStatus {
                id: "ntpsec.service".into(),
                load: LoadState::Loaded,
                active: ActiveState::Active,
                sub: "running".into(),
                enabled: Enablement::Enabled,
                main_pid: Some(2388),
                started_at_monotonic: Some(123_456_789),
            }
        );
        assert!(units[0].is_running() && units[0].is_enabled() && units[0].exists());
        let chrony = &units[1];
        assert_eq!(chrony.load, LoadState::NotFound);
        assert_eq!(chrony.enabled, Enablement::Unknown(String::new()));
        assert_eq!((chrony.main_pid, chrony.started_at_monotonic), (None, None));
        assert!(!chrony.exists() && !chrony.is_running() && !chrony.is_enabled());
    }

    #[test]
    fn systemd_property_order_alias_masked_and_failed() {
        // systemd prints service properties before unit ones, whatever -p says.
        // `ntp.service` is an alias on bookworm, so its block shows ntpsec's Id.
        let stdout = "\
MainPID=731
ExecMainStartTimestampMonotonic=8120394
Id=ntpsec.service
LoadState=loaded
ActiveState=reloading
SubState=reload
UnitFileState=alias

MainPID=0
ExecMainStartTimestampMonotonic=0
Id=systemd-timesyncd.service
LoadState=masked
ActiveState=inactive
SubState=dead
UnitFileState=masked

MainPID=0
ExecMainStartTimestampMonotonic=5123456789
Id=ntp.service
LoadState=loaded
ActiveState=failed
SubState=failed
UnitFileState=enabled

MainPID=0
ExecMainStartTimestampMonotonic=0
Id=chrony.service
LoadState=loaded
ActiveState=activating
SubState=auto-restart
UnitFileState=enabled-runtime

MainPID=0
ExecMainStartTimestampMonotonic=0
Id=openntpd.service
LoadState=bad-setting
ActiveState=deactivating
SubState=stop-sigterm
UnitFileState=linked";
        let units = parse_show(stdout, 5).unwrap();
        assert_eq!(units[0].id, "ntpsec.service");
        assert_eq!(units[0].active, ActiveState::Reloading);
        assert_eq!(units[0].enabled, Enablement::Alias);
        assert!(units[0].is_running() && units[0].is_enabled());

        let timesyncd = &units[1];
        assert_eq!(
            (&timesyncd.load, &timesyncd.enabled),
            (&LoadState::Masked, &Enablement::Masked)
        );
        assert!(timesyncd.exists() && !timesyncd.is_enabled() && !timesyncd.is_running());

        assert_eq!(units[2].active, ActiveState::Failed);
        assert_eq!(units[2].started_at_monotonic, Some(5_123_456_789));
        assert!(!units[2].is_running());

        // Waiting to restart after a crash: no process runs.
        assert!(!units[3].is_running() && units[3].is_enabled());
        assert_eq!(units[3].enabled, Enablement::EnabledRuntime);

        assert_eq!(units[4].load, LoadState::Other("bad-setting".into()));
        assert_eq!(units[4].active, ActiveState::Deactivating);
        assert_eq!(units[4].enabled, Enablement::Unknown("linked".into()));
        assert!(!units[4].is_running() && !units[4].is_enabled());
    }

    #[test]
    fn other_enablement_values() {
        for (text, want, enabled) in [
            ("disabled", Enablement::Disabled, false),
            ("static", Enablement::Static, true),
            ("indirect", Enablement::Indirect, true),
            ("generated", Enablement::Generated, true),
            (
                "masked-runtime",
                Enablement::Unknown("masked-runtime".into()),
                false,
            ),
        ] {
            let stdout = format!(
                "Id=ntp.service\nLoadState=loaded\nActiveState=inactive\nUnitFileState={text}\n"
            );
            let unit = &parse_show(&stdout, 1).unwrap()[0];
            assert_eq!(unit.enabled, want);
            assert_eq!(unit.is_enabled(), enabled, "{text}");
            assert_eq!(unit.sub, "");
        }
    }

    #[test]
    fn malformed_output_is_an_error() {
        let block = "Id=ntp.service\nLoadState=loaded\nActiveState=active\n";
        assert!(parse_show(block, 2)
            .unwrap_err()
            .contains("1 unit block(s) for 2"));
        assert!(parse_show("", 1).is_err());
        assert_eq!(parse_show("", 0).unwrap(), vec![]);
        for (text, needle) in [
            ("LoadState=loaded\nActiveState=active\n", "without Id"),
            ("Id=\nLoadState=loaded\nActiveState=active\n", "without Id"),
            ("Id=ntp.service\nActiveState=active\n", "without LoadState"),
            ("Id=ntp.service\nLoadState=loaded\n", "without ActiveState"),
            ("Id=ntp.service\nFailed to get properties: Access denied\n", "Access denied"),
            ("Id=ntp.service\nLoadState=loaded\nActiveState=active\nMainPID=abc\n", "MainPID=abc"),
            ("Id=ntp.service\nLoadState=loaded\nActiveState=active\nMainPID=4294967296\n", "out of range"),
            ("Id=ntp.service\nLoadState=loaded\nActiveState=active\nExecMainStartTimestampMonotonic=-1\n", "not a number"),
        ] {
            let err = parse_show(text, 1).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn extra_blank_lines_do_not_make_extra_units() {
        let stdout = "\nId=a.service\nLoadState=loaded\nActiveState=active\n\n\nId=b.service\nLoadState=loaded\nActiveState=active\n\n";
        assert_eq!(parse_show(stdout, 2).unwrap().len(), 2);
    }

    #[test]
    fn serializes_enums_in_snake_case() {
        let json = serde_json::to_string(&(
            LoadState::NotFound,
            Enablement::EnabledRuntime,
            SysvState::Unknown(4),
        ))
        .unwrap();
        assert_eq!(json, r#"["not_found","enabled_runtime",{"unknown":4}]"#);
    }

    #[test]
    fn lsb_status_codes() {
        assert_eq!(sysv_status_from_exit(0), SysvState::Running);
        assert_eq!(sysv_status_from_exit(3), SysvState::Stopped);
        assert_eq!(sysv_status_from_exit(4), SysvState::Unknown(4));
        assert_eq!(sysv_status_from_exit(1), SysvState::Unknown(1));
        assert_eq!(sysv_status_from_exit(-1), SysvState::Unknown(-1));
    }

    #[test]
    fn rc_links() {
        // `ls /etc/rc2.d /etc/rc3.d` on a Debian host booted with sysvinit.
        let entries: Vec<String> = [
            "README",
            "S01cron",
            "S01ntp",
            "S01rsyslog",
            "S01ssh",
            "K01ntpsec",
            "S01ntpdate-debian",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert!(sysv_enabled(&entries, "ntp"));
        assert!(!sysv_enabled(&entries, "ntpsec"), "K links only stop");
        assert!(!sysv_enabled(&entries, "ntpdate"));
        assert!(!sysv_enabled(&entries, "chrony"));
        let odd: Vec<String> = ["S", "S0", "Sé1ntp", "Sxxntp", "/etc/rc5.d/S02chrony"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(!sysv_enabled(&odd, "ntp"));
        assert!(sysv_enabled(&odd, "chrony"));
    }
}

#[cfg(test)]
mod trusty_tests {
    use super::*;

    /// Recorded on Ubuntu 14.04 (upstart, ntp with a SysV script):
    /// `service ntp status` prints " * NTP server is running" and exits 0,
    /// " * NTP server is not running" with 3 once stopped; `ls /etc/rc2.d`.
    #[test]
    fn trusty_sysv_ntp_status_and_boot_links() {
        assert_eq!(sysv_status_from_exit(0), SysvState::Running);
        assert_eq!(sysv_status_from_exit(3), SysvState::Stopped);
        let rc2: Vec<String> = [
            "README",
            "S20kerneloops",
            "S20ntp",
            "S50saned",
            "S99ondemand",
            "S99rc.local",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert!(sysv_enabled(&rc2, "ntp"));
        assert!(!sysv_enabled(&rc2, "ntpsec"));
        let disabled: Vec<String> = ["K80ntp".to_string()].to_vec();
        assert!(!sysv_enabled(&disabled, "ntp"));
    }
}
