//! The binary's contract where no node is needed: usage, exit codes for bad
//! input, and the JSON document that a caller parsing stdout always gets.
//! Every case here fails before the first probe, so it runs on any machine.
//!
//! The binary runs as an unprivileged user (nobody) even when the tests run
//! as root: a plan the loader should refuse but does not would then stop at
//! `apply`'s root check instead of converging the machine running the tests.

mod common;

use common::{ntp_provision_as_nobody, world_readable_dir};
use std::io::Write;
use std::process::Stdio;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn ntp_provision(args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut child = ntp_provision_as_nobody()
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    if let Some(input) = stdin {
        // A refused plan may close stdin early; that is not the test's concern.
        let _ = child.stdin.take().unwrap().write_all(input);
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs and checks the exit code and a fragment of stderr.
fn check(args: &[&str], stdin: Option<&[u8]>, code: i32, stderr_has: &str) -> Run {
    let run = ntp_provision(args, stdin);
    assert_eq!(
        run.code, code,
        "ntp-provision {args:?}\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(
        run.stderr.contains(stderr_has),
        "ntp-provision {args:?}: {stderr_has:?} not in stderr:\n{}",
        run.stderr
    );
    run
}

#[test]
fn help_and_version() {
    let help = check(&["--help"], None, 0, "");
    assert!(help.stdout.contains("Examples:"), "{}", help.stdout);
    assert!(help.stdout.contains("apply"));
    let version = check(&["--version"], None, 0, "");
    // ntp-provision 0.1.0 (COMMIT DATE): the commit, or "unknown" outside git.
    let prefix = format!("ntp-provision {} (", env!("CARGO_PKG_VERSION"));
    let info = version
        .stdout
        .trim()
        .strip_prefix(&prefix)
        .and_then(|s| s.strip_suffix(')'));
    let (commit, date) = info
        .and_then(|i| i.split_once(' '))
        .unwrap_or_else(|| panic!("{:?}", version.stdout));
    assert!(
        commit == "unknown" || commit.chars().take(12).all(|c| c.is_ascii_hexdigit()),
        "{commit}"
    );
    let digits: Vec<&str> = date.split('-').collect();
    assert!(
        digits.len() == 3 && digits.iter().all(|d| d.parse::<u32>().is_ok()),
        "{date}"
    );
    let sub = check(&["plan", "--help"], None, 0, "");
    assert!(sub.stdout.contains("--detailed-exitcodes"));
    assert!(
        sub.stdout.contains("-e, --var <KEY=VALUE|@FILE>"),
        "{}",
        sub.stdout
    );
}

#[test]
fn bad_usage_exits_64() {
    check(&[], None, 64, "Usage");
    check(&["frobnicate"], None, 64, "unrecognized subcommand");
    check(
        &["plan", "--wait-sync"],
        None,
        64,
        "--wait-sync is for apply",
    );
    check(
        &["apply", "--wait-sync=soon"],
        None,
        64,
        "invalid value 'soon'",
    );
    check(
        &["plan", "--format", "xml"],
        None,
        64,
        "invalid value 'xml'",
    );
    check(&["plan", "-e", "novalue"], None, 64, "expected KEY=VALUE");
    check(&["plan", "-e", "9x=1"], None, 64, "not a variable name");
}

#[test]
fn invalid_plans_exit_65_and_name_the_place() {
    let run = check(
        &["plan", "-"],
        Some(b"steps:\n  - name: x\n    apt: {name: ntp, stat: latest}\n"),
        65,
        "<stdin>:",
    );
    assert!(
        run.stderr.contains("unknown field `stat`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.is_empty(),
        "human mode prints nothing on stdout: {}",
        run.stdout
    );

    let run = check(
        &[
            "apply",
            "-",
            "-e",
            "servers=[\"a.example\\nrestrict default\"]",
            "--format",
            "json",
        ],
        Some(playbook().as_bytes()),
        65,
        "vars.servers[0]",
    );
    let doc: serde_json::Value =
        serde_json::from_str(&run.stdout).expect("exactly one JSON document");
    assert_eq!(doc["failed"], true);
    assert_eq!(doc["changed"], false);
    assert!(
        doc["error"].as_str().unwrap().contains("control character"),
        "{doc}"
    );
    assert_eq!(doc["steps"].as_array().unwrap().len(), 0);

    check(&["plan", "-"], Some(b"\xff\xfe\x00"), 65, "not UTF-8");
}

/// An error about a variable given with -e names that argument, or the
/// variables file with its line and column, never the plan it was merged into.
#[test]
fn errors_from_e_name_the_argument_or_the_variables_file() {
    let run = check(&["plan", "-e", "daemon=ntimed"], None, 65, "");
    assert_eq!(
        run.stderr,
        "ntp-provision: invalid plan: -e daemon=ntimed: vars.daemon: \"ntimed\" was never packaged by Debian or Ubuntu; choose one of ntp, ntpsec, chrony, openntpd, timesyncd\n"
    );
    let run = check(&["plan", "-e", "servers=["], None, 64, "");
    assert_eq!(
        run.stderr,
        "ntp-provision: -e servers=[: the value is not valid YAML: did not find expected node content at line 2 column 1, while parsing a flow node\n"
    );

    let dir = world_readable_dir();
    let vars = dir.path().join("vars.yaml");
    let at = format!("@{}", vars.display());
    let name = vars.display().to_string();
    let run = check(&["plan", "-e", &at, "--format", "json"], None, 66, "");
    let message = format!(
        "-e {at}: cannot read variables file {name}: No such file or directory (os error 2)"
    );
    assert_eq!(run.stderr, format!("ntp-provision: {message}\n"));
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    assert_eq!(doc["error"], message.as_str());

    std::fs::write(&vars, "- servers: [a.example]\n").unwrap();
    let run = check(&["plan", "-e", &at], None, 65, "");
    assert_eq!(
        run.stderr,
        format!("ntp-provision: -e {at}: {name}:1:1: invalid type: sequence, expected a map of variables\n")
    );
    std::fs::write(&vars, "servers: [a.example\n").unwrap();
    check(
        &["status", "-e", &at],
        None,
        65,
        &format!("status: -e {at}: {name}:2:1: "),
    );
    std::fs::File::create(&vars)
        .unwrap()
        .set_len(2 << 20)
        .unwrap();
    check(
        &["apply", "-e", &at],
        None,
        66,
        &format!(
            "variables file {name} is 2097152 bytes; variables files are limited to 1048576 bytes"
        ),
    );

    // Read and merged in order: the file's colour is refused, at its line,
    // unless a later -e replaces it; the last word on daemon is the file's.
    std::fs::write(&vars, "servers: [a.example]\ncolour: blue\n").unwrap();
    let run = check(&["plan", "-e", "daemon=ntimed", "-e", &at], None, 65, "");
    assert_eq!(
        run.stderr,
        format!("ntp-provision: invalid plan: -e daemon=ntimed: vars.daemon: \"ntimed\" was never packaged by Debian or Ubuntu; choose one of ntp, ntpsec, chrony, openntpd, timesyncd\n")
    );
    std::fs::write(
        &vars,
        "daemon: chrony\nservers: [a.example]\ncolour: blue\n",
    )
    .unwrap();
    let run = check(&["plan", "-e", "daemon=ntimed", "-e", &at], None, 65, "");
    assert_eq!(
        run.stderr,
        format!("ntp-provision: invalid plan: {name}:3:9: vars.colour: no step or template of the plan uses this variable\n")
    );
    let run = check(&["plan", "-e", &at, "-e", "colour=red"], None, 65, "");
    assert_eq!(
        run.stderr,
        "ntp-provision: invalid plan: -e colour=red: vars.colour: no step or template of the plan uses this variable\n"
    );
}

/// Nesting is refused before the YAML parser sees it (which took minutes on
/// a megabyte of `[`): exit 65, the depth, the limit and where it is passed.
#[test]
fn a_megabyte_of_nesting_exits_65_with_its_depth_and_place() {
    let dir = world_readable_dir();
    let file = dir.path().join("deep.yaml");
    let limit = "at most 32 are allowed (level 33 starts here)";
    let mib = 1 << 20;
    for (text, at, depth) in [
        ("[".repeat(mib), "1:33", mib),
        ("{".repeat(mib), "1:33", mib),
        ("- ".repeat(mib / 2), "1:65", mib / 2),
    ] {
        std::fs::write(&file, &text).unwrap();
        let run = check(&["apply", file.to_str().unwrap()], None, 65, "");
        assert_eq!(
            run.stderr,
            format!(
                "ntp-provision: invalid plan: {}:{at}: lists and maps nested {depth} levels deep; {limit}\n",
                file.display()
            )
        );
    }
    check(
        &["plan", "-"],
        Some("[".repeat(mib).as_bytes()),
        65,
        &format!("invalid plan: <stdin>:1:33: lists and maps nested {mib} levels deep; {limit}"),
    );
}

/// Standard input is read only up to the limit, so its size is not known:
/// the message says it is more, not a size it made up.
#[test]
fn a_plan_on_stdin_over_the_limit_is_refused_by_the_limit() {
    let run = check(&["plan", "-"], Some(&vec![b'#'; (1 << 20) + 4096]), 66, "");
    assert_eq!(
        run.stderr,
        "ntp-provision: the plan on standard input is more than 1048576 bytes; plans are limited to 1048576 bytes\n"
    );
    // Exactly the limit is allowed (and refused for what it is).
    check(
        &["plan", "-"],
        Some(&vec![b'#'; 1 << 20]),
        65,
        "missing field `steps`",
    );
}

/// A warning is one plain line without -v; -v adds the timestamp and the
/// module it comes from. (The plan is refused after the warning, before any
/// probe of the machine running the test.)
#[test]
fn warnings_are_plain_lines_unless_verbose() {
    let dir = world_readable_dir();
    let plan = dir.path().join("plan.yaml");
    std::fs::write(
        &plan,
        "vars: {servers: [a.example], colour: blue}\nsteps:\n  - name: x\n    template: {src: ntp.conf.j2, dest: /etc/ntp.conf}\n",
    )
    .unwrap();
    let ours = dir.path().join("ntp.conf.j2");
    std::fs::write(&ours, "server {{ servers[0].host }}\n").unwrap();
    let warning = format!(
        "template ntp.conf.j2: using {} next to the plan instead of the embedded one",
        ours.display()
    );
    let refusal = format!(
        "ntp-provision: invalid plan: {}:1:38: vars.colour: no step or template of the plan uses this variable",
        plan.display()
    );
    let run = check(&["plan", plan.to_str().unwrap()], None, 65, "");
    assert_eq!(run.stderr, format!("warning: {warning}\n{refusal}\n"));

    let run = check(&["-v", "plan", plan.to_str().unwrap()], None, 65, "");
    let first = run.stderr.lines().next().unwrap();
    // [2024-05-01T12:00:00.000Z WARN  ntp_provision::plan::render] template ...
    assert!(
        first.starts_with("[20")
            && first.contains("Z WARN  ntp_provision::plan::render] ")
            && first.ends_with(&warning),
        "{}",
        run.stderr
    );
}

#[test]
fn a_missing_plan_file_exits_66() {
    check(
        &["plan", "/nonexistent/plan.yaml"],
        None,
        66,
        "cannot read plan /nonexistent/plan.yaml",
    );
}

#[test]
fn apply_by_a_user_other_than_root_is_refused_as_a_report_like_any_run_that_cannot_start() {
    let human = check(&["apply", "--detailed-exitcodes"], None, 4, "");
    assert!(
        human.stdout.contains("error: apply must run as root") && human.stdout.contains("RECAP "),
        "{}",
        human.stdout
    );
    let run = check(&["apply", "--format", "json"], None, 1, "");
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    assert_eq!(
        (doc["mode"].as_str(), doc["failed"].as_bool()),
        (Some("apply"), Some(true))
    );
    assert_eq!(
        doc["error"],
        "apply must run as root: it installs packages and writes under /etc"
    );
    assert_eq!(doc["summary"]["failed"], 1, "the refusal counts: {doc}");
    assert_eq!(doc["format_version"], 1, "{doc}");
}

#[test]
fn colour_follows_the_color_option_and_auto_never_colours_a_pipe() {
    let red = "\x1b[31m";
    let always = check(&["--color", "always", "apply"], None, 1, "");
    assert!(always.stdout.contains(red), "{:?}", always.stdout);
    for args in [
        &["--color", "never", "apply"][..],
        &["apply"],
        &["apply", "--color", "auto"],
    ] {
        let run = check(args, None, 1, "");
        assert!(!run.stdout.contains('\x1b'), "{args:?}: {:?}", run.stdout);
    }
    check(
        &["--color", "sometimes", "apply"],
        None,
        64,
        "invalid value 'sometimes'",
    );
}

#[test]
fn status_with_a_bad_plan_fails_in_its_own_json_shape() {
    let run = check(
        &["status", "/nonexistent/plan.yaml", "--format", "json"],
        None,
        66,
        "status: cannot read plan /nonexistent/plan.yaml",
    );
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["error", "format_version"], "{doc}");
    check(&["status", "-e", "novalue"], None, 64, "status: ");
}

fn playbook() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/ntp.yaml")).unwrap()
}

#[test]
fn verify_refuses_names_and_mismatched_families_as_bad_usage() {
    check(&["verify", "localhost"], None, 64, "DNS is never used");
    check(
        &["verify", "127.0.0.1", "--from", "::1"],
        None,
        64,
        "not the same address family",
    );
    let run = check(
        &["verify", "::1", "--format", "json"],
        None,
        64,
        "give --from ADDR",
    );
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    assert_eq!(
        (doc["mode"].as_str(), doc["failed"].as_bool()),
        (Some("verify"), Some(true))
    );
    assert!(doc["error"].as_str().unwrap().contains("IPv6"));
}

#[test]
fn verify_of_a_port_where_nothing_listens_fails_saying_so() {
    // A loopback port that was free a moment ago: the kernel refuses every
    // probe with ICMP port unreachable, which is no measurement.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("127.0.0.1:{port}");
    let run = check(
        &[
            "verify",
            &target,
            "--format",
            "json",
            "--detailed-exitcodes",
        ],
        None,
        4,
        "",
    );
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    assert_eq!(doc["failed"], true);
    assert_eq!(doc["verdict"], "nothing_listens");
    assert_eq!(doc["time_service"], "not_served");
    assert_eq!(doc["queries"].as_array().unwrap().len(), 7);
    let error = doc["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("nothing listens on {target}: ")),
        "{error}"
    );
    let run = check(&["verify", &target], None, 1, "");
    assert!(
        run.stdout
            .contains(&format!("\nerror: nothing listens on {target}: "))
            && run.stdout.ends_with(&format!(
                "RESULT not measured: nothing listens on {target}\n"
            )),
        "{}",
        run.stdout
    );
}

/// The loader's table of bad plans, through the binary: exit 65, the exact
/// message with the file's path, and nothing run (`apply` runs as nobody and
/// would stop at the root check, exit 1, so reaching 65 means the plan was
/// refused first; the JSON report has no steps).
#[test]
fn every_bad_plan_exits_65_with_its_exact_message_and_runs_nothing() {
    let cases: &[(&str, &str)] = include!("data/bad_plans.in.rs");
    let dir = world_readable_dir();
    let file = dir.path().join("plan.yaml");
    for (text, want) in cases {
        std::fs::write(&file, text).unwrap();
        let want = want.replacen("plan.yaml", &file.display().to_string(), 1);
        let run = ntp_provision(&["apply", file.to_str().unwrap(), "--format", "json"], None);
        assert_eq!(run.code, 65, "{text:?}: {}", run.stderr);
        if want.ends_with("is not an embedded template") {
            // From a file, templates are also looked for next to the plan.
            assert!(
                run.stderr
                    .contains("steps[0].template.src: cannot read template"),
                "{}",
                run.stderr
            );
        } else {
            assert_eq!(
                run.stderr,
                format!("ntp-provision: invalid plan: {want}\n"),
                "{text:?}"
            );
        }
        let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
        assert_eq!(doc["steps"].as_array().map(Vec::len), Some(0), "{text:?}");
        assert_eq!(doc["changed"], false);
    }
}
