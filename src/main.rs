use clap::Parser;

fn main() {
    let cli = match ntp_provision::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => ntp_provision::app::usage_error(e),
    };
    std::process::exit(ntp_provision::app::run(cli));
}
