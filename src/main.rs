use clap::Parser;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LAKELET_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = lakelet::cli::Cli::parse();
    if let Err(e) = lakelet::cli::run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
