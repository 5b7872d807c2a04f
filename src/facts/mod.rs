//! Stage 2: facts. Asks the node, read-only, exactly what the plan's steps
//! need to be diffed: dpkg states and apt candidates of the named packages,
//! the age of the apt lists, the current content of each templated file, the
//! state of each unit, and which package really provides the daemon.
//!
//! Must not: change anything on the node. Fresh package lists, where the
//! node's are missing or older than the plan allows, are read into a private
//! temporary directory so that the versions shown are the ones `apply` would
//! install (`StaleLists::FetchPrivately`; `apply` reads the node's own and
//! decides again after its update, `StaleLists::ReadNodes`). Every probe is batched: one dpkg-query, one apt-cache policy, one
//! systemctl show for all units. apt's answers about the node's own lists are
//! remembered between runs (`memo`), so a run on a converged node asks apt
//! nothing; `apply` alone writes that record.

pub mod apt;
pub mod carry;
pub mod daemon;
pub mod dpkg;
pub mod memo;
pub mod nts;

pub mod probe;
mod secrets;
pub mod systemd;
pub mod timezone;
pub use crate::version;

use crate::daemons::{Daemon, DaemonName};
use crate::names::{AbsPath, PackageName, UnitName};
use crate::plan::step::{Action, Autoremove, CacheValidity};
use crate::plan::Rendered;
use anyhow::{Context, Result};
use apt::{Policy, Stanza};
use dpkg::DpkgState;
pub use probe::{FileState, InitSystem, Lists, Probe, RealProbe, UnitFact, DPKG_UPDATES};
use std::collections::BTreeMap;
use std::time::Duration;

/// Written after every successful `apt-get update` (as Ubuntu's
/// update-notifier does), so the lists' age does not depend on mirror mtimes.
pub const UPDATE_STAMP: &str = "/var/lib/apt/periodic/update-success-stamp";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageFact {
    pub dpkg: DpkgState,
    /// Held (`apt-mark hold`): apt refuses to install another version of it
    /// or to remove it, so the diff refuses such a change before any change.
    pub held: bool,
    pub candidate: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListsFact {
    /// `None`: the node has never run `apt-get update`.
    pub age: Option<Duration>,
    /// Candidates were read from fresh lists in a private directory.
    pub refreshed_privately: bool,
    /// Why fresh lists could not be read, if they could not.
    pub refresh_error: Option<String>,
    /// The lists are older than the plan allows and were read as they are
    /// (`StaleLists::ReadNodes`): what follows the plan's update is decided
    /// again once `apply` has run it.
    pub awaiting_update: bool,
}

/// What the facts stage does when the plan wants fresher package lists
/// than the node has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleLists {
    /// `plan`: fetch fresh lists into a private directory and read the
    /// candidates there, so the plan shows the versions `apply` installs.
    FetchPrivately,
    /// `apply`: read the node's own lists as they are. `apply` runs the
    /// plan's `apt-get update` itself, and decides every change after it
    /// again on the lists it fetched (`Changeset::redecide_after_update`):
    /// one update instead of a private one and then the node's.
    ReadNodes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub init: InitSystem,
    pub lists: ListsFact,
    pub daemon: Option<Daemon>,
    pub packages: BTreeMap<PackageName, PackageFact>,
    /// `name version` of packages `apt-get autoremove` would remove now.
    pub autoremovable: Vec<String>,
    /// `name version` of what it would remove too once the plan's removals
    /// of installed packages are done (`Probe::left_unneeded`).
    pub left_unneeded: Vec<String>,
    pub files: BTreeMap<AbsPath, Option<FileState>>,
    pub accounts: BTreeMap<(String, bool), Option<u32>>,
    /// The NTS files the plan names, as read (checked usable already): the
    /// lint judges who else can read the server key.
    pub nts_files: Vec<nts::NtsFile>,
    pub units: BTreeMap<UnitName, UnitFact>,
    /// `vars.timezone`'s zone and the node's: `None` when the plan sets none.
    pub timezone: Option<timezone::TimezoneFact>,
    /// Whether an earlier dpkg run stopped half way (journal files in
    /// /var/lib/dpkg/updates): apt refuses to work until it is finished.
    pub dpkg_journal: DpkgJournal,
    /// When the facts were gathered, UTC, `YYYYmmddTHHMMSS.ffffff`: names the
    /// backups this run makes, so `plan` can say where they will be.
    pub stamp: String,
    /// When the facts were gathered: a file modified later than this was
    /// written under a clock since set back, and its time says nothing.
    pub gathered_at: std::time::SystemTime,
}

/// `YYYYmmddTHHMMSS.ffffff` in UTC, to the microsecond (Howard Hinnant's
/// days-to-civil; no time crate). Fixed width, so names sort by time; runs
/// hold the run lock and take far longer than a microsecond, so two runs
/// never get the same stamp.
pub fn utc_stamp(t: std::time::SystemTime) -> String {
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}.{:06}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_micros()
    )
}

#[cfg(test)]
mod stamp_tests {
    #[test]
    fn utc_stamps() {
        use std::time::{Duration, UNIX_EPOCH};
        assert_eq!(super::utc_stamp(UNIX_EPOCH), "19700101T000000.000000");
        assert_eq!(
            super::utc_stamp(UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661)),
            "20000229T010101.000000"
        );
        assert_eq!(
            super::utc_stamp(UNIX_EPOCH + Duration::from_millis(1_795_618_800_042)),
            "20261125T150000.042000"
        );
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DpkgJournal {
    Clean,
    /// This many journal entries are waiting for `dpkg --configure -a`.
    Interrupted {
        entries: usize,
    },
}

/// Facts plus the steps rendered with them: what the diff consumes.
pub struct Gathered {
    pub facts: Facts,
    pub rendered: Rendered,
    pub reuse: Reuse,
}

/// The speed seam: what a gather's answers leave for later, so that no
/// probe runs twice in a run and a converged node's apt is not asked at all.
/// Only the engine passes it on; no stage decides anything from it.
#[derive(Debug, Default)]
pub struct Reuse {
    /// apt's answers to remember if `apply` succeeds (`memo::AptMemo::save_if_current`);
    /// `None` when they came from the record already or from private lists.
    pub apt: Option<memo::AptMemo>,
    /// dpkg's and the init system's answers, for facts decided again after
    /// an update (`carry`); `None` without a fingerprint of dpkg's database.
    pub node: Option<carry::NodeAnswers>,
}

impl Reuse {
    /// What the next gather of this run may use: apt's answers while their
    /// fingerprint holds; dpkg's and the units' only if `node_unchanged`
    /// (nothing but the update of the lists ran since).
    pub fn carried(&self, node_unchanged: bool) -> Carried<'_> {
        Carried {
            apt: self.apt.as_ref(),
            node: self.node.as_ref().filter(|_| node_unchanged),
        }
    }
}

/// What the facts stage must ask the node, taken from a plan. Which
/// packages, files and units the steps name waits on the daemon the
/// archive resolves: `render` gives the steps once that is known.
pub struct Wants<'a> {
    /// The update step's `cache_valid_time`: how old the lists may be.
    pub cache_validity: Option<CacheValidity>,
    /// Whether any step may autoremove, asked before the steps are rendered.
    pub may_autoremove: bool,
    /// `vars.daemon`, resolved from the archive.
    pub daemon: Option<DaemonName>,
    /// Packages named without Jinja, asked about with the daemons' own.
    pub literal_packages: Vec<PackageName>,
    /// The hosts of the sources that ask for NTS, which the resolved
    /// version must support (for an IP address, too).
    pub nts: Vec<String>,
    /// The NTS files the plan names on the node, `(variable, path)`.
    pub nts_files: Vec<(&'static str, AbsPath)>,
    /// Variables set that the resolved daemon must have a line for.
    pub settings: Vec<crate::daemons::Setting>,
    /// `virtual: auto`: ask systemd-detect-virt.
    pub virtualization: bool,
    /// `vars.keys`: their types the daemon must know, their secret files read.
    pub keys: Vec<crate::daemons::keys::Key>,
    pub render: Render<'a>,
}

/// The plan's steps rendered for the resolved daemon (or none), on a
/// virtual machine of this kind (or not one), with the secrets of its keys.
pub type Render<'a> = Box<
    dyn Fn(Option<&Daemon>, Option<&str>, &crate::daemons::keys::Secrets) -> Result<Rendered> + 'a,
>;

/// Answers of this run's earlier facts that a later gather may use while
/// they hold: apt's (`memo`), dpkg's and the init system's (`carry`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Carried<'a> {
    pub apt: Option<&'a memo::AptMemo>,
    pub node: Option<&'a carry::NodeAnswers>,
}

/// The facts for `plan`: stale lists are fetched privately.
pub fn gather(probe: &dyn Probe, wants: &Wants) -> Result<Gathered> {
    gather_as(probe, wants, StaleLists::FetchPrivately, Carried::default())
}

/// The facts with the given handling of stale lists; `carried`: answers an
/// earlier gather of this run read (its `apt_memo` and `node_answers`),
/// used while their fingerprints match.
pub fn gather_as(
    probe: &dyn Probe,
    wants: &Wants,
    stale_lists: StaleLists,
    carried: Carried<'_>,
) -> Result<Gathered> {
    let memo = memo::MemoProbe::carrying(probe, carried.apt)?;
    let (facts, rendered, node_answers) = gather_with(&memo, wants, stale_lists, carried.node)?;
    Ok(Gathered {
        facts,
        rendered,
        reuse: Reuse {
            apt: memo.into_record(),
            node: node_answers,
        },
    })
}

fn gather_with(
    probe: &dyn Probe,
    wants: &Wants,
    stale_lists: StaleLists,
    carried: Option<&carry::NodeAnswers>,
) -> Result<(Facts, Rendered, Option<carry::NodeAnswers>)> {
    let init = probe.init_system()?;
    let age = probe.lists_age()?;
    let stale = wants
        .cache_validity
        .is_some_and(|v| match (age, v.max_age) {
            (None, _) | (_, None) => true,
            (Some(age), Some(max)) => age > max,
        });

    // Private lists and apt's scratch caches, alive until every apt query has run.
    let scratch = tempfile::Builder::new()
        .prefix(probe::APT_SCRATCH_PREFIX)
        .tempdir()
        .context("creating a scratch directory for apt")?;
    // The cache of the node's lists, on disk where it can be
    // (`probe::NODE_CACHE_PARENT`), else with the rest.
    let node_cache = tempfile::Builder::new()
        .prefix(probe::APT_SCRATCH_PREFIX)
        .tempdir_in(probe::NODE_CACHE_PARENT)
        .or_else(|e| {
            log::debug!("no scratch directory in {}: {e}", probe::NODE_CACHE_PARENT);
            tempfile::Builder::new()
                .prefix(probe::APT_SCRATCH_PREFIX)
                .tempdir_in(scratch.path())
        })
        .context("creating a scratch directory for apt")?;
    let mut lists = Lists::Node {
        scratch: node_cache.path().to_path_buf(),
    };
    let mut refresh_error = None;
    if stale && stale_lists == StaleLists::FetchPrivately {
        let private = Lists::Private {
            lists: scratch.path().join("lists"),
            scratch: scratch.path().join("private-cache"),
        };
        if let Lists::Private { scratch, .. } = &private {
            std::fs::create_dir_all(scratch)
                .with_context(|| format!("creating {}", scratch.display()))?;
        }
        match probe.update_private_lists(&private) {
            Ok(()) => lists = private,
            Err(e) => {
                log::warn!("could not read fresh package lists, candidates come from the node's lists: {e:#}");
                refresh_error = Some(format!("{e:#}"));
            }
        }
    }

    // Every question below is read-only; those that wait on no other answer
    // run side by side, a thread each for the command's duration.
    let lists = &lists;
    let decided = std::thread::scope(
        |scope| -> Result<(Facts, Rendered, Option<carry::NodeAnswers>)> {
            // apt's autoremove simulation reads no lists (`Probe::autoremovable`):
            // it runs beside the candidate queries when any step may autoremove,
            // and its answer counts if a rendered step does.
            let early_autoremove = wants
                .may_autoremove
                .then(|| scope.spawn(|| probe.autoremovable(lists)));
            // `ntp` may be a transitional package: its stanza says. On the node's
            // lists, whose cache is normally current, every version's stanza is
            // read beside the candidates (the candidate's is picked after). On
            // private lists the first query builds their cache, which a second
            // one at the same time would build again: there it waits.
            let early_show = wants
                .daemon
                .filter(|d| d.may_be_transitional() && matches!(lists, Lists::Node { .. }))
                .map(|d| scope.spawn(move || probe.apt_show_every_version(&d.package(), lists)));
            let mut policies: BTreeMap<PackageName, Policy> = BTreeMap::new();
            let (wanted, daemon, nts_files) = resolve_daemon(
                probe,
                wants,
                lists,
                refresh_error.as_deref(),
                &mut policies,
                early_show,
            )?;
            let virtualization = match wants.virtualization {
                true => detect_virtualization(probe)?,
                false => None,
            };
            let secrets = match &daemon {
                Some(d) if !wants.keys.is_empty() => secrets::read(probe, d, &wants.keys)?,
                _ => Default::default(),
            };
            let rendered = (wants.render)(daemon.as_ref(), virtualization.as_deref(), &secrets)?;
            let named = Named::by(&rendered, wanted);
            // Read only, and refused here: a zone the node lacks changes nothing.
            let timezone = named
                .timezone
                .as_ref()
                .map(|zone| probe.timezone(zone))
                .transpose()?;
            if let Some(fact) = &timezone {
                fact.check().map_err(anyhow::Error::msg)?;
            }
            query_policies(probe, lists, &mut policies, &named.packages)?;
            // Taken before dpkg is asked: a change after it cannot go unseen.
            let dpkg_fingerprint = probe.dpkg_fingerprint()?;
            let (dpkg, unit_facts) = match carried.and_then(|c| {
                c.answer(
                    dpkg_fingerprint.as_deref(),
                    init,
                    &named.packages,
                    &named.units,
                )
            }) {
                Some(answers) => {
                    log::info!("dpkg and the units are as this run read them before its update of the package lists: not asked again");
                    answers
                }
                None => {
                    // dpkg's answer beside systemd's: neither waits for the other.
                    let (dpkg, unit_facts) = std::thread::scope(|beside| {
                        let dpkg = beside.spawn(|| probe.dpkg_packages(&named.packages));
                        let units = probe.units(init, &named.units);
                        (joined(dpkg), units)
                    });
                    (dpkg?, unit_facts?)
                }
            };
            let node_answers = dpkg_fingerprint.map(|dpkg_fingerprint| carry::NodeAnswers {
                dpkg_fingerprint,
                init,
                dpkg: dpkg.clone(),
                units: named
                    .units
                    .iter()
                    .cloned()
                    .zip(unit_facts.iter().cloned())
                    .collect(),
            });

            let packages = named
                .packages
                .iter()
                .map(|p| {
                    let known = dpkg.get(p);
                    let fact = PackageFact {
                        dpkg: known.map_or(DpkgState::NotInstalled, |d| d.state.clone()),
                        held: known.is_some_and(|d| d.held),
                        candidate: policies.get(p).and_then(|pol| pol.candidate.clone()),
                    };
                    (p.clone(), fact)
                })
                .collect();
            let gathered_at = std::time::SystemTime::now();
            let facts = Facts {
                init,
                lists: ListsFact {
                    age,
                    refreshed_privately: matches!(lists, Lists::Private { .. }),
                    refresh_error,
                    awaiting_update: stale && stale_lists == StaleLists::ReadNodes,
                },
                daemon,
                packages,
                autoremovable: match (named.autoremove, early_autoremove) {
                    (false, _) => Vec::new(),
                    (true, Some(early)) => joined(early)?,
                    (true, None) => probe.autoremovable(lists)?,
                },
                left_unneeded: match named.autoremove {
                    true => left_unneeded(probe, lists, &rendered, &dpkg),
                    false => Vec::new(),
                },
                files: named
                    .files
                    .into_iter()
                    .map(|f| Ok((f.clone(), probe.file(&f)?)))
                    .collect::<Result<_>>()?,
                accounts: named
                    .accounts
                    .into_iter()
                    .map(|(name, group)| {
                        Ok(((name.clone(), group), probe.account_id(&name, group)?))
                    })
                    .collect::<Result<_>>()?,
                nts_files,
                units: named.units.into_iter().zip(unit_facts).collect(),
                timezone,
                stamp: utc_stamp(gathered_at),
                gathered_at,
                dpkg_journal: {
                    let entries = probe.dpkg_updates()?;
                    match entries
                        .iter()
                        .filter(|e| dpkg::dpkg_interrupted(std::slice::from_ref(*e)))
                        .count()
                    {
                        0 => DpkgJournal::Clean,
                        n => DpkgJournal::Interrupted { entries: n },
                    }
                },
            };
            Ok((facts, rendered, node_answers))
        },
    );
    drop(node_cache);
    drop(scratch);
    decided
}

/// The daemon the plan asks for, resolved from apt's candidates (asked for
/// every package the plan names literally and every time-daemon package, in
/// one query, into `policies`), the packages asked about, and the plan's
/// NTS files as read. `early_show`: every version's stanza of `ntp`, asked
/// already.
fn resolve_daemon(
    probe: &dyn Probe,
    wants: &Wants,
    lists: &Lists,
    refresh_error: Option<&str>,
    policies: &mut BTreeMap<PackageName, Policy>,
    early_show: Option<std::thread::ScopedJoinHandle<'_, Result<Vec<Stanza>>>>,
) -> Result<(Vec<PackageName>, Option<Daemon>, Vec<nts::NtsFile>)> {
    let mut wanted = wants.literal_packages.clone();
    if wants.daemon.is_some() {
        // Every time-daemon package: the candidates decide the daemon, and
        // the others are the competitors the plan removes.
        wanted.extend(crate::daemons::time_daemon_packages());
    }
    query_policies(probe, lists, policies, &wanted)?;

    let Some(requested) = wants.daemon else {
        return Ok((wanted, None, Vec::new()));
    };
    let candidate = policies
        .get(&requested.package())
        .and_then(|p| p.candidate.clone());
    let stanzas = match (candidate, early_show) {
        (Some(version), Some(every)) if requested.may_be_transitional() => joined(every)?
            .into_iter()
            .filter(|s| s.get("Version") == Some(version.as_str()))
            .collect(),
        (Some(version), None) if requested.may_be_transitional() => {
            probe.apt_show(&[(requested.package(), version)], lists)?
        }
        // No candidate: whatever `early_show` found (or failed on) is moot.
        _ => Vec::new(),
    };
    let stanza = stanzas
        .iter()
        .find(|s| s.get("Package") == Some(requested.as_str()));
    // With no usable lists the daemon cannot be resolved: the mirror's
    // own words say why, and what to do.
    let daemon = daemon::resolve(requested, policies, stanza).map_err(|e| match refresh_error {
        Some(why) => anyhow::anyhow!(
            "{e}\nThe package lists could not be refreshed: {why}\nCheck /etc/apt/sources.list and /etc/apt/sources.list.d and the network, then run again"
        ),
        None => anyhow::Error::msg(e),
    })?;
    let version = policies
        .get(&daemon.package)
        .and_then(|p| p.candidate.clone().or_else(|| p.installed.clone()));
    if !wants.nts.is_empty() {
        daemon::check_nts(&daemon, version.as_deref(), &wants.nts).map_err(anyhow::Error::msg)?;
    }
    let nts_files = nts::check(probe, &daemon, &wants.nts_files)?;
    daemon::check_settings(&daemon, version.as_deref(), &wants.settings)
        .map_err(anyhow::Error::msg)?;
    Ok((wanted, Some(daemon), nts_files))
}

/// The kind of virtual machine systemd-detect-virt names (`None` on
/// bare metal); containers do not count, their host's clock is theirs.
fn detect_virtualization(probe: &dyn Probe) -> Result<Option<String>> {
    let out = probe
        .ask(&["systemd-detect-virt", "--vm"])
        .context("virtual: auto asks systemd-detect-virt (systemd); set virtual to true or false where it is not")?;
    let named = out.stdout.trim();
    match out.code {
        0 if !named.is_empty() => Ok(Some(named.to_string())),
        1 if named == "none" || named.is_empty() => Ok(None),
        code => anyhow::bail!(
            "systemd-detect-virt --vm exited {code} ({}); set virtual to true or false",
            format!("{named} {}", out.stderr.trim()).trim()
        ),
    }
}

/// What the rendered steps name, for the probes: packages (with those
/// asked about already), files and their accounts, units, and whether any
/// step removes unneeded packages.
struct Named {
    packages: Vec<PackageName>,
    files: Vec<AbsPath>,
    accounts: Vec<(String, bool)>,
    units: Vec<UnitName>,
    autoremove: bool,
    timezone: Option<crate::names::TimeZone>,
}

impl Named {
    fn by(rendered: &Rendered, wanted: Vec<PackageName>) -> Self {
        let mut named = Named {
            packages: wanted,
            files: Vec::new(),
            accounts: Vec::new(),
            units: Vec::new(),
            autoremove: false,
            timezone: None,
        };
        for step in rendered.steps.iter().chain(&rendered.handlers) {
            match &step.action {
                Action::Apt(a) => {
                    named.packages.extend(a.packages.iter().cloned());
                    named.autoremove |= a.autoremove == Autoremove::Yes;
                }
                Action::Template(t) => {
                    named.files.push(t.dest.clone());
                    named.accounts.push((t.owner.to_string(), false));
                    named.accounts.push((t.group.to_string(), true));
                }
                Action::Service(s) => named.units.push(s.unit.clone()),
                Action::Timezone(zone) => named.timezone = Some(zone.clone()),
            }
        }
        named.packages.sort();
        named.packages.dedup();
        named.units.sort();
        named.units.dedup();
        named
    }
}

/// What autoremove would also remove once the rendered steps' removals of
/// installed packages are done; asked only when there are some. A failed
/// simulation leaves the plan unknowing, not wrong: apply names what went.
fn left_unneeded(
    probe: &dyn Probe,
    lists: &Lists,
    rendered: &Rendered,
    dpkg: &BTreeMap<PackageName, dpkg::DpkgPackage>,
) -> Vec<String> {
    use crate::plan::step::PkgState;
    let (mut installs, mut removals) = (Vec::new(), Vec::new());
    for step in rendered.steps.iter().chain(&rendered.handlers) {
        let Action::Apt(apt) = &step.action else {
            continue;
        };
        for package in &apt.packages {
            let installed = dpkg.get(package).is_some_and(|d| {
                matches!(
                    d.state,
                    DpkgState::Installed { .. } | DpkgState::Broken { .. }
                )
            });
            match apt.state {
                PkgState::Present | PkgState::Latest => installs.push(package.clone()),
                PkgState::Absent | PkgState::Purged if installed => removals.push(package.clone()),
                _ => {}
            }
        }
    }
    if removals.is_empty() {
        return Vec::new();
    }
    probe
        .left_unneeded(lists, &installs, &removals)
        .unwrap_or_else(|e| {
            log::warn!("could not simulate what the removals leave unneeded: {e:#}");
            Vec::new()
        })
}

/// The answer of a probe run on a thread of `std::thread::scope`.
fn joined<T>(handle: std::thread::ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Adds the policies of the packages not asked about yet, in one call.
fn query_policies(
    probe: &dyn Probe,
    lists: &Lists,
    known: &mut BTreeMap<PackageName, Policy>,
    wanted: &[PackageName],
) -> Result<()> {
    let mut missing: Vec<PackageName> = wanted
        .iter()
        .filter(|p| !known.contains_key(*p))
        .cloned()
        .collect();
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        known.extend(
            probe
                .apt_policy(&missing, lists)
                .context("asking apt for candidate versions")?,
        );
    }
    Ok(())
}
