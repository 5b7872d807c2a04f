//! apt's answers remembered between runs, so that a run on a converged node
//! asks apt nothing at all.
//!
//! apt-cache and `apt-get -s autoremove` are the expensive probes (hundreds of
//! milliseconds each: apt loads or rebuilds its whole package cache), and
//! their answers depend only on files: the package lists, dpkg's status and
//! extended_states, and apt's configuration under /etc/apt (or where
//! APT_CONFIG points), and on the running kernel (which apt keeps from
//! autoremove). A fingerprint of those files (path, size, mtime, inode of
//! each, symlinks followed), of APT_CONFIG and of `uname -r` keys a small record,
//! [`MEMO_PATH`], of the candidates, the candidate stanzas and the
//! autoremovable packages that the last run read from the node's own lists.
//! When the fingerprint still matches, [`MemoProbe`] answers from the record;
//! on any mismatch it asks apt as before. Answers read from private (fresh)
//! lists are never remembered.
//!
//! Gathering only reads the record. It is written by `apply` alone, after a
//! run that did not fail, and only when the fingerprint taken after the run
//! equals the one the answers were read under (so a run that installed or
//! removed anything writes nothing; the next run re-asks apt). `plan` never
//! writes it. Deleting the file is always safe.

use super::apt::{Policy, Stanza};
use super::dpkg::DpkgPackage;
use super::probe::{FileState, InitSystem, Lists, Probe, UnitFact};
use crate::names::{AbsPath, PackageName, UnitName};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Where `apply` keeps the record.
pub const MEMO_PATH: &str = "/var/lib/ntp-provision/apt-facts.json";

/// Bumped when what the record means changes, so an old record is ignored.
const FORMAT: &str = concat!("apt-facts 1, ntp-provision ", env!("CARGO_PKG_VERSION"));

/// apt's answers for the node's own lists, under one fingerprint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AptMemo {
    pub fingerprint: String,
    pub policies: BTreeMap<String, Policy>,
    /// `apt-cache show --no-all-versions` answers, keyed by the sorted,
    /// space-joined package names asked for.
    pub shows: BTreeMap<String, Vec<Stanza>>,
    pub autoremovable: Option<Vec<String>>,
}

impl AptMemo {
    /// Writes the record if apt's inputs are still those it was read under.
    /// Called by `apply` after a run that did not fail; a failure to write
    /// costs only speed, so it is logged, never fatal.
    pub fn save_if_current(&self, probe: &dyn Probe) {
        let now = match probe.apt_fingerprint() {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(e) => return log::warn!("not remembering apt's answers: {e:#}"),
        };
        if now != self.fingerprint {
            log::debug!("apt's inputs changed during the run: not remembering apt's answers");
            return;
        }
        if let Err(e) = write_atomically(Path::new(MEMO_PATH), self) {
            log::warn!("could not remember apt's answers in {MEMO_PATH}: {e:#}");
        }
    }
}

fn write_atomically(path: &Path, memo: &AptMemo) -> Result<()> {
    let dir = path.parent().expect("MEMO_PATH has a parent");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(".apt-facts.json.tmp");
    let text = serde_json::to_vec(memo).context("serialising apt's answers")?;
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// Parses a record read by [`Probe::apt_memo`]; a record of another format
/// or fingerprint, or one that does not parse, is no record.
pub fn parse(text: &str, fingerprint: &str) -> Option<AptMemo> {
    let memo: AptMemo = serde_json::from_str(text).ok()?;
    (memo.fingerprint == fingerprint).then_some(memo)
}

/// The format tag every fingerprint starts with.
pub fn fingerprint_prefix() -> &'static str {
    FORMAT
}

/// A probe that answers apt questions about the node's own lists from a
/// matching record, asks the inner probe otherwise, and records every answer
/// it got from apt so that `apply` can save them.
pub struct MemoProbe<'a> {
    inner: &'a dyn Probe,
    /// `None` when the inner probe has no fingerprint (the fake): no memo at all.
    fingerprint: Option<String>,
    loaded: Option<AptMemo>,
    recorded: Mutex<AptMemo>,
    /// Whether any answer had to come from apt.
    asked_apt: AtomicBool,
    /// Whether any question was about private lists: then nothing is recorded.
    private_used: AtomicBool,
}

impl<'a> MemoProbe<'a> {
    pub fn new(inner: &'a dyn Probe) -> Result<Self> {
        Self::carrying(inner, None)
    }

    /// As `new`; `carried` (answers of this run's earlier facts, not saved)
    /// answers too while the fingerprint still matches: after an `apt-get
    /// update` that found nothing new, for one.
    pub fn carrying(inner: &'a dyn Probe, carried: Option<&AptMemo>) -> Result<Self> {
        let fingerprint = inner.apt_fingerprint()?;
        let loaded = match &fingerprint {
            Some(f) => carried
                .filter(|c| c.fingerprint == *f)
                .cloned()
                .or(inner.apt_memo()?.and_then(|text| parse(&text, f))),
            None => None,
        };
        if loaded.is_some() {
            log::info!("apt's answers come from {MEMO_PATH}: its lists, dpkg status and /etc/apt are unchanged since it was written");
        }
        let recorded = AptMemo {
            fingerprint: fingerprint.clone().unwrap_or_default(),
            ..AptMemo::default()
        };
        Ok(MemoProbe {
            inner,
            fingerprint,
            loaded,
            recorded: Mutex::new(recorded),
            asked_apt: AtomicBool::new(false),
            private_used: AtomicBool::new(false),
        })
    }

    /// What `apply` should save: the answers read from apt for the node's
    /// own lists, when some had to be read and none came from private lists.
    pub fn into_record(self) -> Option<AptMemo> {
        let wanted = self.fingerprint.is_some()
            && self.asked_apt.load(Ordering::SeqCst)
            && !self.private_used.load(Ordering::SeqCst);
        if !wanted {
            return None;
        }
        // Answers of a matching record stay true: keep them beside the new ones.
        let mut record = self.loaded.unwrap_or_default();
        let new = self
            .recorded
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        record.fingerprint = new.fingerprint;
        record.policies.extend(new.policies);
        record.shows.extend(new.shows);
        record.autoremovable = new.autoremovable.or(record.autoremovable);
        Some(record)
    }

    /// An `apt-cache show` answer under `key`: from the record, else asked
    /// (`ask`) and recorded; on private lists always asked, never recorded.
    fn show(
        &self,
        lists: &Lists,
        key: String,
        ask: impl FnOnce() -> Result<Vec<Stanza>>,
    ) -> Result<Vec<Stanza>> {
        if !self.usable(lists) {
            self.private_lists_used();
            return ask();
        }
        if let Some(hit) = self.loaded.as_ref().and_then(|m| m.shows.get(&key)) {
            return Ok(hit.clone());
        }
        let answer = ask()?;
        self.asked_apt.store(true, Ordering::SeqCst);
        self.recorded().shows.insert(key, answer.clone());
        Ok(answer)
    }

    fn usable(&self, lists: &Lists) -> bool {
        self.fingerprint.is_some() && matches!(lists, Lists::Node { .. })
    }

    /// A run that read private lists must not leave a partial record behind.
    fn private_lists_used(&self) {
        self.private_used.store(true, Ordering::SeqCst);
    }

    /// The answers read from apt so far (probes may run on several threads).
    fn recorded(&self) -> MutexGuard<'_, AptMemo> {
        self.recorded.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn show_key(versions: &[(PackageName, String)]) -> String {
    let mut names: Vec<String> = versions.iter().map(|(p, v)| format!("{p}={v}")).collect();
    names.sort();
    names.join(" ")
}

impl Probe for MemoProbe<'_> {
    fn init_system(&self) -> Result<InitSystem> {
        self.inner.init_system()
    }

    fn lists_age(&self) -> Result<Option<Duration>> {
        self.inner.lists_age()
    }

    fn update_private_lists(&self, lists: &Lists) -> Result<()> {
        self.inner.update_private_lists(lists)
    }

    fn apt_policy(
        &self,
        pkgs: &[PackageName],
        lists: &Lists,
    ) -> Result<BTreeMap<PackageName, Policy>> {
        if !self.usable(lists) {
            self.private_lists_used();
            return self.inner.apt_policy(pkgs, lists);
        }
        if let Some(memo) = &self.loaded {
            let hits: Option<BTreeMap<PackageName, Policy>> = pkgs
                .iter()
                .map(|p| Some((p.clone(), memo.policies.get(p.as_str())?.clone())))
                .collect();
            if let Some(hits) = hits {
                return Ok(hits);
            }
        }
        let answer = self.inner.apt_policy(pkgs, lists)?;
        self.asked_apt.store(true, Ordering::SeqCst);
        self.recorded()
            .policies
            .extend(answer.iter().map(|(k, v)| (k.to_string(), v.clone())));
        Ok(answer)
    }

    fn apt_show(&self, versions: &[(PackageName, String)], lists: &Lists) -> Result<Vec<Stanza>> {
        self.show(lists, show_key(versions), || {
            self.inner.apt_show(versions, lists)
        })
    }

    fn apt_show_every_version(&self, pkg: &PackageName, lists: &Lists) -> Result<Vec<Stanza>> {
        // The bare name: `show_key` of versioned questions always has a `=`.
        self.show(lists, pkg.to_string(), || {
            self.inner.apt_show_every_version(pkg, lists)
        })
    }

    fn dpkg_packages(&self, pkgs: &[PackageName]) -> Result<BTreeMap<PackageName, DpkgPackage>> {
        self.inner.dpkg_packages(pkgs)
    }

    // Asked only by a run that removes installed packages: never remembered.
    fn left_unneeded(
        &self,
        lists: &Lists,
        installs: &[PackageName],
        removals: &[PackageName],
    ) -> Result<Vec<String>> {
        self.inner.left_unneeded(lists, installs, removals)
    }

    fn autoremovable(&self, lists: &Lists) -> Result<Vec<String>> {
        if !self.usable(lists) {
            self.private_lists_used();
            return self.inner.autoremovable(lists);
        }
        if let Some(hit) = self.loaded.as_ref().and_then(|m| m.autoremovable.clone()) {
            return Ok(hit);
        }
        let answer = self.inner.autoremovable(lists)?;
        self.asked_apt.store(true, Ordering::SeqCst);
        self.recorded().autoremovable = Some(answer.clone());
        Ok(answer)
    }

    fn file(&self, path: &AbsPath) -> Result<Option<FileState>> {
        self.inner.file(path)
    }

    fn timezone(&self, zone: &crate::names::TimeZone) -> Result<super::timezone::TimezoneFact> {
        self.inner.timezone(zone)
    }

    fn account_id(&self, name: &str, group: bool) -> Result<Option<u32>> {
        self.inner.account_id(name, group)
    }

    fn units(&self, init: InitSystem, units: &[UnitName]) -> Result<Vec<UnitFact>> {
        self.inner.units(init, units)
    }

    fn dpkg_updates(&self) -> Result<Vec<String>> {
        self.inner.dpkg_updates()
    }

    fn ask(&self, argv: &[&str]) -> Result<crate::process::Output> {
        self.inner.ask(argv)
    }

    fn apt_fingerprint(&self) -> Result<Option<String>> {
        Ok(self.fingerprint.clone())
    }

    fn apt_memo(&self) -> Result<Option<String>> {
        self.inner.apt_memo()
    }

    fn dpkg_fingerprint(&self) -> Result<Option<String>> {
        self.inner.dpkg_fingerprint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeNode;
    use crate::plan::{Plan, Source, DEFAULT_PLAN};
    use std::sync::Mutex;

    /// The fake node with a fingerprint and a record store, as the real node has.
    struct Remembering {
        node: FakeNode,
        fingerprint: String,
        stored: Mutex<Option<String>>,
    }

    impl Probe for Remembering {
        fn init_system(&self) -> Result<InitSystem> {
            self.node.init_system()
        }
        fn lists_age(&self) -> Result<Option<Duration>> {
            self.node.lists_age()
        }
        fn update_private_lists(&self, lists: &Lists) -> Result<()> {
            self.node.update_private_lists(lists)
        }
        fn apt_policy(
            &self,
            p: &[PackageName],
            l: &Lists,
        ) -> Result<BTreeMap<PackageName, Policy>> {
            self.node.apt_policy(p, l)
        }
        fn apt_show(&self, p: &[(PackageName, String)], l: &Lists) -> Result<Vec<Stanza>> {
            self.node.apt_show(p, l)
        }
        fn apt_show_every_version(&self, p: &PackageName, l: &Lists) -> Result<Vec<Stanza>> {
            self.node.apt_show_every_version(p, l)
        }
        fn dpkg_packages(&self, p: &[PackageName]) -> Result<BTreeMap<PackageName, DpkgPackage>> {
            self.node.dpkg_packages(p)
        }
        fn autoremovable(&self, l: &Lists) -> Result<Vec<String>> {
            self.node.autoremovable(l)
        }
        fn file(&self, p: &AbsPath) -> Result<Option<FileState>> {
            self.node.file(p)
        }
        fn timezone(
            &self,
            z: &crate::names::TimeZone,
        ) -> Result<crate::facts::timezone::TimezoneFact> {
            self.node.timezone(z)
        }
        fn account_id(&self, n: &str, g: bool) -> Result<Option<u32>> {
            self.node.account_id(n, g)
        }
        fn units(&self, i: InitSystem, u: &[UnitName]) -> Result<Vec<UnitFact>> {
            self.node.units(i, u)
        }
        fn dpkg_updates(&self) -> Result<Vec<String>> {
            self.node.dpkg_updates()
        }
        fn ask(&self, argv: &[&str]) -> Result<crate::process::Output> {
            self.node.ask(argv)
        }
        fn apt_fingerprint(&self) -> Result<Option<String>> {
            Ok(Some(self.fingerprint.clone()))
        }
        fn apt_memo(&self) -> Result<Option<String>> {
            Ok(self.stored.lock().unwrap().clone())
        }
    }

    fn apt_probes(node: &FakeNode) -> Vec<String> {
        let probes = node.state().probes.clone();
        probes
            .into_iter()
            .filter(|p| p.starts_with("apt"))
            .collect()
    }

    #[test]
    fn a_matching_record_answers_every_apt_question_and_a_stale_one_none() {
        let node = FakeNode::bookworm();
        node.state().lists_age = Some(Duration::from_secs(60));
        let plan = Plan::load(DEFAULT_PLAN.as_bytes(), Source::embedded(), &[]).unwrap();
        let probe = Remembering {
            node: node.clone(),
            fingerprint: "f1".into(),
            stored: Mutex::new(None),
        };

        let first = crate::facts::gather(&probe, &crate::facts::Wants::from(&plan)).unwrap();
        assert!(!apt_probes(&node).is_empty(), "no record yet: apt is asked");
        let record = first
            .reuse
            .apt
            .clone()
            .expect("answers from apt are offered for saving");
        assert_eq!(record.fingerprint, "f1");
        *probe.stored.lock().unwrap() = Some(serde_json::to_string(&record).unwrap());

        node.state().probes.clear();
        let second = crate::facts::gather(&probe, &crate::facts::Wants::from(&plan)).unwrap();
        assert_eq!(
            apt_probes(&node),
            Vec::<String>::new(),
            "the record answers everything"
        );
        let unstamped = |f: &crate::facts::Facts| crate::facts::Facts {
            stamp: String::new(),
            gathered_at: std::time::UNIX_EPOCH,
            ..f.clone()
        };
        assert_eq!(
            unstamped(&second.facts),
            unstamped(&first.facts),
            "the same facts either way"
        );
        assert!(second.reuse.apt.is_none(), "nothing new to save");

        let changed = Remembering {
            fingerprint: "f2".into(),
            ..probe
        };
        node.state().probes.clear();
        crate::facts::gather(&changed, &crate::facts::Wants::from(&plan)).unwrap();
        assert!(
            !apt_probes(&node).is_empty(),
            "another fingerprint: apt is asked again"
        );
    }

    #[test]
    fn answers_carried_from_before_an_update_hold_while_the_fingerprint_does() {
        use crate::facts::{gather_as, Carried, StaleLists};
        let node = FakeNode::bookworm();
        node.state().lists_age = Some(Duration::from_secs(7200));
        let plan = Plan::load(DEFAULT_PLAN.as_bytes(), Source::embedded(), &[]).unwrap();
        let probe = Remembering {
            node: node.clone(),
            fingerprint: "f1".into(),
            stored: Mutex::new(None),
        };
        // apply's facts before its update: the node's own (old) lists.
        let before = gather_as(
            &probe,
            &crate::facts::Wants::from(&plan),
            StaleLists::ReadNodes,
            Carried::default(),
        )
        .unwrap();
        let carried = before.reuse.apt.expect("read from apt, under f1");

        // The update found nothing new: the same fingerprint, apt not asked.
        node.state().probes.clear();
        let with_apt = Carried {
            apt: Some(&carried),
            node: None,
        };
        let after = gather_as(
            &probe,
            &crate::facts::Wants::from(&plan),
            StaleLists::ReadNodes,
            with_apt,
        )
        .unwrap();
        assert_eq!(apt_probes(&node), Vec::<String>::new());
        assert_eq!(after.facts.packages, before.facts.packages);

        // It brought new lists: another fingerprint, apt asked again.
        let changed = Remembering {
            fingerprint: "f2".into(),
            ..probe
        };
        gather_as(
            &changed,
            &crate::facts::Wants::from(&plan),
            StaleLists::ReadNodes,
            with_apt,
        )
        .unwrap();
        assert!(!apt_probes(&node).is_empty());
    }

    #[test]
    fn answers_from_private_lists_are_never_offered_for_saving() {
        let node = FakeNode::bookworm(); // lists never updated: private lists are read
        let plan = Plan::load(DEFAULT_PLAN.as_bytes(), Source::embedded(), &[]).unwrap();
        let probe = Remembering {
            node,
            fingerprint: "f1".into(),
            stored: Mutex::new(None),
        };
        assert!(
            crate::facts::gather(&probe, &crate::facts::Wants::from(&plan))
                .unwrap()
                .reuse
                .apt
                .is_none()
        );
    }

    #[test]
    fn a_record_of_another_fingerprint_or_garbage_is_no_record() {
        let memo = AptMemo {
            fingerprint: "a".into(),
            ..AptMemo::default()
        };
        let text = serde_json::to_string(&memo).unwrap();
        assert_eq!(parse(&text, "a"), Some(memo));
        assert_eq!(parse(&text, "b"), None);
        assert_eq!(parse("{not json", "a"), None);
    }
}
