use clap::Parser;

fn main() {
    let cli = lakelet::cli::Cli::parse();
    // The daemon logs what it does; commands only warn.
    let default = if cli.is_daemon() { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LAKELET_LOG")
                .unwrap_or_else(|_| default.into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let json = cli.json();
    if let Err(e) = lakelet::cli::run(cli) {
        if json {
            eprintln!("{}", lakelet::cli::error_json(&e));
        } else {
            eprintln!("error: {e:#}");
        }
        std::process::exit(1);
    }
}
