//! The one conversion between wire types ([`crate::pb`]) and domain types ([`crate::model`]).
//!
//! Every model type that crosses a wire or is stored implements [`Wire`]: `to_pb`, `from_pb`
//! (where a field prost leaves optional becomes required or an error) and, from those, the
//! protobuf byte encoding used on the bucket and in the hub's database.

mod access;
mod backup;
mod channel;
mod denial;
mod item;
mod location;
mod restore;
mod schedule;
mod volume;

pub use item::{phase_from_pb, phase_to_pb};

use prost::Message;

use crate::model::{Cluster, JoinGrant, JoinTicket, Location, Timestamp};
use crate::pb;

/// A wire message that does not make a valid domain value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field holds a value the domain refuses.
    #[error("invalid {field}: {reason}")]
    Field {
        /// `Message.field`.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A required field is unset.
    #[error("{field} is missing")]
    Missing {
        /// `Message.field`.
        field: &'static str,
    },
    /// The bytes are not the message.
    #[error("decoding {message}")]
    Decode {
        /// The message type expected.
        message: &'static str,
        /// The cause.
        #[source]
        source: prost::DecodeError,
    },
}

impl Error {
    /// A field whose value the domain refuses.
    pub fn field(field: &'static str, reason: impl ToString) -> Self {
        Self::Field {
            field,
            reason: reason.to_string(),
        }
    }
}

/// Result of a conversion.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A domain type with a wire form.
pub trait Wire: Sized {
    /// The protobuf message.
    type Pb: Message + Default;

    /// To the wire form.
    fn to_pb(&self) -> Self::Pb;

    /// From the wire form, checking it.
    fn from_pb(pb: Self::Pb) -> Result<Self>;

    /// Protobuf bytes.
    fn encode(&self) -> Vec<u8> {
        self.to_pb().encode_to_vec()
    }

    /// From protobuf bytes.
    fn decode(bytes: &[u8]) -> Result<Self> {
        let pb = Self::Pb::decode(bytes).map_err(|source| Error::Decode {
            message: std::any::type_name::<Self>(),
            source,
        })?;
        Self::from_pb(pb)
    }
}

/// Parses a validated name field.
fn name<T: std::str::FromStr>(field: &'static str, value: String) -> Result<T>
where
    T::Err: ToString,
{
    value.parse().map_err(|e: T::Err| Error::field(field, e))
}

/// An optional name: empty is `None`.
fn opt_name<T: std::str::FromStr>(field: &'static str, value: String) -> Result<Option<T>>
where
    T::Err: ToString,
{
    if value.is_empty() {
        Ok(None)
    } else {
        name(field, value).map(Some)
    }
}

fn opt_string(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

fn ms(t: Option<Timestamp>) -> i64 {
    t.map_or(0, Timestamp::unix_ms)
}

/// A field prost leaves optional that the domain requires.
pub fn required<T>(field: &'static str, value: Option<T>) -> Result<T> {
    value.ok_or(Error::Missing { field })
}

impl Wire for Cluster {
    type Pb = pb::Cluster;

    fn to_pb(&self) -> pb::Cluster {
        pb::Cluster {
            name: self.name.to_string(),
            connected: self.connected,
            kubernetes_version: self.kubernetes_version.clone(),
            agent_version: self.agent_version.clone(),
            last_heartbeat_unix_ms: ms(self.last_heartbeat),
            workspace: self
                .workspace
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            revoked: self.revoked,
            generation: self.generation,
            removed: self.removed,
        }
    }

    fn from_pb(m: pb::Cluster) -> Result<Self> {
        Ok(Self {
            name: name("Cluster.name", m.name)?,
            connected: m.connected,
            kubernetes_version: m.kubernetes_version,
            agent_version: m.agent_version,
            last_heartbeat: Timestamp::from_unix_ms(m.last_heartbeat_unix_ms),
            workspace: opt_name("Cluster.workspace", m.workspace)?,
            revoked: m.revoked,
            generation: m.generation,
            removed: m.removed,
        })
    }
}

impl Wire for JoinGrant {
    type Pb = pb::JoinGrant;

    fn to_pb(&self) -> pb::JoinGrant {
        pb::JoinGrant {
            secret: secrecy::ExposeSecret::expose_secret(&self.secret).to_owned(),
            expires_unix: self.expires.unix_ms() / 1000,
            ca_sha256: self.ca_sha256.clone(),
        }
    }

    fn from_pb(m: pb::JoinGrant) -> Result<Self> {
        Ok(Self {
            secret: m.secret.into(),
            expires: Timestamp::from_unix_ms(m.expires_unix.saturating_mul(1000)).ok_or(Error::Missing {
                field: "JoinGrant.expires_unix",
            })?,
            ca_sha256: m.ca_sha256,
        })
    }
}

impl Wire for JoinTicket {
    type Pb = pb::JoinTicket;

    fn to_pb(&self) -> pb::JoinTicket {
        pb::JoinTicket {
            cluster: self.cluster.to_string(),
            expires_unix_ms: self.expires.unix_ms(),
        }
    }

    fn from_pb(m: pb::JoinTicket) -> Result<Self> {
        Ok(Self {
            cluster: name("JoinTicket.cluster", m.cluster)?,
            expires: Timestamp::from_unix_ms(m.expires_unix_ms).ok_or(Error::Missing {
                field: "JoinTicket.expires_unix_ms",
            })?,
        })
    }
}

impl Wire for Location {
    type Pb = pb::Location;

    fn to_pb(&self) -> pb::Location {
        pb::Location {
            name: self.name.to_string(),
            url: self.url.clone(),
            options: self.options.clone().into_iter().collect(),
        }
    }

    fn from_pb(m: pb::Location) -> Result<Self> {
        if m.url.is_empty() {
            return Err(Error::Missing {
                field: "Location.url",
            });
        }
        Ok(Self {
            name: name("Location.name", m.name)?,
            url: m.url,
            options: m.options.into_iter().collect(),
        })
    }
}
