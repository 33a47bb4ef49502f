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
        decode_message(bytes)
    }
}

/// [`Wire::decode`] as every type has it, for types that check more first.
/// `bytes` decoded as a message whose repeated top-level field 1 (`field`, for the error) holds
/// at most `max` elements (`what` they are), counted before anything is decoded.
fn decode_list<T: Wire>(bytes: &[u8], field: &'static str, max: usize, what: &str) -> Result<T> {
    let found = occurrences(bytes, 1);
    if found > max {
        return Err(Error::field(
            field,
            format!("{found} {what}, more than the {max} a part holds"),
        ));
    }
    decode_message(bytes)
}

fn decode_message<T: Wire>(bytes: &[u8]) -> Result<T> {
    let pb = T::Pb::decode(bytes).map_err(|source| Error::Decode {
        message: std::any::type_name::<T>(),
        source,
    })?;
    T::from_pb(pb)
}

/// How many times field `field` occurs at the top level of the protobuf message `bytes`, counted
/// without decoding it, up to where the bytes stop being a message (where prost stops too). A
/// list the format bounds is checked with it before it is decoded: prost builds every element
/// first, and an empty element, two bytes on the wire, takes a hundred in memory.
fn occurrences(bytes: &[u8], field: u32) -> usize {
    fn varint(rest: &mut &[u8]) -> Option<u64> {
        let mut value = 0_u64;
        for shift in (0..64).step_by(7) {
            let (&byte, tail) = rest.split_first()?;
            *rest = tail;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(value);
            }
        }
        None
    }
    let mut rest = bytes;
    let mut count = 0;
    while let Some(key) = varint(&mut rest) {
        if key >> 3 == u64::from(field) {
            count += 1;
        }
        let skip = match key & 7 {
            0 => varint(&mut rest).map(|_| 0),
            1 => Some(8),
            2 => varint(&mut rest).and_then(|len| usize::try_from(len).ok()),
            5 => Some(4),
            // Groups: Cairn writes none, and prost refuses those of its own fields.
            _ => None,
        };
        match skip.and_then(|n| rest.get(n..)) {
            Some(tail) => rest = tail,
            None => break,
        }
    }
    count
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
            last_success_unix_ms: ms(self.last_success),
            rpo_at_risk: self.rpo_at_risk,
            spool_bytes: self.spool_bytes,
            spool_backups: self.spool_backups,
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
            last_success: Timestamp::from_unix_ms(m.last_success_unix_ms),
            rpo_at_risk: m.rpo_at_risk,
            spool_bytes: m.spool_bytes,
            spool_backups: m.spool_backups,
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
