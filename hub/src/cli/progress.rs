//! `--wait`: a live progress bar fed by the hub's progress events (hidden when stderr is not a
//! terminal). A backup does not know its total until it has listed everything, so it shows a
//! running count; a restore knows its total and shows a bar.

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

use crate::api::client::Client;

const COUNTING: &str = "{spinner} {prefix} [{elapsed_precise}] {pos} items, {msg}";
const BAR: &str = "{spinner} {prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} items, {msg}";

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// Files and bytes moved so far, as the bar and `describe` show them: `"12 files, 3.1 MiB "`.
pub fn moved(p: &cairn_proto::model::Progress) -> String {
    let files = if p.files_done > 0 {
        format!("{} files, ", p.files_done)
    } else {
        String::new()
    };
    if p.bytes_done > 0 {
        format!("{files}{} ", indicatif::HumanBytes(p.bytes_done))
    } else {
        files
    }
}

/// Shows `operation`'s progress (`backup/<name>` or `restore/<name>`) until it ends.
pub async fn follow(client: &mut Client, operation: &str) -> Result<()> {
    let bar = ProgressBar::new_spinner()
        .with_style(style(COUNTING))
        .with_prefix(operation.to_owned());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let mut counting = true;
    client
        .watch(operation, |update| {
            let p = &update.progress;
            if p.items_total > 0 {
                if counting {
                    bar.set_style(style(BAR));
                    counting = false;
                }
                bar.set_length(p.items_total);
            }
            bar.set_position(p.items_done);
            bar.set_message(format!("{}{}", moved(p), p.current));
        })
        .await?;
    bar.finish_and_clear();
    Ok(())
}
