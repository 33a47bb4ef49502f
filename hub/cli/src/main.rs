//! `cairn`: the command-line client; see [`cairn_cli`].

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = cairn_cli::Cli::parse();
    if let Err(e) = cairn_cli::run(cli).await {
        eprintln!("{}", cairn_cli::headline(&e));
        std::process::exit(1);
    }
}
