//! `cairn`: the command-line client; see [`cairn_cli`].

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = cairn_cli::Cli::parse();
    if let Err(e) = cairn_cli::run(cli).await {
        eprintln!(
            "error: {}",
            e.chain().map(ToString::to_string).collect::<Vec<_>>().join(": ")
        );
        std::process::exit(1);
    }
}
