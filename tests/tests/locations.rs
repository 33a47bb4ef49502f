//! Backup locations are opened from a URL and options, as a user configures them, and checked end
//! to end against the real servers; each kind of misconfiguration is told apart.

use anyhow::Result;
use cairn_proto::format::location::{CA_PEM, Failure, verify};
use cairn_proto::model::{Location, LocationName};
use testbed::storage::{AzuriteServer, GcsServer, LocalDir, S3Server};

fn location(url: &str, options: &[(&str, &str)]) -> Location {
    Location {
        name: LocationName::new("probe").expect("valid name"),
        url: url.to_owned(),
        options: options
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

async fn failure(location: &Location) -> (Failure, String) {
    let e = verify(location).await.expect_err("the check fails");
    (e.failure(), cairn_proto::error_chain(&e))
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_locations_are_verified_and_misconfigurations_told_apart() -> Result<()> {
    let s3 = S3Server::start_with_auth("backups").await?;
    let creds = s3.credentials().clone();
    let s3_location = |bucket: &str, endpoint: &str, secret: &str| {
        location(
            &format!("s3://{bucket}/cluster-a"),
            &[
                ("aws_endpoint", endpoint),
                ("aws_region", "us-east-1"),
                ("aws_access_key_id", &creds.access_key_id),
                ("aws_secret_access_key", secret),
                ("allow_http", "true"),
            ],
        )
    };
    verify(&s3_location("backups", s3.endpoint(), &creds.secret_access_key)).await?;

    let (why, text) = failure(&s3_location("backups", s3.endpoint(), "wrong-secret")).await;
    assert_eq!(why, Failure::Credentials, "{text}");
    assert!(
        text.starts_with("writing a probe object failed: the credentials were refused"),
        "{text}"
    );
    let (why, text) = failure(&s3_location("missing", s3.endpoint(), &creds.secret_access_key)).await;
    assert_eq!(why, Failure::NoBucket, "{text}");
    let (why, text) = failure(&s3_location(
        "backups",
        "http://127.0.0.1:9",
        &creds.secret_access_key,
    ))
    .await;
    assert_eq!(why, Failure::Unreachable, "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_over_tls_is_trusted_only_through_its_ca() -> Result<()> {
    let s3 = S3Server::start_tls().await?;
    s3.create_bucket("secure").await?;
    let ca = s3.ca_pem().expect("a TLS server has a CA").to_owned();
    let options = [
        ("aws_endpoint", s3.endpoint()),
        ("aws_region", "us-east-1"),
        ("aws_access_key_id", "testing"),
        ("aws_secret_access_key", "testing"),
    ];
    let mut with_ca = options.to_vec();
    with_ca.push((CA_PEM, &ca));
    verify(&location("s3://secure", &with_ca)).await?;
    let (why, text) = failure(&location("s3://secure", &options)).await;
    assert_eq!(why, Failure::UntrustedCertificate, "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_gcs_and_local_locations_are_verified() -> Result<()> {
    let (azure, gcs) = tokio::try_join!(AzuriteServer::start(), GcsServer::start())?;
    azure.create_container("backups").await?;
    let azure_location = |container: &str, key: &str| {
        location(
            &format!("az://{container}/prefix"),
            &[
                ("azure_storage_account_name", testbed::storage::AZURE_ACCOUNT),
                ("azure_storage_account_key", key),
                ("azure_storage_endpoint", azure.endpoint()),
                ("allow_http", "true"),
            ],
        )
    };
    verify(&azure_location("backups", testbed::storage::AZURE_KEY)).await?;
    let wrong = testbed::storage::AZURE_WRONG_KEY;
    let (why, text) = failure(&azure_location("backups", wrong)).await;
    assert_eq!(why, Failure::Credentials, "{text}");
    let (why, text) = failure(&azure_location("missing", testbed::storage::AZURE_KEY)).await;
    assert_eq!(why, Failure::NoBucket, "{text}");

    gcs.create_bucket("fleet").await?;
    let key = serde_json::json!({"gcs_base_url": gcs.endpoint(), "disable_oauth": true,
        "client_email": "", "private_key": "", "private_key_id": ""})
    .to_string();
    verify(&location(
        "gs://fleet/prefix",
        &[("google_service_account_key", &key), ("allow_http", "true")],
    ))
    .await?;

    let dir = LocalDir::new()?;
    verify(&location(
        &format!("file://{}/backups", dir.path().display()),
        &[],
    ))
    .await?;
    Ok(())
}
