//! **Test-only** adapter in front of fake-gcs-server, bridging the one gap between it and
//! `object_store`'s GCS client.
//!
//! `object_store` writes objects with the XML API: a plain `PUT /BUCKET/OBJECT` (and, to copy,
//! the same `PUT` with `x-goog-copy-source`). fake-gcs-server routes that `PUT` only for signed
//! URLs and answers 400 "invalid uploadType". This adapter turns those two requests into the
//! emulator's JSON API (media upload, `copyTo`), answers with the `ETag` and `x-goog-generation`
//! headers that `object_store` requires, and passes every other request — reads, heads, lists,
//! deletes — to the emulator untouched. The product's GCS code path stays `object_store`'s.

use anyhow::{Context, Result};
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use tokio::task::JoinHandle;

const COPY_SOURCE: &str = "x-goog-copy-source";
const GENERATION_MATCH: &str = "x-goog-if-generation-match";
/// Largest request body the adapter buffers: above any object the tests write.
const MAX_BODY: usize = 1 << 30;

#[derive(Clone)]
struct Upstream {
    base: String,
    http: reqwest::Client,
}

/// Serves the adapter on `listener`, forwarding to the emulator at `upstream`
/// (`http://127.0.0.1:PORT`). The task ends when aborted.
pub(crate) fn serve(listener: tokio::net::TcpListener, upstream: String) -> JoinHandle<()> {
    let state = Upstream {
        base: upstream,
        http: reqwest::Client::new(),
    };
    let app = axum::Router::new().fallback(handle).with_state(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "GCS adapter stopped");
        }
    })
}

async fn handle(State(up): State<Upstream>, req: Request) -> Response {
    match route(&up, req).await {
        Ok(resp) => resp,
        Err(e) => (StatusCode::BAD_GATEWAY, format!("GCS test adapter: {e:#}")).into_response(),
    }
}

async fn route(up: &Upstream, req: Request) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let body = to_bytes(body, MAX_BODY).await?;
    let path = parts.uri.path();
    let is_xml_object_put = parts.method == Method::PUT
        && !path.starts_with("/storage/")
        && !path.starts_with("/upload/")
        && parts.uri.query().is_none();
    if !is_xml_object_put {
        return forward(up, &parts.method, &parts.uri, &parts.headers, body).await;
    }
    let (bucket, object) = split_object_path(path).context("PUT path is not /BUCKET/OBJECT")?;
    let precondition = header_str(&parts.headers, GENERATION_MATCH);
    match header_str(&parts.headers, COPY_SOURCE) {
        Some(source) => copy(up, source, &bucket, &object, precondition).await,
        None => upload(up, &parts.headers, body, &bucket, &object, precondition).await,
    }
}

async fn upload(
    up: &Upstream,
    headers: &HeaderMap,
    body: bytes::Bytes,
    bucket: &str,
    object: &str,
    precondition: Option<&str>,
) -> Result<Response> {
    let mut query = vec![("uploadType", "media"), ("name", object)];
    query.extend(precondition.map(|g| ("ifGenerationMatch", g)));
    let content_type =
        header_str(headers, header::CONTENT_TYPE.as_str()).unwrap_or("application/octet-stream");
    let resp = up
        .http
        .post(format!("{}/upload/storage/v1/b/{bucket}/o", up.base))
        .query(&query)
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await?;
    object_response(resp).await
}

async fn copy(
    up: &Upstream,
    source: &str,
    bucket: &str,
    object: &str,
    precondition: Option<&str>,
) -> Result<Response> {
    let (src_bucket, src_object) =
        split_object_path(source).context("x-goog-copy-source is not BUCKET/OBJECT")?;
    let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    let url = format!(
        "{}/storage/v1/b/{src_bucket}/o/{}/copyTo/b/{bucket}/o/{}",
        up.base,
        enc(&src_object),
        enc(object)
    );
    let query: Vec<(&str, &str)> = precondition
        .map(|g| ("ifGenerationMatch", g))
        .into_iter()
        .collect();
    let resp = up.http.post(url).query(&query).send().await?;
    object_response(resp).await
}

/// The XML API's answer to a write: an empty 200 with `ETag` and `x-goog-generation`, or the
/// emulator's error status and text.
async fn object_response(resp: reqwest::Response) -> Result<Response> {
    let status = StatusCode::from_u16(resp.status().as_u16())?;
    if !status.is_success() {
        return Ok((status, resp.text().await?).into_response());
    }
    let meta: serde_json::Value = resp.json().await.context("emulator's object resource")?;
    let etag = meta["etag"]
        .as_str()
        .or(meta["md5Hash"].as_str())
        .context("object without etag")?;
    let mut out = Response::new(Body::empty());
    out.headers_mut()
        .insert(header::ETAG, HeaderValue::from_str(&format!("\"{etag}\""))?);
    if let Some(generation) = meta["generation"].as_str() {
        out.headers_mut()
            .insert("x-goog-generation", HeaderValue::from_str(generation)?);
    }
    Ok(out)
}

async fn forward(
    up: &Upstream,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: bytes::Bytes,
) -> Result<Response> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = up
        .http
        .request(method.clone(), format!("{}{path}", up.base))
        .body(body);
    for (name, value) in headers {
        if name != header::HOST && name != header::CONTENT_LENGTH {
            req = req.header(name, value);
        }
    }
    let resp = req.send().await?;
    let mut out = Response::builder().status(resp.status().as_u16());
    for (name, value) in resp.headers() {
        // Bodies are re-framed here; a HEAD keeps the emulator's Content-Length (the object size).
        let framing =
            name == header::TRANSFER_ENCODING || (name == header::CONTENT_LENGTH && method != Method::HEAD);
        if !framing {
            out = out.header(name, value);
        }
    }
    Ok(out.body(Body::from(resp.bytes().await?))?)
}

/// `/BUCKET/OB/JECT` or `BUCKET/OB%2FJECT` → (`BUCKET`, `OB/JECT`), the object name decoded.
fn split_object_path(path: &str) -> Option<(String, String)> {
    let (bucket, object) = path.trim_start_matches('/').split_once('/')?;
    let object = percent_decode_str(object).decode_utf8().ok()?.into_owned();
    (!bucket.is_empty() && !object.is_empty()).then(|| (bucket.to_owned(), object))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_decodes_object_paths() {
        assert_eq!(
            split_object_path("/bkt/a/b%20c"),
            Some(("bkt".to_owned(), "a/b c".to_owned()))
        );
        assert_eq!(
            split_object_path("bkt/a%2Fb"),
            Some(("bkt".to_owned(), "a/b".to_owned()))
        );
        assert_eq!(split_object_path("/bkt"), None);
        assert_eq!(split_object_path("/bkt/"), None);
    }
}
