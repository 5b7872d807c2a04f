//! What `ntp-provision verify` prints: the check as human lines, or exactly
//! one JSON document, and the exit code it maps to.
//!
//! Rendering only: the figures and the verdict come from `evaluate`.

use super::{Check, SourceKind, Verdict};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct VerifyReport {
    pub mode: &'static str,
    pub failed: bool,
    #[serde(flatten)]
    pub check: Option<Check>,
    /// Why it failed: the amplification found, that nothing answered, or why
    /// nothing could be measured.
    pub error: Option<String>,
}

impl VerifyReport {
    pub fn from_check(check: Check) -> Self {
        VerifyReport {
            mode: "verify",
            failed: check.verdict != Verdict::NoAmplification,
            error: check.failure(),
            check: Some(check),
        }
    }

    pub fn failed(error: String) -> Self {
        VerifyReport {
            mode: "verify",
            failed: true,
            check: None,
            error: Some(error),
        }
    }

    /// 0 no amplification, 1 amplification, no answer or no measurement; with
    /// `detailed` (as `plan` and `apply`: nothing ever changes here) 0 or 4.
    pub fn exit_code(&self, detailed: bool) -> i32 {
        match (self.failed, detailed) {
            (false, _) => 0,
            (true, false) => 1,
            (true, true) => 4,
        }
    }

    pub fn json(&self) -> String {
        let doc = serde_json::to_value(self).expect("a verify report is always serialisable");
        let mut text = serde_json::to_string_pretty(&crate::wire::versioned(doc))
            .expect("a JSON value always renders");
        text.push('\n');
        text
    }

    pub fn human(&self) -> String {
        let mut out = String::new();
        if let Some(check) = &self.check {
            let source = match check.source {
                SourceKind::Remote => {
                    "stands for any host: the usual restrict lines do not trust it"
                }
                SourceKind::Trusted => "trusted by the usual restrict lines: answers are expected",
            };
            out.push_str(&format!(
                "VERIFY {} from {} ({source})\n",
                check.target, check.from
            ));
            for line in check.lines() {
                out.push_str(&line);
                out.push('\n');
            }
            out.push('\n');
        }
        if let Some(e) = &self.error {
            out.push_str(&format!("error: {e}\n"));
        }
        let result = match &self.check {
            None => "RESULT not measured".to_string(),
            Some(c) if c.verdict == Verdict::Amplifier => format!(
                "RESULT amplifier: up to {}x ({})",
                c.max_amplification,
                c.worst_query.as_deref().unwrap_or("")
            ),
            Some(c) if c.verdict == Verdict::InformationLeak => String::from(
                "RESULT information leak: chrony's command port answered (no amplification: no mode 6 or mode 7 \
                 query was answered)"
            ),
            Some(c) if c.verdict == Verdict::UnprobedNetworks => format!(
                "RESULT not measured: the config answers queries from {} network(s) no probe came from",
                c.unprobed.len()
            ),
            Some(c) if c.verdict == Verdict::NothingListens => {
                format!("RESULT not measured: nothing listens on {}", c.target)
            }
            Some(c) if c.verdict == Verdict::NoAnswer => {
                format!("RESULT not measured: nothing answered from {}", c.target)
            }
            Some(c) if c.source == SourceKind::Trusted => {
                "RESULT not a test of remote hosts (the source is trusted); run without --from"
                    .to_string()
            }
            Some(_) => {
                "RESULT no amplification: no mode 6 or mode 7 query was answered".to_string()
            }
        };
        out.push_str(&result);
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::{evaluate, packet::Query, target};
    use super::*;

    fn check(readvar_bytes: usize) -> Check {
        let answers: Vec<(super::super::Probe, Vec<Vec<u8>>)> = Query::ALL
            .into_iter()
            .map(|q| {
                let datagrams = match q {
                    Query::Time => vec![vec![0x24; 48]],
                    Query::ReadVar if readvar_bytes > 0 => vec![{
                        let mut d = vec![0x16, 0x82];
                        d.resize(readvar_bytes, 0);
                        d
                    }],
                    _ => vec![],
                };
                (q.into(), datagrams)
            })
            .collect();
        evaluate(target::DEFAULT_TARGET, target::DEFAULT_FROM, &answers)
    }

    #[test]
    fn json_has_the_figures_of_every_query_and_the_verdict() {
        let report = VerifyReport::from_check(check(0));
        let doc: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(doc["mode"], "verify");
        assert_eq!(doc["failed"], false);
        assert_eq!(doc["error"], serde_json::Value::Null);
        assert_eq!(doc["target"], "127.0.0.1:123");
        assert_eq!(doc["from"], "127.0.0.2");
        assert_eq!(doc["source"], "remote");
        assert_eq!(doc["verdict"], "no_amplification");
        assert_eq!(doc["time_service"], "served");
        let queries = doc["queries"].as_array().unwrap();
        let names: Vec<&str> = queries
            .iter()
            .map(|q| q["query"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "time",
                "read_var",
                "read_stat",
                "mon_get_list",
                "peer_list",
                "chrony_tracking",
                "chrony_sources"
            ]
        );
        assert_eq!(queries[1]["sent"], 12);
        assert_eq!(queries[5]["port"], 323);
        assert_eq!(queries[5]["sent"], 108);
        assert_eq!(queries[1]["received"], 0);
        assert_eq!(queries[0]["received"], 48);
        assert_eq!(queries[0]["replies"][0]["mode"], 4);
        assert_eq!(report.exit_code(false), 0);
        assert_eq!(report.exit_code(true), 0);
        assert!(
            report
                .human()
                .ends_with("RESULT no amplification: no mode 6 or mode 7 query was answered\n"),
            "{}",
            report.human()
        );
    }

    #[test]
    fn an_amplifier_fails_with_its_factor() {
        let report = VerifyReport::from_check(check(400));
        assert!(report.failed);
        assert_eq!((report.exit_code(false), report.exit_code(true)), (1, 4));
        let doc: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(doc["verdict"], "amplifier");
        assert_eq!(doc["queries"][1]["amplification"], 33.33);
        assert_eq!(doc["max_amplification"], 33.33);
        let human = report.human();
        assert!(human.contains("failed: mode 6 READVAR: sent 12 bytes, received 400 bytes in 1 datagram (amplification 33.33x)"), "{human}");
        assert!(
            human.ends_with("RESULT amplifier: up to 33.33x (mode 6 READVAR)\n"),
            "{human}"
        );
    }

    #[test]
    fn a_target_that_answers_nothing_fails_saying_so() {
        let mut check = check(0);
        for q in &mut check.queries {
            q.received = 0;
            q.datagrams = 0;
            q.replies.clear();
        }
        check.time_service = super::super::TimeService::NotServed;
        check.verdict = Verdict::NothingListens;
        let report = VerifyReport::from_check(check);
        assert!(report.failed);
        assert_eq!((report.exit_code(false), report.exit_code(true)), (1, 4));
        let doc: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(doc["verdict"], "nothing_listens");
        assert_eq!(doc["queries"].as_array().unwrap().len(), 7);
        assert!(
            doc["error"]
                .as_str()
                .unwrap()
                .starts_with("nothing listens on 127.0.0.1:123: "),
            "{doc:#}"
        );
        let human = report.human();
        assert!(
            human.contains("info: 127.0.0.1:123 has nothing listening (ICMP port unreachable)\n")
                && human.contains("\nerror: nothing listens on 127.0.0.1:123: ")
                && human.ends_with("RESULT not measured: nothing listens on 127.0.0.1:123\n"),
            "{human}"
        );
    }

    #[test]
    fn no_measurement_is_a_failure_with_the_reason() {
        let report = VerifyReport::failed("cannot bind a UDP socket to 127.0.0.2".into());
        let doc: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(doc["failed"], true);
        assert_eq!(doc["error"], "cannot bind a UDP socket to 127.0.0.2");
        assert!(doc.get("queries").is_none());
        assert_eq!(report.exit_code(false), 1);
    }
}
