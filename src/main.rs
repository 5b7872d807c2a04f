use clap::Parser;

fn main() {
    // Ansible runs a binary module with one argument: its JSON args file.
    if let Some(args) = ntp_provision::ansible::detect(&std::env::args_os().collect::<Vec<_>>()) {
        std::process::exit(ntp_provision::ansible::run(args));
    }
    let cli = match ntp_provision::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => ntp_provision::app::usage_error(e),
    };
    std::process::exit(ntp_provision::app::run(cli));
}
