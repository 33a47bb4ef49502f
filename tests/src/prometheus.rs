//! A real Prometheus (Debian's `prometheus`) on loopback, scraping given targets every second
//! and evaluating given alert rules every second; queried through its HTTP API.

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

use crate::sandbox::Sandbox;

/// A running Prometheus.
pub struct Prometheus {
    sandbox: Sandbox,
    url: String,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (`host:port`, path `/metrics`) with the alert rules
    /// file `rules` (YAML); returns once it answers.
    pub async fn start(targets: &[&str], rules: &str) -> Result<Self> {
        let sandbox = Sandbox::new("prometheus")?;
        let dir = sandbox.dir().to_owned();
        std::fs::write(dir.join("rules.yml"), rules)?;
        let config = serde_json::json!({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [dir.join("rules.yml")],
            "scrape_configs": [{"job_name": "cairn-hub", "static_configs": [{"targets": targets}]}],
        });
        // JSON is YAML.
        std::fs::write(dir.join("prometheus.yml"), config.to_string())?;
        let url = format!("http://127.0.0.1:{}", crate::free_port()?);
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!(
                "--web.listen-address={}",
                url.trim_start_matches("http://")
            ));
        sandbox.spawn("prometheus", cmd)?;
        let prometheus = Self { sandbox, url };
        let ready = format!("{}/-/ready", prometheus.url);
        prometheus
            .sandbox
            .wait_ready("prometheus", "Prometheus", Duration::from_secs(60), || {
                let ready = ready.clone();
                async move {
                    Ok(reqwest::get(&ready)
                        .await
                        .ok()
                        .filter(|r| r.status().is_success())
                        .map(|_| ()))
                }
            })
            .await?;
        Ok(prometheus)
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value> {
        let answer: Value = reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .query(query)
            .send()
            .await?
            .json()
            .await?;
        if answer["status"] != "success" {
            bail!("Prometheus {path}: {answer}");
        }
        answer.get("data").cloned().context("no data")
    }

    /// The instant vector `expr` evaluates to now: its samples.
    pub async fn query(&self, expr: &str) -> Result<Vec<Value>> {
        let data = self.get("/api/v1/query", &[("query", expr)]).await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// The alerts pending or firing now.
    pub async fn alerts(&self) -> Result<Vec<Value>> {
        let data = self.get("/api/v1/alerts", &[]).await?;
        Ok(data["alerts"].as_array().cloned().unwrap_or_default())
    }

    /// Its log.
    pub fn log(&self) -> String {
        self.sandbox.log("prometheus")
    }
}
