//! Why the hub did not carry out a request, as the user API tells its clients. The hub says it
//! and the CLI reads it through one mapping ([`crate::convert`]), so both sides agree on what was
//! the user's doing and what was not.

/// Why the hub did not carry out a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The user asked for something the hub refuses.
    Refused(Refusal),
    /// What the request needs is not there now (a cluster's agent that is not connected, a hub
    /// that is stopping): worth trying again later.
    Unavailable,
    /// The hub failed it (its own records, a location that did not answer as it should).
    Failed,
}

/// Why the hub refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A value the hub does not accept (a name, a spec, a timetable).
    Invalid,
    /// The named object does not exist.
    NotFound,
    /// An object of that name exists already.
    Exists,
    /// Not allowed (a location outside the cluster's workspace).
    Denied,
    /// Not possible in the present state (a location in use, a backup not restorable yet).
    Precondition,
    /// The caller is not who it must be: a join token unknown, used or expired, a certificate
    /// revoked or of an older enrolment.
    Unauthenticated,
}
