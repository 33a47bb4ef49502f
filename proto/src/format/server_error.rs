//! A storage server's error as a user reads it: one line, in the provider's own terms (the HTTP
//! status, the provider's error code and message), never the XML or JSON document `object_store`
//! quotes whole, nor the request URL and retry count around it.

use std::fmt;

/// Longest summary of an error that carries no document: the rest is cut (the full error is
/// logged at debug level where it is raised).
const MAX_LEN: usize = 400;

/// What `object_store` put between the request and the server's answer.
const STATUS_MARK: &str = "status code: ";

/// An `object_store` error whose `Display` is its one-line summary, with no further source:
/// the summary already says what the server said.
#[derive(Debug)]
pub struct ServerError(pub object_store::Error);

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&summary(&self.0))
    }
}

impl std::error::Error for ServerError {}

impl From<object_store::Error> for ServerError {
    fn from(e: object_store::Error) -> Self {
        Self(e)
    }
}

/// `e` in one line: `403 Forbidden: SignatureDoesNotMatch: The request signature …` when the
/// server answered with an error document, the error and its causes otherwise.
fn summary(e: &object_store::Error) -> String {
    summarise(&crate::error_chain(e))
}

fn summarise(text: &str) -> String {
    let document = ["<?xml", "<Error", "{"]
        .iter()
        .filter_map(|start| text.find(start))
        .min();
    if let Some(at) = document
        && let Some(said) = xml_answer(&text[at..]).or_else(|| json_answer(&text[at..]))
    {
        let head = text[..at].trim_end_matches(|c: char| c.is_whitespace() || c == ':' || c == '\u{feff}');
        return match head.rfind(STATUS_MARK) {
            Some(i) => format!("{}: {said}", &head[i + STATUS_MARK.len()..]),
            None => format!("{}: {said}", one_line(head)),
        };
    }
    let line = one_line(text);
    if line.chars().count() > MAX_LEN {
        let cut: String = line.chars().take(MAX_LEN).collect();
        format!("{cut}…")
    } else {
        line
    }
}

/// S3's and Azure's error documents: `<Code>…</Code>` and `<Message>…</Message>`.
fn xml_answer(document: &str) -> Option<String> {
    let field = |name: &str| {
        let open = format!("<{name}>");
        let start = document.find(&open)? + open.len();
        let end = document[start..].find(&format!("</{name}>"))? + start;
        Some(first_line(&document[start..end]))
    };
    match (field("Code"), field("Message")) {
        (Some(code), Some(message)) => Some(format!("{code}: {message}")),
        (Some(code), None) => Some(code),
        (None, Some(message)) => Some(message),
        (None, None) => None,
    }
}

/// GCS's JSON errors: `{"error": {"code": 404, "message": "…", "errors": [{"reason": "…"}]}}`.
fn json_answer(document: &str) -> Option<String> {
    let end = document.rfind('}')?;
    let value: serde_json::Value = serde_json::from_str(&document[..=end]).ok()?;
    let error = value.get("error")?;
    let message = error.get("message").and_then(serde_json::Value::as_str)?;
    let reason = error
        .pointer("/errors/0/reason")
        .and_then(serde_json::Value::as_str);
    Some(match reason {
        Some(reason) => format!("{reason}: {}", first_line(message)),
        None => first_line(message),
    })
}

/// Azure appends `RequestId:` and `Time:` lines to its messages: the first line says it.
fn first_line(text: &str) -> String {
    text.trim().lines().next().unwrap_or_default().trim().to_owned()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const S3: &str = "Error performing PUT http://127.0.0.1:4566/backups/.cairn-probe/1 in 2.1ms - \
        Server returned non-2xx status code: 403 Forbidden: <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
        <Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not \
        match the signature you provided.</Message><RequestId>abc</RequestId></Error>";

    const AZURE: &str = "Error performing PUT http://127.0.0.1:10000/devstoreaccount1/c/.cairn-probe/1 in \
        1ms - Server returned non-2xx status code: 400 Bad Request: \u{feff}<?xml version=\"1.0\" \
        encoding=\"utf-8\"?>\n<Error>\n  <Code>InvalidResourceName</Code>\n  <Message>The specifed \
        resource name contains invalid characters.\nRequestId:4b7e\nTime:2026-11-29T18:00:00.000Z</Message>\n</Error>";

    const GCS: &str = "Error performing GET http://127.0.0.1:4443/storage/v1/b/missing/o in 1ms - \
        Server returned non-2xx status code: 404 Not Found: {\"error\":{\"code\":404,\"message\":\"The \
        specified bucket does not exist.\",\"errors\":[{\"reason\":\"notFound\",\"message\":\"x\"}]}}";

    #[test]
    fn error_documents_become_status_code_and_message() {
        assert_eq!(
            summarise(S3),
            "403 Forbidden: SignatureDoesNotMatch: The request signature we calculated does not match \
             the signature you provided."
        );
        assert_eq!(
            summarise(AZURE),
            "400 Bad Request: InvalidResourceName: The specifed resource name contains invalid characters."
        );
        assert_eq!(
            summarise(GCS),
            "404 Not Found: notFound: The specified bucket does not exist."
        );
    }

    #[test]
    fn errors_without_a_document_stay_whole_on_one_line() {
        let refused =
            "Generic HTTP error: error sending request\n  for url: Connection refused (os error 111)";
        assert_eq!(
            summarise(refused),
            "Generic HTTP error: error sending request for url: Connection refused (os error 111)"
        );
        let long = "x ".repeat(MAX_LEN);
        let cut = summarise(&long);
        assert!(cut.ends_with('…') && cut.chars().count() == MAX_LEN + 1, "{cut}");
    }

    #[test]
    fn a_document_that_does_not_parse_is_not_invented_into_one() {
        let odd = "Server returned non-2xx status code: 500 Internal Server Error: {not json";
        assert_eq!(summarise(odd), odd);
    }
}
