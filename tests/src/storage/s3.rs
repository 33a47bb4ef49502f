//! S3 on loopback: moto's server, plain HTTP, over TLS with a certificate from our own CA, or
//! with its IAM authentication switched on so that the *server* refuses a wrong secret key.

use anyhow::{Context, Result};
use object_store::aws::AmazonS3Builder;
use object_store::{Certificate, ClientOptions, ObjectStore};
use std::process::Command;
use std::sync::Arc;

use super::{admin, wait_for_http};
use crate::{Ca, Sandbox, bin, free_port};

/// Region every S3 client of the test bed uses (moto accepts any).
pub const REGION: &str = "us-east-1";

/// An access key pair.
#[derive(Debug, Clone)]
pub struct S3Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

/// A moto S3 server; see the module docs.
pub struct S3Server {
    endpoint: String,
    ca_pem: Option<String>,
    credentials: S3Credentials,
    auth_bucket: Option<String>,
    _sandbox: Sandbox,
}

impl S3Server {
    /// Plain HTTP, authentication off (any credentials are accepted).
    pub async fn start() -> Result<Self> {
        Self::launch(None).await
    }

    /// HTTPS with a server certificate for `127.0.0.1` issued by a fresh CA; clients must trust
    /// [`S3Server::ca_pem`].
    pub async fn start_tls() -> Result<Self> {
        Self::launch(Some(Ca::new("s3")?)).await
    }

    /// Plain HTTP with moto's IAM authentication on: bucket `bucket` exists, and only
    /// [`S3Server::credentials`] (an IAM user's key, allowed everything) are accepted.
    pub async fn start_with_auth(bucket: &str) -> Result<Self> {
        let mut server = Self::launch(None).await?;
        let key = admin::run(&["s3-auth", &server.endpoint, bucket]).await?;
        let field = |k: &str| {
            key[k]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("s3-auth {k}"))
        };
        server.credentials = S3Credentials {
            access_key_id: field("access_key_id")?,
            secret_access_key: field("secret_access_key")?,
        };
        server.auth_bucket = Some(bucket.to_owned());
        Ok(server)
    }

    async fn launch(ca: Option<Ca>) -> Result<Self> {
        crate::init();
        let sandbox = Sandbox::new("s3")?;
        let port = free_port()?;
        let mut cmd = Command::new(bin("moto_server")?);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let mut http = reqwest::Client::builder();
        let scheme = if let Some(ca) = &ca {
            let pair = ca.issue(&["127.0.0.1", "localhost"])?;
            let (cert, key) = (sandbox.dir().join("server.crt"), sandbox.dir().join("server.key"));
            std::fs::write(&cert, &pair.cert_pem)?;
            std::fs::write(&key, &pair.key_pem)?;
            cmd.arg("-c").arg(&cert).arg("-k").arg(&key);
            http = http.add_root_certificate(reqwest::Certificate::from_pem(ca.cert_pem().as_bytes())?);
            "https"
        } else {
            "http"
        };
        sandbox.spawn("moto", cmd)?;
        let endpoint = format!("{scheme}://127.0.0.1:{port}");
        wait_for_http(&sandbox, "moto", &format!("{endpoint}/moto-api/"), &http.build()?).await?;
        Ok(Self {
            endpoint,
            ca_pem: ca.map(|ca| ca.cert_pem()),
            credentials: S3Credentials {
                access_key_id: "testing".into(),
                secret_access_key: "testing".into(),
            },
            auth_bucket: None,
            _sandbox: sandbox,
        })
    }

    /// `http(s)://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The CA that signed the server's certificate, for a TLS server.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Credentials the server accepts.
    pub fn credentials(&self) -> &S3Credentials {
        &self.credentials
    }

    /// Creates `bucket`. With authentication on, only the bucket made at start exists.
    pub async fn create_bucket(&self, bucket: &str) -> Result<()> {
        if self.auth_bucket.is_some() {
            anyhow::bail!("buckets of an authenticating S3 server are made at start");
        }
        let mut args = vec!["s3-bucket", &self.endpoint, bucket];
        let ca_file;
        if let Some(pem) = &self.ca_pem {
            ca_file = self._sandbox.dir().join("ca.crt");
            std::fs::write(&ca_file, pem)?;
            args.extend(["--ca", ca_file.to_str().context("CA path")?]);
        }
        admin::run(&args).await.map(|_| ())
    }

    /// A client for `bucket` with the server's accepted credentials, trusting its CA.
    pub fn store(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
        self.store_with(bucket, &self.credentials, self.ca_pem.as_deref())
    }

    /// A client for `bucket` with the given credentials, trusting `ca_pem` if given (and only the
    /// system's roots otherwise).
    pub fn store_with(
        &self,
        bucket: &str,
        credentials: &S3Credentials,
        ca_pem: Option<&str>,
    ) -> Result<Arc<dyn ObjectStore>> {
        // allow_http inside ClientOptions: with_client_options replaces options set before it.
        let mut options = ClientOptions::new().with_allow_http(true);
        if let Some(pem) = ca_pem {
            options = options.with_root_certificate(Certificate::from_pem(pem.as_bytes())?);
        }
        let store = AmazonS3Builder::new()
            .with_client_options(options)
            .with_endpoint(&self.endpoint)
            .with_region(REGION)
            .with_bucket_name(bucket)
            .with_access_key_id(&credentials.access_key_id)
            .with_secret_access_key(&credentials.secret_access_key)
            .build()?;
        Ok(Arc::new(store))
    }
}
