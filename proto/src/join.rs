//! A join token: what `cairn cluster add` prints and `cairn-agent --join` takes. It carries
//! where the hub is, the SHA-256 fingerprint of the hub's CA (the agent trusts only a hub
//! presenting that CA: no CA file to copy, no trust on first use), a one-time secret and when
//! the secret expires. Written `cairn-join-v1.<base64url of JSON>`: one line for a Secret or an
//! environment variable.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::model::Timestamp;

const PREFIX: &str = "cairn-join-v1.";

/// A join token.
#[derive(Clone)]
pub struct JoinToken {
    /// The hub's URL, `https://…`.
    pub hub: String,
    /// Hex SHA-256 of the hub's CA certificate (DER).
    pub ca_sha256: String,
    /// The one-time secret.
    pub secret: SecretString,
    /// When the secret stops working.
    pub expires: Timestamp,
}

/// Text that is not a join token.
#[derive(Debug, thiserror::Error)]
#[error("not a join token ({0}): expected what `cairn cluster add` printed, cairn-join-v1.…")]
pub struct InvalidJoinToken(&'static str);

#[derive(Serialize, Deserialize)]
struct Wire {
    hub: String,
    ca_sha256: String,
    secret: String,
    expires_unix_ms: i64,
}

impl JoinToken {
    /// As printed.
    pub fn encode(&self) -> String {
        let wire = Wire {
            hub: self.hub.clone(),
            ca_sha256: self.ca_sha256.clone(),
            secret: self.secret.expose_secret().to_owned(),
            expires_unix_ms: self.expires.unix_ms(),
        };
        let json = serde_json::to_vec(&wire).unwrap_or_default();
        format!("{PREFIX}{}", BASE64URL.encode(json))
    }

    /// From what was printed (surrounding whitespace ignored: it often comes from a file).
    pub fn parse(text: &str) -> Result<Self, InvalidJoinToken> {
        let body = text
            .trim()
            .strip_prefix(PREFIX)
            .ok_or(InvalidJoinToken("no cairn-join-v1. prefix"))?;
        let json = BASE64URL
            .decode(body)
            .map_err(|_| InvalidJoinToken("not base64url"))?;
        let wire: Wire = serde_json::from_slice(&json).map_err(|_| InvalidJoinToken("not its JSON"))?;
        if wire.ca_sha256.len() != 64 || !wire.ca_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidJoinToken("the CA fingerprint is not a hex SHA-256"));
        }
        Ok(Self {
            hub: wire.hub,
            ca_sha256: wire.ca_sha256.to_ascii_lowercase(),
            secret: wire.secret.into(),
            expires: Timestamp::from_unix_ms(wire.expires_unix_ms).ok_or(InvalidJoinToken("no expiry"))?,
        })
    }
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinToken")
            .field("hub", &self.hub)
            .field("ca_sha256", &self.ca_sha256)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Hex SHA-256 of `der`: a certificate's fingerprint.
pub fn fingerprint(der: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_its_debug_hides_the_secret() {
        let token = JoinToken {
            hub: "https://hub.example:7443".into(),
            ca_sha256: "ab".repeat(32),
            secret: "s3cr3t-join".to_owned().into(),
            expires: Timestamp::from_unix_ms(1_800_000_000_000).expect("time"),
        };
        let text = token.encode();
        assert!(text.starts_with("cairn-join-v1."));
        let back = JoinToken::parse(&format!("  {text}\n")).expect("parses");
        assert_eq!(back.hub, token.hub);
        assert_eq!(back.secret.expose_secret(), "s3cr3t-join");
        assert_eq!(back.expires, token.expires);
        assert!(!format!("{back:?}").contains("s3cr3t"));
        for bad in ["", "cairn-join-v1.", "cairn-join-v1.!!", "abc.def"] {
            assert!(JoinToken::parse(bad).is_err(), "{bad:?} parsed");
        }
        let wrong_pin = JoinToken {
            ca_sha256: "xyz".into(),
            ..token
        };
        assert!(
            JoinToken::parse(&wrong_pin.encode())
                .expect_err("bad pin")
                .to_string()
                .contains("not a hex SHA-256")
        );
    }
}
