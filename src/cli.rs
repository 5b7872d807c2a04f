//! Command-line interface (clap derive). Parsing only: `app` runs it.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// `--version`: the release, the commit it was built from and the build date.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("NTPP_BUILD_INFO"),
    ")"
);

const EXAMPLES: &str = "\
Examples:
  ntp-provision plan                          preview the embedded default plan on this node
  ntp-provision apply                         converge this node to the default plan
  ntp-provision apply site.yaml -e 'servers=[ntp1.example.net, ntp2.example.net]'
  ssh node ntp-provision apply --format json - < plan.yaml
  ntp-provision plan --detailed-exitcodes     exit 0: converged, 2: changes pending";

#[derive(Debug, Parser)]
#[command(
    name = "ntp-provision",
    version = VERSION,
    about = "Put an NTP daemon on Debian and Ubuntu nodes and keep it correctly set up",
    long_about = "Reads a declarative plan (YAML), gathers facts from this node read-only, diffs \
                  them, and with `apply` executes only the differences: packages through apt, \
                  config through Jinja templates written atomically, the service through systemd \
                  (or SysV `service` where systemd is not running).",
    after_help = EXAMPLES
)]
pub struct Cli {
    /// More diagnostics on stderr: -v lists every command run with its duration, -vv adds output
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Colour in human output: auto (a terminal, NO_COLOR unset, TERM not dumb), always or never
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorWhen::Auto, global = true)]
    pub color: ColorWhen,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Converge this node to PLAN and report what changed
    #[command(after_help = EXAMPLES)]
    Apply(RunArgs),
    /// Dry run: show what `apply` would change, changing nothing
    #[command(after_help = EXAMPLES)]
    Plan(RunArgs),
    /// Show the time daemon in use, its unit, config, peers and sync state
    Status(StatusArgs),
    /// Probe an NTP daemon for DRDoS amplification: mode 6/7 queries from an untrusted source must get no answer
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify(VerifyArgs),
    /// Print the shell completion script for SHELL on stdout
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions(CompletionsArgs),
    /// Print a man page on stdout (for packaging: the .deb ships them)
    #[command(hide = true)]
    Generate(GenerateArgs),
}

const COMPLETIONS_EXAMPLES: &str = "\
Examples (the Debian package installs them already):
  ntp-provision completions bash > /etc/bash_completion.d/ntp-provision
  ntp-provision completions zsh > /usr/local/share/zsh/site-functions/_ntp-provision
  ntp-provision completions fish > ~/.config/fish/completions/ntp-provision.fish";

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell the script is for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// man: ntp-provision(8); plan-man: ntp-provision-plan(5), the plan format
    #[arg(value_enum)]
    pub page: Page,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Page {
    Man,
    PlanMan,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The plan the config is compared with (default: the embedded playbooks/ntp.yaml)
    pub plan: Option<PathBuf>,

    /// Override a plan variable, as for apply: KEY=VALUE, or @FILE for a YAML mapping of variables
    #[arg(short = 'e', long = "var", value_name = "KEY=VALUE|@FILE")]
    pub vars: Vec<String>,

    /// Output format on stdout
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

const VERIFY_EXAMPLES: &str = "\
Examples:
  ntp-provision verify                        probe this node's daemon (127.0.0.1:123) from 127.0.0.2
  ntp-provision verify 192.0.2.10 --from 192.0.2.5 --format json
  ntp-provision verify '[2001:db8::10]:123' --from 2001:db8::5

Exit: 0 no mode 6/7 answer, 1 answered (an amplifier) or nothing could be measured, 64 bad usage.";

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The daemon: HOST[:PORT] with HOST an IP address literal (names are never resolved); default 127.0.0.1:123
    pub target: Option<String>,

    /// Source address of the probes, an address of this host; default 127.0.0.2, which `restrict 127.0.0.1` does not trust
    #[arg(long, value_name = "ADDR")]
    pub from: Option<String>,

    /// Output format on stdout
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    /// Exit 0 with no amplification, 4 when the daemon amplifies or cannot be measured
    #[arg(long)]
    pub detailed_exitcodes: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The plan: a YAML file, or - for standard input; default: the embedded playbooks/ntp.yaml
    pub plan: Option<PathBuf>,

    /// Override a plan variable; VALUE is YAML: -e daemon=ntp -e 'servers=[a.example, b.example]'. @FILE reads a YAML mapping of variables (-e @vars.yaml, as in Ansible); repeatable, a later one wins
    #[arg(short = 'e', long = "var", value_name = "KEY=VALUE|@FILE")]
    pub vars: Vec<String>,

    /// Output format on stdout
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    /// Exit 0 when nothing changes, 2 with changes (made or pending), 4 on failure, 6 both
    #[arg(long)]
    pub detailed_exitcodes: bool,

    /// Seconds to wait for the dpkg/apt lock held by another process
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub lock_timeout: u64,

    /// apply: then wait until the clock is synchronised (default 120 s); fail naming the state if not
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, require_equals = true, default_missing_value = "120")]
    pub wait_sync: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}
