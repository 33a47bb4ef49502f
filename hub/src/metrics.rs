//! The hub's Prometheus metrics, served on their own HTTP port (`metrics_listen`): per cluster
//! its connection, last success and RPO at risk (read from the hub at each scrape), fleet-wide
//! the outcomes, durations and bytes of backups and restores, schedule fire delays and location
//! health. Alert rules to start from are in README ("Fleet health").

use cairn_proto::model::{Backup, Cluster, LocationInfo, Phase, Restore};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::operations::Hub;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabels {
    cluster: String,
    workspace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LocationLabels {
    location: String,
    workspace: String,
}

type Buckets = fn() -> Histogram;

/// Every series the hub exports.
pub struct Metrics {
    registry: Registry,
    /// Held while the per-scrape series are rewritten and encoded.
    scrape: tokio::sync::Mutex<()>,
    connected: Family<ClusterLabels, Gauge>,
    last_success: Family<ClusterLabels, Gauge<f64, AtomicU64>>,
    rpo_at_risk: Family<ClusterLabels, Gauge>,
    spool_bytes: Family<ClusterLabels, Gauge>,
    spool_backups: Family<ClusterLabels, Gauge>,
    location_healthy: Family<LocationLabels, Gauge>,
    backups: Family<Outcome, Counter>,
    restores: Family<Outcome, Counter>,
    durations: Family<Kind, Histogram, Buckets>,
    bytes_written: Counter,
    fire_delay: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("cairn");
        let metrics = Self {
            scrape: tokio::sync::Mutex::new(()),
            connected: Family::default(),
            last_success: Family::default(),
            rpo_at_risk: Family::default(),
            spool_bytes: Family::default(),
            spool_backups: Family::default(),
            location_healthy: Family::default(),
            backups: Family::default(),
            restores: Family::default(),
            // 1 s to about 9 h.
            durations: Family::new_with_constructor(|| Histogram::new(exponential_buckets(1.0, 2.0, 16))),
            bytes_written: Counter::default(),
            // 1 ms to about 33 s.
            fire_delay: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            registry: Registry::default(),
        };
        registry.register(
            "cluster_connected",
            "Whether the cluster's agent is connected (1) or not (0)",
            metrics.connected.clone(),
        );
        registry.register(
            "cluster_last_success_timestamp_seconds",
            "When the cluster's last Completed backup was taken (Unix seconds); absent if none",
            metrics.last_success.clone(),
        );
        registry.register(
            "cluster_rpo_at_risk",
            "1 if one of the cluster's schedules went longer than its period plus rpo_grace without a Completed backup",
            metrics.rpo_at_risk.clone(),
        );
        registry.register(
            "cluster_spool_bytes",
            "Bytes of backups in the cluster's site spool, not yet shipped to their locations, as its agent last reported",
            metrics.spool_bytes.clone(),
        );
        registry.register(
            "cluster_spool_backups",
            "Backups in the cluster's site spool, not yet shipped to their locations",
            metrics.spool_backups.clone(),
        );
        registry.register(
            "location_healthy",
            "Whether the location's last end-to-end check passed (1) or not (0)",
            metrics.location_healthy.clone(),
        );
        registry.register("backups", "Backups ended, by outcome", metrics.backups.clone());
        registry.register("restores", "Restores ended, by outcome", metrics.restores.clone());
        registry.register(
            "operation_duration_seconds",
            "How long backups and restores took, from start to end",
            metrics.durations.clone(),
        );
        registry.register(
            "backup_written_bytes",
            "Bytes backups wrote to their locations",
            metrics.bytes_written.clone(),
        );
        registry.register(
            "schedule_fire_delay_seconds",
            "How late schedules fired after their slot",
            metrics.fire_delay.clone(),
        );
        Self { registry, ..metrics }
    }
}

fn outcome(phase: Phase) -> Outcome {
    Outcome {
        outcome: phase.to_string(),
    }
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Metrics {
    /// `backup` ended.
    pub fn backup_ended(&self, backup: &Backup) {
        self.backups.get_or_create(&outcome(backup.status.phase)).inc();
        self.bytes_written.inc_by(backup.status.bytes);
        if let (Some(start), Some(end)) = (backup.status.started, backup.status.finished) {
            self.durations
                .get_or_create(&Kind {
                    kind: "backup".into(),
                })
                .observe(seconds(start.until(end)));
        }
    }

    /// `restore` ended.
    pub fn restore_ended(&self, restore: &Restore) {
        self.restores.get_or_create(&outcome(restore.status.phase)).inc();
        if let (Some(start), Some(end)) = (restore.status.started, restore.status.finished) {
            self.durations
                .get_or_create(&Kind {
                    kind: "restore".into(),
                })
                .observe(seconds(start.until(end)));
        }
    }

    /// A schedule fired `delay` after its slot.
    pub fn fired(&self, delay: Duration) {
        self.fire_delay.observe(seconds(delay));
    }

    /// The exposition text, the per-cluster and per-location series set from `clusters` and
    /// `locations` as they are now.
    pub async fn encode(&self, clusters: &[Cluster], locations: &[LocationInfo]) -> String {
        let _scrape = self.scrape.lock().await;
        for family in [
            &self.connected,
            &self.rpo_at_risk,
            &self.spool_bytes,
            &self.spool_backups,
        ] {
            family.clear();
        }
        self.last_success.clear();
        self.location_healthy.clear();
        for c in clusters {
            let labels = ClusterLabels {
                cluster: c.name.to_string(),
                workspace: c.workspace.as_ref().map(ToString::to_string).unwrap_or_default(),
            };
            self.connected.get_or_create(&labels).set(i64::from(c.connected));
            self.rpo_at_risk
                .get_or_create(&labels)
                .set(i64::from(c.rpo_at_risk));
            let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            self.spool_bytes.get_or_create(&labels).set(gauge(c.spool_bytes));
            self.spool_backups
                .get_or_create(&labels)
                .set(gauge(c.spool_backups));
            if let Some(t) = c.last_success {
                let unix = std::time::SystemTime::from(t)
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                self.last_success.get_or_create(&labels).set(unix.as_secs_f64());
            }
        }
        for l in locations {
            let labels = LocationLabels {
                location: l.spec.name.to_string(),
                workspace: l.spec.workspace.to_string(),
            };
            let healthy = l.health.as_ref().is_some_and(|h| h.error.is_none());
            self.location_healthy
                .get_or_create(&labels)
                .set(i64::from(healthy));
        }
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "encoding metrics");
        }
        text
    }
}

/// Serves `GET /metrics` on `listener` until `stop` resolves.
pub async fn serve(
    hub: Hub,
    listener: tokio::net::TcpListener,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(hub);
    axum::serve(listener, app).with_graceful_shutdown(stop).await
}

async fn scrape(axum::extract::State(hub): axum::extract::State<Hub>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match hub.metrics_text().await {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            cairn_proto::error_chain(&e),
        )
            .into_response(),
    }
}
