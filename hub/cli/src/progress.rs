//! `--wait`: a live progress bar fed by the hub's progress events (hidden when stderr is not a
//! terminal). A backup does not know its total until it has listed everything, so it shows a
//! running count; a restore knows its total and shows a bar.

use anyhow::Result;
use cairn_proto::model::OperationId;
use indicatif::{ProgressBar, ProgressStyle};

use crate::client::Client;

const COUNTING: &str = "{spinner} {prefix} [{elapsed_precise}] {pos} items, {msg}";
const BAR: &str = "{spinner} {prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} items, {msg}";

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// What an operation is at beyond its items, as the bar and `describe` show it: files and bytes
/// moved so far, then what it is doing — `"12 files, 3.10 MiB · volumes: 0 of 1 claims done"`.
pub fn activity(p: &cairn_proto::model::Progress) -> String {
    let mut moved = Vec::new();
    if p.files_done > 0 {
        moved.push(format!("{} files", p.files_done));
    }
    if p.bytes_done > 0 {
        moved.push(indicatif::HumanBytes(p.bytes_done).to_string());
    }
    [moved.join(", "), p.current.clone()]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" · ")
}

/// Shows `operation`'s progress until it ends.
pub async fn follow(client: &mut Client, operation: &OperationId) -> Result<()> {
    let bar = ProgressBar::new_spinner()
        .with_style(style(COUNTING))
        .with_prefix(operation.to_string());
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
            bar.set_message(activity(p));
        })
        .await?;
    bar.finish_and_clear();
    Ok(())
}
