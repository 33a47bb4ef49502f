//! How the CLI prints: kubectl-like tables, or the model as JSON or YAML (`-o`).

use anyhow::Result;
use cairn_proto::format::provider;
use cairn_proto::model::{
    AuditEntry, Backup, Cluster, IndexEntry, ItemResult, LocationInfo, Progress, Restore, Schedule,
    ScheduleSpec, ScheduleTarget, Store, Timestamp, UserToken, VolumeResult, Workspace, WorkspaceBackup,
};

use clap::ValueEnum;
use comfy_table::{Table, presets::NOTHING};
use serde::Serialize;
use std::fmt::Write as _;

/// Output format.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// The objects as JSON.
    Json,
    /// The objects as YAML.
    Yaml,
}

/// Writes to stdout; a closed pipe (`cairn … | head`) ends the program quietly, as kubectl does.
pub fn emit(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(1);
    }
}

macro_rules! out {
    ($($arg:tt)*) => { $crate::output::emit(format_args!($($arg)*)) };
}
macro_rules! outln {
    ($($arg:tt)*) => { $crate::output::emit(format_args!("{}\n", format_args!($($arg)*))) };
}
pub(crate) use outln;

/// Problems listed in a summary; `--details` lists every item.
const SUMMARY_PROBLEMS: usize = 20;

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(NOTHING)
        .set_header(header.iter().map(|h| h.to_string()));
    t
}

fn print_table(t: &Table) {
    // comfy-table pads the first column with a space; kubectl does not.
    for line in t.to_string().lines() {
        outln!("{}", line.strip_prefix(' ').unwrap_or(line).trim_end());
    }
}

fn structured<T: Serialize + ?Sized>(format: Format, value: &T) -> Result<bool> {
    match format {
        Format::Table => return Ok(false),
        Format::Json => outln!("{}", serde_json::to_string_pretty(value)?),
        Format::Yaml => out!("{}", serde_yaml_ng::to_string(value)?),
    }
    Ok(true)
}

/// `name.group`, or `name` for the core group: how kubectl names kinds and resources.
fn qualified(name: &str, group: &str) -> String {
    if group.is_empty() {
        name.to_owned()
    } else {
        format!("{name}.{group}")
    }
}

fn time(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "-".into(), |t| t.to_string())
}

fn duration(start: Option<Timestamp>, end: Option<Timestamp>) -> String {
    match (start, end) {
        (Some(s), Some(e)) => {
            humantime::format_duration(std::time::Duration::from_secs(s.until(e).as_secs())).to_string()
        }
        _ => "-".into(),
    }
}

/// `cluster list`.
pub fn clusters(format: Format, clusters: &[Cluster]) -> Result<()> {
    if structured(format, clusters)? {
        return Ok(());
    }
    let mut t = table(&[
        "NAME",
        "WORKSPACE",
        "STATUS",
        "LAST SUCCESS",
        "RPO",
        "KUBERNETES",
        "AGENT",
    ]);
    for c in clusters {
        let status = if c.revoked {
            "revoked".to_owned()
        } else if c.connected {
            "connected".to_owned()
        } else if c.last_heartbeat.is_some() {
            format!("offline since {}", time(c.last_heartbeat))
        } else {
            "never connected".to_owned()
        };
        t.add_row(vec![
            c.name.to_string(),
            c.workspace.as_ref().map_or("-".into(), ToString::to_string),
            status,
            time(c.last_success),
            if c.rpo_at_risk { "AT RISK" } else { "ok" }.into(),
            c.kubernetes_version.clone(),
            c.agent_version.clone(),
        ]);
    }
    print_table(&t);
    Ok(())
}

/// `token list`.
pub fn tokens(format: Format, tokens: &[UserToken]) -> Result<()> {
    if structured(format, tokens)? {
        return Ok(());
    }
    let mut t = table(&["NAME", "ROLE", "WORKSPACE", "CREATED", "EXPIRES"]);
    for token in tokens {
        t.add_row(vec![
            token.name.to_string(),
            token.role.to_string(),
            token.workspace.as_ref().map_or("*".into(), ToString::to_string),
            time(Some(token.created)),
            token.expires.map_or("never".into(), |e| time(Some(e))),
        ]);
    }
    print_table(&t);
    Ok(())
}

/// `audit list`.
pub fn audit(format: Format, entries: &[AuditEntry]) -> Result<()> {
    if structured(format, entries)? {
        return Ok(());
    }
    let mut t = table(&["TIME", "WHO", "ACTION", "TARGET", "OUTCOME"]);
    for e in entries {
        t.add_row(vec![
            time(Some(e.time)),
            e.who.clone(),
            e.action.clone(),
            e.target.clone(),
            e.outcome.clone(),
        ]);
    }
    print_table(&t);
    Ok(())
}

/// `backup list`.
pub fn backups(format: Format, backups: &[Backup]) -> Result<()> {
    if structured(format, backups)? {
        return Ok(());
    }
    let mut t = table(&[
        "NAME", "CLUSTER", "STATUS", "WHERE", "ITEMS", "SIZE", "STARTED", "DURATION",
    ]);
    for b in backups {
        let s = &b.status;
        let location = b.spec.location.as_ref().map_or("-", |l| l.as_str());
        t.add_row(vec![
            b.spec.name.to_string(),
            b.spec.cluster.to_string(),
            s.phase.to_string(),
            // A backup its agent ran on its own into the site's spool is not in its location yet.
            if s.spooled {
                format!("spooled at {} (for {location})", b.spec.cluster)
            } else {
                location.to_owned()
            },
            s.items.to_string(),
            indicatif::HumanBytes(s.bytes).to_string(),
            time(s.started),
            duration(s.started, s.finished),
        ]);
    }
    print_table(&t);
    Ok(())
}

/// A filter list, or `empty` (`*` for "all", `-` for "none") when it has no entries.
fn list(values: &[String], empty: &str) -> String {
    if values.is_empty() {
        empty.into()
    } else {
        values.join(",")
    }
}

/// A table of volume results (none: nothing printed).
fn volumes(volumes: &[VolumeResult], title: &str) {
    if volumes.is_empty() {
        return;
    }
    outln!("{title}");
    let mut t = table(&["CLAIM", "NODE", "SNAPSHOT", "FILES", "SIZE", "TIME", "RESULT"]);
    for v in volumes {
        t.add_row(vec![
            v.claim_ref(),
            v.node.clone(),
            v.snapshot.chars().take(12).collect(),
            v.files.to_string(),
            indicatif::HumanBytes(v.bytes).to_string(),
            duration(v.started, v.finished),
            v.error.clone().unwrap_or_else(|| "ok".into()),
        ]);
    }
    print_table(&t);
}

/// The first problems of `total`, and where to find the rest.
fn problems(out: &mut String, problems: &[ItemResult], total: u64) {
    if problems.is_empty() {
        return;
    }
    out.push_str("Problems:\n");
    if total > SUMMARY_PROBLEMS as u64 {
        let _ = writeln!(
            out,
            "  ({total} in all, the first {SUMMARY_PROBLEMS} here; `describe --details` lists every item)"
        );
    }
    for p in problems.iter().take(SUMMARY_PROBLEMS) {
        let _ = writeln!(out, "  {} ({}): {}", p.item, p.outcome, p.message);
    }
}

/// A backup or restore as `describe -o json|yaml` shows it: its items if asked for, its progress
/// while under way.
#[derive(Serialize)]
struct Described<'a, O, I> {
    #[serde(flatten)]
    operation: &'a O,
    #[serde(skip_serializing_if = "Option::is_none")]
    items: Option<&'a [I]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<&'a Progress>,
}

/// The `Progress:` line of an operation under way: items, then what moves now.
fn progress_line(out: &mut String, live: Option<&Progress>) {
    if let Some(p) = live {
        let activity = super::progress::activity(p);
        let _ = writeln!(
            out,
            "Progress:           {} items{}{activity}",
            p.items_done,
            if activity.is_empty() { "" } else { ", " }
        );
    }
}

/// `backup describe` (and the summary after `backup create --wait`).
pub fn backup(
    format: Format,
    b: &Backup,
    items: Option<&[IndexEntry]>,
    live: Option<&Progress>,
) -> Result<()> {
    let described = Described {
        operation: b,
        items,
        progress: live,
    };
    if structured(format, &described)? {
        return Ok(());
    }
    let (spec, s) = (&b.spec, &b.status);
    let mut out = String::new();
    let _ = writeln!(out, "Name:               {}", spec.name);
    let _ = writeln!(out, "Cluster:            {}", spec.cluster);
    let _ = writeln!(
        out,
        "Location:           {}",
        spec.location.as_ref().map_or("default", |l| l.as_str())
    );
    let _ = writeln!(out, "Phase:              {}", s.phase);
    if let Some(error) = &s.error {
        let _ = writeln!(out, "Error:              {error}");
    }
    let _ = writeln!(
        out,
        "Namespaces:         {} (excluded: {})",
        list(&spec.namespaces.include, "*"),
        list(&spec.namespaces.exclude, "-")
    );
    let _ = writeln!(
        out,
        "Resources:          {} (excluded: {})",
        list(&spec.include_resources, "*"),
        list(&spec.exclude_resources, "-")
    );
    let _ = writeln!(
        out,
        "Label selector:     {}",
        spec.selector.as_ref().map_or("-".into(), ToString::to_string)
    );
    let _ = writeln!(out, "Cluster resources:  {:?}", spec.cluster_resources);
    let _ = writeln!(
        out,
        "TTL:                {}",
        spec.ttl
            .map_or("-".into(), |d| humantime::format_duration(d).to_string())
    );
    let _ = writeln!(out, "Started:            {}", time(s.started));
    let _ = writeln!(
        out,
        "Finished:           {} ({})",
        time(s.finished),
        duration(s.started, s.finished)
    );
    progress_line(&mut out, live);
    let _ = writeln!(out, "Items:              {}", s.items);
    let _ = writeln!(out, "Size:               {}", indicatif::HumanBytes(s.bytes));
    let _ = writeln!(
        out,
        "Agent / Kubernetes: {} / {}",
        s.agent_version, s.kubernetes_version
    );
    out!("{out}");
    if !s.resources.is_empty() {
        outln!("Resources backed up:");
        let mut t = table(&["RESOURCE", "KIND", "COUNT"]);
        for r in &s.resources {
            let resource = qualified(&r.resource, &r.group);
            t.add_row(vec![resource, r.kind.clone(), r.count.to_string()]);
        }
        print_table(&t);
    }
    volumes(&s.volumes, "Volume data backed up:");
    let mut out = String::new();
    problems(&mut out, &s.problems, s.problems.len() as u64);
    out!("{out}");
    if let Some(items) = items {
        outln!("Items:");
        let mut t = table(&["KIND", "NAMESPACE", "NAME", "RESULT"]);
        for e in items {
            let problem = s.problems.iter().find(|p| p.item == e.item);
            let kind = qualified(&e.item.kind, &e.item.group);
            let result = problem.map_or_else(
                || "backed up".to_owned(),
                |p| format!("{}: {}", p.outcome, p.message),
            );
            t.add_row(vec![kind, e.item.namespace.clone(), e.item.name.clone(), result]);
        }
        print_table(&t);
    }
    Ok(())
}

/// `restore list`.
pub fn restores(format: Format, restores: &[Restore]) -> Result<()> {
    if structured(format, restores)? {
        return Ok(());
    }
    let mut t = table(&[
        "NAME", "BACKUP", "TARGET", "STATUS", "ITEMS", "STARTED", "DURATION",
    ]);
    for r in restores {
        let s = &r.status;
        t.add_row(vec![
            r.spec.name.to_string(),
            r.spec.backup.to_string(),
            r.spec
                .target_cluster
                .as_ref()
                .map_or("-".into(), ToString::to_string),
            if r.spec.dry_run {
                format!("{} (dry run)", s.phase)
            } else {
                s.phase.to_string()
            },
            s.counts.total().to_string(),
            time(s.started),
            duration(s.started, s.finished),
        ]);
    }
    print_table(&t);
    Ok(())
}

/// `restore describe` (and the summary after `restore create --wait`; a dry run prints its plan).
pub fn restore(
    format: Format,
    r: &Restore,
    items: Option<&[ItemResult]>,
    live: Option<&Progress>,
) -> Result<()> {
    let described = Described {
        operation: r,
        items,
        progress: live,
    };
    if structured(format, &described)? {
        return Ok(());
    }
    let (spec, s) = (&r.spec, &r.status);
    let mut out = String::new();
    let _ = writeln!(out, "Name:               {}", spec.name);
    let _ = writeln!(out, "Backup:             {}", spec.backup);
    let _ = writeln!(
        out,
        "Target cluster:     {}",
        spec.target_cluster
            .as_ref()
            .map_or("-".into(), ToString::to_string)
    );
    let _ = writeln!(
        out,
        "Phase:              {}{}",
        s.phase,
        if spec.dry_run { " (dry run)" } else { "" }
    );
    if let Some(error) = &s.error {
        let _ = writeln!(out, "Error:              {error}");
    }
    if !spec.namespace_mapping.is_empty() {
        let mapping: Vec<String> = spec
            .namespace_mapping
            .iter()
            .map(|(a, b)| format!("{a}:{b}"))
            .collect();
        let _ = writeln!(out, "Namespace mapping:  {}", mapping.join(","));
    }
    let _ = writeln!(out, "Started:            {}", time(s.started));
    let _ = writeln!(
        out,
        "Finished:           {} ({})",
        time(s.finished),
        duration(s.started, s.finished)
    );
    progress_line(&mut out, live);
    let c = &s.counts;
    let created = if spec.dry_run { c.would_create } else { c.created };
    let _ = writeln!(
        out,
        "Items:              {created} {}, {} updated, {} skipped (exist), {} skipped (sensitive), {} left to controllers, {} failed",
        if spec.dry_run {
            "would be created"
        } else {
            "created"
        },
        c.updated,
        c.skipped_exists,
        c.skipped_sensitive,
        c.left_to_controller,
        c.failed
    );
    problems(
        &mut out,
        &s.problems,
        c.failed + c.skipped_exists + c.skipped_sensitive,
    );
    out!("{out}");
    volumes(&s.volumes, "Volume data restored:");
    if let Some(items) = items {
        outln!(
            "{}:",
            if spec.dry_run {
                "Plan (in order)"
            } else {
                "Items (in order)"
            }
        );
        let mut t = table(&["KIND", "NAMESPACE", "NAME", "RESULT"]);
        for i in items {
            let kind = qualified(&i.item.kind, &i.item.group);
            let result = if i.message.is_empty() {
                i.outcome.to_string()
            } else {
                format!("{}: {}", i.outcome, i.message)
            };
            t.add_row(vec![kind, i.item.namespace.clone(), i.item.name.clone(), result]);
        }
        print_table(&t);
    }
    Ok(())
}

/// `workspace list`.
pub fn workspaces(format: Format, workspaces: &[Workspace]) -> Result<()> {
    if structured(format, workspaces)? {
        return Ok(());
    }
    let mut t = table(&["NAME", "CLUSTERS", "DEFAULT LOCATION", "CREATED"]);
    for w in workspaces {
        t.add_row(vec![
            w.name.to_string(),
            w.clusters.len().to_string(),
            w.default_location
                .as_ref()
                .map_or("-".into(), ToString::to_string),
            time(w.created),
        ]);
    }
    print_table(&t);
    Ok(())
}

/// `workspace describe`.
pub fn workspace(format: Format, w: &Workspace, locations: &[LocationInfo]) -> Result<()> {
    #[derive(Serialize)]
    struct Described<'a> {
        #[serde(flatten)]
        workspace: &'a Workspace,
        locations: &'a [LocationInfo],
    }
    if structured(
        format,
        &Described {
            workspace: w,
            locations,
        },
    )? {
        return Ok(());
    }
    let clusters: Vec<String> = w.clusters.iter().map(ToString::to_string).collect();
    let names: Vec<String> = locations.iter().map(|l| l.spec.name.to_string()).collect();
    outln!("Name:               {}", w.name);
    outln!(
        "Default location:   {}",
        w.default_location
            .as_ref()
            .map_or("-".into(), ToString::to_string)
    );
    outln!("Created:            {}", time(w.created));
    outln!("Clusters:           {}", list(&clusters, "none"));
    outln!("Locations:          {}", list(&names, "none"));
    Ok(())
}

fn health(l: &LocationInfo) -> (String, String) {
    match &l.health {
        None => ("unchecked".into(), "-".into()),
        Some(h) => (
            h.error
                .as_ref()
                .map_or_else(|| "healthy".into(), |e| format!("failing: {e}")),
            time(Some(h.checked)),
        ),
    }
}

/// `location list`.
pub fn locations(format: Format, locations: &[LocationInfo]) -> Result<()> {
    if structured(format, locations)? {
        return Ok(());
    }
    let mut t = table(&[
        "NAME",
        "WORKSPACE",
        "PROVIDER",
        "WHERE",
        "DEFAULT",
        "HEALTH",
        "CHECKED",
    ]);
    for l in locations {
        let (health, checked) = health(l);
        t.add_row(vec![
            l.spec.name.to_string(),
            l.spec.workspace.to_string(),
            l.spec.store.provider().to_string(),
            provider::place(&l.spec),
            if l.is_default { "yes" } else { "no" }.into(),
            health,
            checked,
        ]);
    }
    print_table(&t);
    Ok(())
}

/// `location describe`.
pub fn location(format: Format, l: &LocationInfo) -> Result<()> {
    if structured(format, l)? {
        return Ok(());
    }
    let s = &l.spec;
    let (health, checked) = health(l);
    let (region, path_style) = match &s.store {
        Store::S3 {
            region,
            force_path_style,
            ..
        } => (region.as_deref(), if *force_path_style { "yes" } else { "no" }),
        Store::Minio { region, .. } => (
            Some(region.as_deref().unwrap_or(provider::DEFAULT_COMPATIBLE_REGION)),
            "yes",
        ),
        _ => (None, "-"),
    };
    let endpoint = s.store.endpoint();
    outln!("Name:               {}", s.name);
    outln!(
        "Workspace:          {}{}",
        s.workspace,
        if l.is_default { " (default location)" } else { "" }
    );
    outln!("Provider:           {}", s.store.provider());
    outln!("Where:              {}", provider::place(s));
    outln!("Region:             {}", region.unwrap_or("-"));
    outln!("Endpoint:           {}", endpoint.map_or("-", |e| e.url.as_str()));
    outln!("Path style:         {path_style}");
    outln!(
        "Custom CA:          {}",
        if endpoint.is_some_and(|e| e.ca_cert_pem.is_some()) {
            "yes"
        } else {
            "no"
        }
    );
    outln!(
        "Credentials:        {}",
        if l.has_credentials {
            "stored (sealed)"
        } else {
            "the agents' own"
        }
    );
    outln!("Key version:        {}", l.key_version);
    outln!("Health:             {health}");
    outln!("Checked:            {checked}");
    if let Some(p) = &l.last_prune {
        let outcome = p
            .error
            .as_deref()
            .map_or_else(|| p.summary.clone(), |e| format!("failed: {e}"));
        outln!("Last volume prune:  {} by {} ({outcome})", p.finished, p.cluster);
    }
    Ok(())
}

/// `backup describe` of a workspace backup (and the summary after `backup create --workspace`).
pub fn workspace_backup(format: Format, w: &WorkspaceBackup) -> Result<()> {
    #[derive(Serialize)]
    struct Described<'a> {
        #[serde(flatten)]
        group: &'a cairn_proto::model::BackupGroup,
        phase: cairn_proto::model::Phase,
        backups: &'a [Backup],
    }
    let described = Described {
        group: &w.group,
        phase: w.phase(),
        backups: &w.backups,
    };
    if structured(format, &described)? {
        return Ok(());
    }
    outln!("Name:               {}", w.group.name);
    outln!("Workspace:          {}", w.group.workspace);
    outln!("Status:             {}", w.phase());
    outln!("Created:            {}", time(w.group.created));
    if let Some(s) = &w.group.schedule {
        outln!("Schedule:           {s}");
    }
    outln!("Clusters:");
    let mut t = table(&["CLUSTER", "BACKUP", "STATUS", "ITEMS", "NOTE"]);
    for m in &w.group.members {
        let backup = m
            .backup
            .as_ref()
            .and_then(|n| w.backups.iter().find(|b| b.spec.name == *n));
        let (status, items, note) = match (backup, &m.skipped) {
            (_, Some(why)) => ("Skipped".to_owned(), "-".to_owned(), why.clone()),
            (Some(b), None) => (
                b.status.phase.to_string(),
                b.status.items.to_string(),
                b.status.error.clone().unwrap_or_default(),
            ),
            (None, None) => (
                "Pending".to_owned(),
                "-".to_owned(),
                "starts within the jitter window".to_owned(),
            ),
        };
        t.add_row(vec![
            m.cluster.to_string(),
            m.backup.as_ref().map_or("-".into(), ToString::to_string),
            status,
            items,
            note,
        ]);
    }
    print_table(&t);
    Ok(())
}

fn target(s: &ScheduleSpec) -> String {
    match &s.target {
        ScheduleTarget::Cluster(c) => format!("cluster {c}"),
        ScheduleTarget::Workspace(w) => format!("workspace {w}"),
    }
}

/// `schedule list`.
pub fn schedules(format: Format, schedules: &[Schedule]) -> Result<()> {
    if structured(format, schedules)? {
        return Ok(());
    }
    let mut t = table(&[
        "NAME", "TARGET", "CRON", "TIMEZONE", "PAUSED", "LAST RUN", "NEXT RUN", "RUNS",
    ]);
    for Schedule { spec: s, status } in schedules {
        t.add_row(vec![
            s.name.to_string(),
            target(s),
            s.cron.clone(),
            s.timezone.clone().unwrap_or_else(|| "UTC".into()),
            if s.paused { "yes" } else { "no" }.into(),
            time(status.last_fire),
            time(status.next_fire),
            status.runs.to_string(),
        ]);
    }
    print_table(&t);
    Ok(())
}

/// `schedule describe`.
pub fn schedule(format: Format, schedule: &Schedule) -> Result<()> {
    if structured(format, schedule)? {
        return Ok(());
    }
    let Schedule { spec: s, status } = schedule;
    let tpl = &s.template;
    outln!("Name:               {}", s.name);
    outln!("Target:             {}", target(s));
    outln!(
        "Cron:               {} ({})",
        s.cron,
        s.timezone.as_deref().unwrap_or("UTC")
    );
    outln!("Paused:             {}", if s.paused { "yes" } else { "no" });
    outln!(
        "Location:           {}",
        tpl.location
            .as_ref()
            .map_or("workspace default".into(), ToString::to_string)
    );
    outln!("Namespaces:         {}", list(&tpl.namespaces.include, "all"));
    outln!(
        "TTL:                {}",
        tpl.ttl
            .map_or("forever".into(), |d| humantime::format_duration(d).to_string())
    );
    outln!(
        "Keep last:          {}",
        s.keep_last.map_or("all".into(), |n| n.to_string())
    );
    outln!("Jitter window:      {}", humantime::format_duration(s.jitter));
    outln!("Created:            {}", time(status.created));
    outln!("Last run (slot):    {}", time(status.last_fire));
    outln!("Next run:           {}", time(status.next_fire));
    outln!("Runs:               {}", status.runs);
    outln!(
        "Catch-up runs:      {}{}",
        status.catch_ups,
        status
            .last_catch_up
            .map(|t| format!(" (last {t})"))
            .unwrap_or_default()
    );
    if let Some(e) = &status.last_error {
        outln!("Last error:         {e}");
    }
    Ok(())
}
