//! Every storage server of the test bed speaks to `object_store` as a real provider would:
//! put, get, list, head and delete (one object of 64 MiB), and the servers that check
//! credentials refuse wrong ones themselves.

use anyhow::Result;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::sync::Arc;
use testbed::storage::{AzuriteServer, GcsServer, LocalDir, S3Credentials, S3Server};

const BIG: usize = 64 << 20;

/// Deterministic, incompressible-looking bytes, so a truncated or shifted copy cannot match.
fn pattern(len: usize, seed: u64) -> Bytes {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

async fn round_trip(store: Arc<dyn ObjectStore>) -> Result<()> {
    let prefix = Path::from("roundtrip");
    let small = Path::from("roundtrip/dir/small.json");
    let big = Path::from("roundtrip/big.bin");
    let small_bytes = Bytes::from_static(br#"{"hello":"cairn"}"#);
    let big_bytes = pattern(BIG, 7);

    store.put(&small, PutPayload::from(small_bytes.clone())).await?;
    store.put(&big, PutPayload::from(big_bytes.clone())).await?;

    assert_eq!(store.get(&small).await?.bytes().await?, small_bytes);
    let got = store.get(&big).await?.bytes().await?;
    assert_eq!(got.len(), BIG);
    assert!(got == big_bytes, "64 MiB object read back differs");
    assert_eq!(store.head(&big).await?.size, BIG as u64);

    let mut listed: Vec<(String, u64)> = store
        .list(Some(&prefix))
        .map_ok(|m| (m.location.to_string(), m.size))
        .try_collect()
        .await?;
    listed.sort();
    assert_eq!(
        listed,
        vec![
            ("roundtrip/big.bin".to_owned(), BIG as u64),
            ("roundtrip/dir/small.json".to_owned(), small_bytes.len() as u64),
        ]
    );

    store.delete(&small).await?;
    store.delete(&big).await?;
    let left: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
    assert!(left.is_empty(), "objects left after delete: {left:?}");
    let gone = store.get(&small).await.expect_err("deleted object is gone");
    assert!(matches!(gone, object_store::Error::NotFound { .. }), "{gone:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_round_trip() -> Result<()> {
    let s3 = S3Server::start().await?;
    s3.create_bucket("plain").await?;
    round_trip(s3.store("plain")?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_over_tls_with_a_custom_ca() -> Result<()> {
    let s3 = S3Server::start_tls().await?;
    assert!(s3.endpoint().starts_with("https://"));
    s3.create_bucket("secure").await?;
    round_trip(s3.store("secure")?).await?;

    // Without the CA the certificate is not trusted: verification is on.
    let untrusted = s3.store_with("secure", s3.credentials(), None)?;
    let err = untrusted
        .get(&Path::from("anything"))
        .await
        .expect_err("untrusted certificate");
    let text = cairn_proto::error_chain(&err);
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_server_refuses_a_wrong_secret() -> Result<()> {
    let s3 = S3Server::start_with_auth("guarded").await?;
    round_trip(s3.store("guarded")?).await?;

    let wrong = S3Credentials {
        secret_access_key: "not-the-secret".into(),
        ..s3.credentials().clone()
    };
    let store = s3.store_with("guarded", &wrong, None)?;
    let err = store
        .put(&Path::from("x"), PutPayload::from_static(b"x"))
        .await
        .expect_err("refused");
    assert!(
        matches!(err, object_store::Error::PermissionDenied { .. }),
        "{err:?}"
    );
    assert!(
        cairn_proto::error_chain(&err).contains("SignatureDoesNotMatch"),
        "{}",
        cairn_proto::error_chain(&err)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_round_trip_and_wrong_key_refused() -> Result<()> {
    let azure = AzuriteServer::start().await?;
    azure.create_container("backups").await?;
    round_trip(azure.store("backups")?).await?;

    // A well-formed key that is not the account's: the server's signature check fails.
    let wrong_key = testbed::storage::AZURE_WRONG_KEY;
    let store = azure.store_with_key("backups", wrong_key)?;
    let err = store
        .put(&Path::from("x"), PutPayload::from_static(b"x"))
        .await
        .expect_err("refused");
    assert!(
        matches!(err, object_store::Error::PermissionDenied { .. }),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn gcs_round_trip() -> Result<()> {
    let gcs = GcsServer::start().await?;
    gcs.create_bucket("fleet").await?;
    round_trip(gcs.store("fleet")?).await
}

#[tokio::test(flavor = "multi_thread")]
async fn local_directory_round_trip() -> Result<()> {
    let dir = LocalDir::new()?;
    round_trip(dir.store()?).await?;
    assert!(dir.path().exists());
    Ok(())
}
