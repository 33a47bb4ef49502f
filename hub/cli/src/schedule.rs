//! `cairn schedule …`: backups on a cron timetable, of a cluster or of a whole workspace.

use anyhow::{Result, bail};
use cairn_proto::model::{ScheduleName, ScheduleSpec, ScheduleTarget};
use clap::{Args, Subcommand};

use super::output::{self, Format, outln};
use super::{Target, TemplateArgs};
use crate::client::Client;

#[derive(Subcommand)]
pub(super) enum ScheduleVerb {
    /// Create a schedule.
    Create(Box<ScheduleCreate>),
    /// Schedules with their last and next runs.
    List,
    /// Show one schedule, with its runs and catch-up runs.
    Describe {
        /// The schedule.
        name: ScheduleName,
    },
    /// Stop making backups until resumed.
    Pause {
        /// The schedule.
        name: ScheduleName,
    },
    /// Make backups again from the next slot (slots passed while paused are not caught up).
    Resume {
        /// The schedule.
        name: ScheduleName,
    },
    /// Delete a schedule; its backups stay.
    Delete {
        /// The schedule.
        name: ScheduleName,
    },
    /// Run the schedule once now; its timetable is unchanged.
    RunNow {
        /// The schedule.
        name: ScheduleName,
    },
}

#[derive(Args)]
pub(super) struct ScheduleCreate {
    /// The schedule's name; its backups are named `<name>-<YYYYMMDDhhmmss>`.
    name: ScheduleName,
    #[command(flatten)]
    target: Target,
    /// When: five fields (`0 2 * * *`), or @hourly, @daily, @weekly, @monthly.
    #[arg(long)]
    cron: String,
    /// IANA time zone the expression is read in (default UTC).
    #[arg(long)]
    timezone: Option<String>,
    #[command(flatten)]
    template: TemplateArgs,
    /// Keep only this many of its newest backups per cluster.
    #[arg(long)]
    keep_last: Option<u32>,
    /// Workspace schedules: spread the clusters' starts over this window (`10m`).
    #[arg(long, default_value = "0s")]
    jitter: humantime::Duration,
}

pub(super) async fn run(client: &mut Client, out: Format, verb: ScheduleVerb) -> Result<()> {
    match verb {
        ScheduleVerb::Create(args) => {
            let args = *args;
            let target = match (args.target.cluster, args.target.workspace) {
                (Some(c), _) => ScheduleTarget::Cluster(c),
                (None, Some(w)) => ScheduleTarget::Workspace(w),
                (None, None) => bail!("--cluster or --workspace is required"),
            };
            let spec = ScheduleSpec {
                timezone: args.timezone,
                template: args.template.template(),
                keep_last: args.keep_last,
                jitter: args.jitter.into(),
                ..ScheduleSpec::new(args.name, target, args.cron)
            };
            let s = client.create_schedule(&spec).await?;
            let next = s.status.next_fire.map_or_else(|| "-".into(), |t| t.to_string());
            outln!("schedule {} created; next run {next}", s.spec.name);
            Ok(())
        }
        ScheduleVerb::List => output::schedules(out, &client.schedules().await?),
        ScheduleVerb::Describe { name } => output::schedule(out, &client.schedule(&name).await?),
        ScheduleVerb::Pause { name } => {
            client.set_paused(&name, true).await?;
            outln!("schedule {name} paused");
            Ok(())
        }
        ScheduleVerb::Resume { name } => {
            let s = client.set_paused(&name, false).await?;
            let next = s.status.next_fire.map_or_else(|| "-".into(), |t| t.to_string());
            outln!("schedule {name} resumed; next run {next}");
            Ok(())
        }
        ScheduleVerb::Delete { name } => {
            client.delete_schedule(&name).await?;
            outln!("schedule {name} deleted");
            Ok(())
        }
        ScheduleVerb::RunNow { name } => {
            let s = client.run_schedule(&name).await?;
            match s.status.last_error {
                Some(e) => bail!("schedule {name} could not start its backup: {e}"),
                None => {
                    outln!("schedule {name} started a run");
                    Ok(())
                }
            }
        }
    }
}
