//! `testbed`: start test-bed servers by hand for development.
//!
//! ```text
//! cargo run -p cairn-tests --bin testbed -- control-plane [NAME]   # prints KUBECONFIG, runs until Ctrl-C
//! cargo run -p cairn-tests --bin testbed -- reap                   # stop servers left by killed runs
//! ```

use anyhow::Result;
use testbed::ControlPlane;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("control-plane") => {
            let name = args.get(1).map_or("dev", String::as_str);
            let cp = ControlPlane::start(name).await?;
            println!(
                "ready cluster={name} server={} sandbox={}",
                cp.server(),
                cp.sandbox().dir().display()
            );
            println!("export KUBECONFIG={}", cp.kubeconfig().display());
            // Stop on Ctrl-C or SIGTERM; dropping `cp` stops the servers and removes their data.
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                r = tokio::signal::ctrl_c() => r?,
                _ = term.recv() => {}
            }
            drop(cp);
            Ok(())
        }
        Some("reap") => {
            for dir in testbed::reap_stale()? {
                println!("reaped {}", dir.display());
            }
            Ok(())
        }
        _ => {
            eprintln!("usage: testbed control-plane [NAME] | testbed reap");
            std::process::exit(2);
        }
    }
}
