//! `--wait`: a live progress bar fed by the hub's progress events (hidden when stderr is not a
//! terminal).

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

use crate::api::client::Client;

/// Shows operation `name`'s progress until it ends.
pub async fn follow(client: &mut Client, name: &str) -> Result<()> {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} items {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(name.to_owned());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    client
        .watch(name, |update| {
            let p = &update.progress;
            if p.items_total > 0 {
                bar.set_length(p.items_total);
            }
            bar.set_position(p.items_done);
            bar.set_message(format!("{} {}", indicatif::HumanBytes(p.bytes_done), p.current));
        })
        .await?;
    bar.finish_and_clear();
    Ok(())
}
