//! What the package ships besides the binary, generated from the binary
//! itself so it cannot drift from it:
//!
//! - `ntp-provision completions SHELL`: the shell completion script
//!   (clap_complete), from the clap definition in `cli`;
//! - `ntp-provision generate man`: ntp-provision(8), from the clap definition
//!   (clap_mangen) plus the exit codes and files of docs/cli.md;
//! - `ntp-provision generate plan-man`: ntp-provision-plan(5), from
//!   docs/plan-format.md.
//!
//! `generate` is hidden: it is for packaging (scripts/package), not for
//! operators, who get the pages from the package.

use crate::cli::{Cli, CompletionsArgs, GenerateArgs, Page};
use clap::CommandFactory;
use clap_mangen::roff::{bold, italic, roman, Inline, Roff};
use std::io::Write;

/// The sources of the pages' prose, embedded at build time.
const CLI_MD: &str = include_str!("../docs/cli.md");
const PLAN_FORMAT_MD: &str = include_str!("../docs/plan-format.md");

/// Where the Debian package puts things; the pages name them.
pub const PACKAGED_PLAN: &str = "/etc/ntp-provision/plan.yaml";
const DOC_DIR: &str = "/usr/share/doc/ntp-provision";

/// The name completions and pages use: what the package installs.
const BIN: &str = "ntp-provision";

pub fn completions(args: &CompletionsArgs) -> i32 {
    let mut out = Vec::new();
    write_completions(args.shell, &mut out);
    emit(&out)
}

pub fn run(args: &GenerateArgs) -> i32 {
    let text = match args.page {
        Page::Man => man_page(),
        Page::PlanMan => plan_man_page(),
    };
    emit(text.as_bytes())
}

fn emit(bytes: &[u8]) -> i32 {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ntp-provision: cannot write to stdout: {e}");
            1
        }
    }
}

/// The script offers the commands of `--help`: clap_complete would also
/// offer the hidden `generate`, so it gets the command without it.
pub fn write_completions(shell: clap_complete::Shell, out: &mut Vec<u8>) {
    let full = Cli::command();
    let mut cmd = clap::Command::new(BIN)
        .version(env!("CARGO_PKG_VERSION"))
        .about(full.get_about().cloned().unwrap_or_default())
        .subcommand_required(true)
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    clap_complete::generate(shell, &mut cmd, BIN, out);
}

/// ntp-provision(8): NAME, SYNOPSIS, DESCRIPTION and OPTIONS from clap, one
/// subsection per command with its own synopsis and options, then EXIT
/// STATUS and FILES from docs/cli.md, and the pointers to the rest.
pub fn man_page() -> String {
    let mut cmd = Cli::command().bin_name(BIN);
    cmd.build();
    let version = cmd.get_version().unwrap_or_default().to_string();
    let man = |c: &clap::Command| {
        clap_mangen::Man::new(c.clone())
            .section("8")
            .source(format!("ntp-provision {version}"))
            .manual("System Administration")
    };
    let top = man(&cmd).title("NTP-PROVISION");
    let mut out = String::from(TBL_MARKER);
    out += &render(|w| top.render_title(w), false);
    out += &render(|w| top.render_name_section(w), true);
    out += &render(|w| top.render_synopsis_section(w), true);
    out += &render(|w| top.render_description_section(w), true);
    out += &render(|w| top.render_options_section(w), true);

    out += ".SH COMMANDS\n";
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let page = man(sub);
        out += &format!(".SS {}\n", sub.get_name());
        out += &section_body(&render(|w| page.render_synopsis_section(w), true));
        out += ".PP\n";
        out += &section_body(&render(|w| page.render_description_section(w), true));
        out += &section_body(&render(|w| page.render_options_section(w), true));
    }

    let mut roff = Roff::new();
    roff.control("SH", ["EXAMPLES"]);
    roff.control("nf", []);
    for line in EXAMPLES.lines() {
        roff.text([roman(line)]);
    }
    roff.control("fi", []);
    out += &strip_preamble(&roff.render());

    let md = |heading: &str| {
        markdown_section(CLI_MD, heading)
            .unwrap_or_else(|| panic!("docs/cli.md has no section {heading:?}"))
    };
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    markdown_body(&mut roff, &md("Exit codes"));
    roff.control("SH", ["FILES"]);
    roff.control("TP", []);
    roff.text([bold(PACKAGED_PLAN)]);
    roff.text([roman(
        "The plan the Debian package installs (a conffile: edit it) and the one ntp-provision.service applies; \
         ntp-provision.timer (shipped disabled) starts the service every 30 minutes once enabled. \
         Without a PLAN argument the commands use the plan built into the binary, the same as the packaged file.",
    )]);
    roff.control("PP", []);
    markdown_body(&mut roff, &md("Files it uses"));
    roff.control("SH", ["ANSIBLE"]);
    roff.text([roman(
        "Run with one argument that names a file holding a JSON object, the binary is an Ansible binary module; \
         the Ansible collection ntp_provision.ntp ships it as ntp_provision.ntp.ntp_provision, with the role ntp_provision.ntp.ntp. \
         See ",
    ), bold("ansible-doc ntp_provision.ntp.ntp_provision"), roman(".")]);
    roff.control("SH", ["SEE ALSO"]);
    roff.text([
        bold("ntp-provision-plan"),
        roman("(5), "),
        bold("ntpd"),
        roman("(8), "),
        bold("chronyd"),
        roman("(8), "),
        bold("systemd.timer"),
        roman("(5)"),
    ]);
    roff.control("PP", []);
    roff.text([
        roman(
            "The full documentation (commands, JSON, daemons, failures, security, fleets) is in ",
        ),
        italic(DOC_DIR),
        roman("."),
    ]);
    out += &strip_preamble(&rendered(&roff));
    out
}

const EXAMPLES: &str = "\
ntp-provision plan                    # what apply would change here; changes nothing
sudo ntp-provision apply              # converge this node to the embedded default plan
sudo ntp-provision apply /etc/ntp-provision/plan.yaml -e daemon=chrony
sudo ntp-provision plan --detailed-exitcodes; echo $?    # 0: converged, 2: changes pending
ssh root@node ntp-provision apply --format json - < plan.yaml
ntp-provision status
ntp-provision verify
sudo systemctl enable --now ntp-provision.timer         # keep this node converged";

/// ntp-provision-plan(5): docs/plan-format.md as a man page.
pub fn plan_man_page() -> String {
    let (intro, rest) = split_intro(PLAN_FORMAT_MD);
    let mut roff = Roff::new();
    roff.control(
        "TH",
        [
            "NTP-PROVISION-PLAN",
            "5",
            "",
            &format!("ntp-provision {}", env!("CARGO_PKG_VERSION")),
            "File Formats",
        ],
    );
    roff.control("SH", ["NAME"]);
    roff.text([roman(
        "ntp-provision-plan - the plan of ntp-provision: variables, steps and handlers",
    )]);
    roff.control("SH", ["SYNOPSIS"]);
    roff.text([italic(PACKAGED_PLAN)]);
    roff.control("SH", ["DESCRIPTION"]);
    markdown_body(&mut roff, intro);
    roff.text([
        roman("The Debian package installs the default plan as "),
        italic(PACKAGED_PLAN),
        roman(", the plan ntp-provision.service applies."),
    ]);
    markdown_body(&mut roff, rest);
    roff.control("SH", ["SEE ALSO"]);
    roff.text([
        bold("ntp-provision"),
        roman("(8); the daemons, platforms and security notes in "),
        italic(DOC_DIR),
        roman("."),
    ]);
    format!("{TBL_MARKER}{}", rendered(&roff))
}

/// Marks where a long word in a table cell may break (`\\:` once
/// rendered: roff's escaping would double a backslash given as text).
const BREAK: char = '\u{E000}';

fn rendered(roff: &Roff) -> String {
    roff.render().replace(BREAK, "\\:")
}

/// Break points after `/`, `.` and `_` inside words of a table cell, so a
/// path or a unit name wraps in a narrow column instead of overflowing it.
fn breakable(cell: &str) -> String {
    let mut out = String::with_capacity(cell.len() + 8);
    let mut chars = cell.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        let before_word = chars.peek().is_some_and(|n| n.is_alphabetic());
        if matches!(c, '/' | '.' | '_') && before_word {
            out.push(BREAK);
        }
    }
    out
}

/// Tells man(1) to run the page through tbl(1): the pages have tables.
const TBL_MARKER: &str = "'\\\" t\n";
const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

fn render(f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>, strip: bool) -> String {
    let mut buf = Vec::new();
    f(&mut buf).expect("rendering into memory");
    let text = String::from_utf8(buf).expect("clap_mangen writes UTF-8");
    if strip {
        strip_preamble(&text)
    } else {
        text
    }
}

/// roff's apostrophe preamble: once per page, at its top.
fn strip_preamble(text: &str) -> String {
    text.strip_prefix(PREAMBLE).unwrap_or(text).to_string()
}

/// A rendered section without its `.SH` line.
fn section_body(text: &str) -> String {
    text.lines()
        .skip_while(|l| l.starts_with(".SH"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The text under `## heading` up to the next `## `.
fn markdown_section(md: &str, heading: &str) -> Option<String> {
    let mut lines = md.lines().skip_while(|l| *l != format!("## {heading}"));
    lines.next()?;
    Some(
        lines
            .take_while(|l| !l.starts_with("## "))
            .map(|l| format!("{l}\n"))
            .collect(),
    )
}

/// (the text before the first `## ` without the `# ` title, the rest).
fn split_intro(md: &str) -> (&str, &str) {
    let start = md.find("\n\n").map_or(0, |i| i + 2);
    let body = &md[start..];
    match body.find("\n## ") {
        Some(i) => (&body[..i + 1], &body[i + 1..]),
        None => (body, ""),
    }
}

/// The Markdown the docs use, as man macros: `## ` and `### ` headings,
/// paragraphs, `- ` lists (continued by indented lines), fenced code, pipe
/// tables (through tbl), and inline code, bold and links. A link keeps its
/// text: the pages point at the documentation directory instead.
fn markdown_body(roff: &mut Roff, md: &str) {
    let lines: Vec<&str> = md.lines().collect();
    let mut i = 0;
    let mut first_block = true;
    while i < lines.len() {
        let line = lines[i];
        if line.trim().is_empty() {
            i += 1;
            continue;
        }
        if let Some(h) = line.strip_prefix("## ") {
            roff.control("SH", [h.to_uppercase().as_str()]);
            first_block = true;
            i += 1;
            continue;
        }
        if let Some(h) = line.strip_prefix("### ") {
            roff.control("SS", [h]);
            first_block = true;
            i += 1;
            continue;
        }
        if !first_block {
            roff.control("PP", []);
        }
        first_block = false;
        if line.starts_with("```") {
            i += 1;
            roff.control("RS", ["4"]);
            roff.control("nf", []);
            while i < lines.len() && !lines[i].starts_with("```") {
                roff.text([roman(lines[i])]);
                i += 1;
            }
            roff.control("fi", []);
            roff.control("RE", []);
            i += 1;
        } else if line.starts_with('|') {
            let mut rows = Vec::new();
            while i < lines.len() && lines[i].starts_with('|') {
                rows.push(lines[i]);
                i += 1;
            }
            table(roff, &rows);
        } else if line.starts_with("- ") {
            while i < lines.len() && lines[i].starts_with("- ") {
                let mut item = lines[i][2..].to_string();
                i += 1;
                while i < lines.len() && lines[i].starts_with("  ") && !lines[i].trim().is_empty() {
                    item.push(' ');
                    item.push_str(lines[i].trim());
                    i += 1;
                }
                roff.control("IP", ["\\(bu", "2"]);
                roff.text(inline(&item));
            }
        } else {
            let mut para = Vec::new();
            while i < lines.len()
                && !lines[i].trim().is_empty()
                && !lines[i].starts_with("```")
                && !lines[i].starts_with('|')
                && !lines[i].starts_with('#')
                && !lines[i].starts_with("- ")
            {
                para.push(lines[i].trim());
                i += 1;
            }
            roff.text(inline(&para.join(" ")));
        }
    }
}

/// A pipe table: the header row bold, every cell a text block so it wraps.
fn table(roff: &mut Roff, rows: &[&str]) {
    let cells = |row: &str| -> Vec<String> {
        let inner = row.trim().trim_start_matches('|').trim_end_matches('|');
        split_cells(inner)
    };
    let header = cells(rows[0]);
    let n = header.len();
    let body: Vec<Vec<String>> = rows[1..]
        .iter()
        .filter(|r| {
            !r.trim_matches(|c| c == '|' || c == '-' || c == ':' || c == ' ')
                .is_empty()
        })
        .map(|r| cells(r))
        .collect();
    // Narrow columns: left-adjusted, so roff does not stretch their lines.
    roff.control("ad", ["l"]);
    roff.control("TS", []);
    roff.text([roman("allbox;")]);
    let widths = column_widths(&header, &body);
    let format = |kind: &str| {
        let cols: Vec<String> = widths.iter().map(|w| format!("{kind}w({w}n)")).collect();
        cols.join(" ")
    };
    roff.text([roman(format("lb"))]);
    roff.text([roman(format!("{}.", format("l")))]);
    for row in std::iter::once(&header).chain(&body) {
        roff.text([roman("T{")]);
        for c in 0..n {
            let cell = row.get(c).map_or("", |s| s.as_str());
            if !cell.is_empty() {
                roff.text(inline(&breakable(cell)));
            }
            // One line closes a cell and opens the next, tab-separated.
            roff.text([roman(if c + 1 < n { "T}\tT{" } else { "T}" })]);
        }
    }
    roff.control("TE", []);
    roff.control("ad", []);
    // tbl leaves no space after the table: the next paragraph needs one.
    roff.control("sp", []);
}

/// Room for a table on an 80-column terminal: the page's 7-column indent,
/// and the rules and padding of `allbox` (3 per column, 1 at the end).
const TABLE_WIDTH: usize = 80 - 7 - 1;

/// Each column as wide as its longest cell wants, within [`TABLE_WIDTH`]:
/// when they do not fit, the columns share the room by what they want,
/// never narrower than their longest word (paths break at their slashes).
fn column_widths(header: &[String], body: &[Vec<String>]) -> Vec<usize> {
    let n = header.len();
    let visible = |s: &str| s.replace('`', "").chars().count();
    let word = |s: &str| {
        breakable(&s.replace('`', ""))
            .split(|c: char| c.is_whitespace() || c == BREAK)
            .map(|w| w.chars().count())
            .max()
            .unwrap_or(0)
    };
    let rows = || std::iter::once(header).chain(body.iter().map(|r| r.as_slice()));
    let col = |c: usize| rows().filter_map(move |r| r.get(c).map(|s| s.as_str()));
    let want: Vec<usize> = (0..n)
        .map(|c| col(c).map(visible).max().unwrap_or(1).max(1))
        .collect();
    let least: Vec<usize> = (0..n)
        .map(|c| col(c).map(word).max().unwrap_or(1).max(1))
        .collect();
    let room = TABLE_WIDTH.saturating_sub(3 * n);
    if want.iter().sum::<usize>() <= room {
        return want;
    }
    // Every column gets its longest word; what is left goes to the columns
    // by how much more they want.
    let spare = room.saturating_sub(least.iter().sum());
    let more: usize = (0..n).map(|c| want[c] - least[c]).sum();
    (0..n)
        .map(|c| least[c] + (want[c] - least[c]) * spare / more.max(1))
        .collect()
}

/// Cells of a table row: `|` inside backticks does not split.
fn split_cells(inner: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cur = String::new();
    let mut in_code = false;
    for ch in inner.chars() {
        match ch {
            '`' => {
                in_code = !in_code;
                cur.push(ch);
            }
            '|' if !in_code => cells.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(ch),
        }
    }
    cells.push(cur.trim().to_string());
    cells
}

/// Inline Markdown: `code` and **bold** in bold, [text](target) as its text.
fn inline(text: &str) -> Vec<Inline> {
    let mut out = Vec::new();
    let mut plain = String::new();
    let mut rest = text;
    let flush = |plain: &mut String, out: &mut Vec<Inline>| {
        if !plain.is_empty() {
            out.push(roman(std::mem::take(plain)));
        }
    };
    while let Some(ch) = rest.chars().next() {
        if ch == '`' {
            if let Some(end) = rest[1..].find('`') {
                flush(&mut plain, &mut out);
                out.push(bold(&rest[1..1 + end]));
                rest = &rest[end + 2..];
                continue;
            }
        }
        if let Some(after) = rest.strip_prefix("**") {
            if let Some(end) = after.find("**") {
                flush(&mut plain, &mut out);
                out.push(bold(&after[..end]));
                rest = &after[end + 2..];
                continue;
            }
        }
        if ch == '[' {
            if let Some((label, after)) = link(rest) {
                flush(&mut plain, &mut out);
                out.extend(inline(label));
                rest = after;
                continue;
            }
        }
        plain.push(ch);
        rest = &rest[ch.len_utf8()..];
    }
    flush(&mut plain, &mut out);
    out
}

/// `[label](target)` at the start of `text`: (label, the text after it).
fn link(text: &str) -> Option<(&str, &str)> {
    let close = text.find("](")?;
    let label = &text[1..close];
    if label.contains('[') || label.contains(']') {
        return None;
    }
    let after = &text[close + 2..];
    let end = after.find(')')?;
    Some((label, &after[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap_complete::Shell;

    fn completion(shell: Shell) -> String {
        let mut out = Vec::new();
        write_completions(shell, &mut out);
        String::from_utf8(out).unwrap()
    }

    /// The commands an operator runs; `generate` is for packaging.
    const COMMANDS: [&str; 5] = ["apply", "plan", "status", "verify", "completions"];

    #[test]
    fn completions_know_every_command_and_option() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let text = completion(shell);
            for word in
                COMMANDS
                    .iter()
                    .chain(&["detailed-exitcodes", "lock-timeout", "format", "from"])
            {
                assert!(text.contains(word), "{shell}: no {word}");
            }
            assert!(
                !text.contains("generate"),
                "{shell}: offers the hidden generate"
            );
        }
        assert!(completion(Shell::Zsh).starts_with("#compdef ntp-provision"));
        assert!(completion(Shell::Bash).contains("complete -F _ntp__provision"));
        let fish = completion(Shell::Fish);
        assert!(fish.contains("complete -c ntp-provision"));
        // Values are offered: the formats (fish), the shells (bash).
        assert!(fish.contains("human") && fish.contains("json"));
        assert!(completion(Shell::Bash).contains("bash elvish fish powershell zsh"));
    }

    /// Every control line is a request the pages mean to use: a stray line
    /// starting with `.` or `'` would be swallowed by roff.
    fn assert_well_formed(page: &str) {
        const REQUESTS: [&str; 18] = [
            "TH", "SH", "SS", "PP", "TP", "IP", "RS", "RE", "nf", "fi", "TS", "TE", "br", "ie",
            "el", "B", "sp", "ad",
        ];
        for line in page.lines().skip(1) {
            if let Some(req) = line.strip_prefix('.') {
                let name = req.split_whitespace().next().unwrap_or("");
                assert!(REQUESTS.contains(&name), "unexpected request: {line}");
            }
            assert!(
                !line.starts_with('\''),
                "a control line by apostrophe: {line}"
            );
            // Code spans may hold asterisks (a masked secret, `********`).
            let prose: String = line
                .split("\\fB")
                .map(|part| part.split_once("\\fR").map_or(part, |(_, after)| after))
                .collect();
            for raw in ["```", "](", "|---"] {
                assert!(!line.contains(raw), "Markdown left in the page: {line}");
            }
            assert!(!prose.contains("**"), "Markdown left in the page: {line}");
        }
        assert!(page.starts_with(TBL_MARKER), "tbl marker first");
        assert_eq!(page.matches(PREAMBLE).count(), 1, "one apostrophe preamble");
        assert_eq!(
            page.lines().filter(|l| *l == ".TS").count(),
            page.lines().filter(|l| *l == ".TE").count()
        );
        assert_eq!(
            page.lines().filter(|l| *l == ".nf").count(),
            page.lines().filter(|l| *l == ".fi").count()
        );
        // Each table: every row has as many text blocks as the header has columns.
        let mut lines = page.lines();
        while lines.by_ref().any(|l| l == ".TS") {
            let _options = lines.next();
            let cols = lines.next().unwrap().split_whitespace().count();
            let _format = lines.next();
            let table: Vec<&str> = lines.by_ref().take_while(|l| *l != ".TE").collect();
            let opened = table.iter().map(|l| l.matches("T{").count()).sum::<usize>();
            let closed = table.iter().map(|l| l.matches("T}").count()).sum::<usize>();
            assert_eq!(opened, closed, "text blocks balanced");
            assert_eq!(opened % cols, 0, "whole rows of {cols}: {table:?}");
        }
    }

    #[test]
    fn man_page_has_every_command_option_and_the_exit_codes() {
        let page = man_page();
        assert_well_formed(&page);
        assert!(page.contains(".TH NTP-PROVISION 8"), "{page}");
        for section in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "COMMANDS",
            "EXAMPLES",
            "\"EXIT STATUS\"",
            "FILES",
            "\"SEE ALSO\"",
        ] {
            assert!(page.contains(&format!("\n.SH {section}\n")), "no {section}");
        }
        for cmd in COMMANDS {
            assert!(page.contains(&format!("\n.SS {cmd}\n")), "no command {cmd}");
        }
        assert!(!page.contains(".SS generate"), "generate is hidden");
        for option in [
            "\\-\\-detailed\\-exitcodes",
            "\\-\\-lock\\-timeout",
            "\\-\\-var",
            "\\-\\-format",
            "\\-\\-from",
            "\\-\\-verbose",
        ] {
            assert!(page.contains(option), "no {option}");
        }
        // From docs/cli.md: the exit codes and the files.
        for text in [
            "invalid plan",
            "the run lock (flock, mode 0600)",
            "130",
            "\\fB/etc/ntp\\-provision/plan.yaml\\fR",
        ] {
            assert!(page.contains(text), "no {text}");
        }
        assert!(
            page.contains("ntp\\-provision\\-plan"),
            "SEE ALSO the plan page"
        );
    }

    #[test]
    fn plan_page_has_every_section_and_variable_of_the_plan_format() {
        let page = plan_man_page();
        assert_well_formed(&page);
        assert!(page.contains(".TH NTP-PROVISION-PLAN 5"), "{page}");
        for heading in PLAN_FORMAT_MD.lines().filter_map(|l| l.strip_prefix("## ")) {
            let sh = heading.to_uppercase();
            let want = if sh.contains(' ') {
                format!("\n.SH \"{sh}\"\n")
            } else {
                format!("\n.SH {sh}\n")
            };
            assert!(page.contains(&want), "no section {want:?}");
        }
        for var in [
            "daemon",
            "servers",
            "pools",
            "iburst",
            "clients",
            "listen",
            "driftfile",
        ] {
            assert!(
                page.contains(&format!("\\fB{var}\\fR")),
                "no variable {var}"
            );
        }
        for key in [
            "residual_purged",
            "cache_valid_time",
            "allow_insecure",
            "handlers",
        ] {
            assert!(page.contains(&key.replace('-', "\\-")), "no {key}");
        }
        assert!(page.contains(PACKAGED_PLAN.replace('-', "\\-").as_str()));
    }

    #[test]
    fn markdown_blocks_become_macros() {
        let mut roff = Roff::new();
        markdown_body(
            &mut roff,
            "Intro with `a-b` and [a link](x.md).\n\n## Next part\n\n- one\n  more\n- two\n\n```\n.dot line\n```\n\n| a | b |\n|---|---|\n| `x|y` | z |\n",
        );
        let text = strip_preamble(&rendered(&roff));
        assert_eq!(
            text,
            "Intro with \\fBa\\-b\\fR and a link.\n\
             .SH \"NEXT PART\"\n\
             .IP \\(bu 2\n\
             one more\n\
             .IP \\(bu 2\n\
             two\n\
             .PP\n\
             .RS 4\n\
             .nf\n\
             \\&.dot line\n\
             .fi\n\
             .RE\n\
             .PP\n\
             .ad l\n\
             .TS\n\
             allbox;\n\
             lbw(3n) lbw(1n)\n\
             lw(3n) lw(1n).\n\
             T{\n\
             a\n\
             T}\tT{\n\
             b\n\
             T}\n\
             T{\n\
             \\fBx|y\\fR\n\
             T}\tT{\n\
             z\n\
             T}\n\
             .TE\n\
             .ad\n\
             .sp\n"
        );
    }
}
