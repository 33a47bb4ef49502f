//! Cairn's contract between hub, agent and bucket.
//!
//! Owns the gRPC services (agent channel, user API), the on-bucket formats both sides read, and
//! the one conversion between wire types and domain types. The vertical-slice issue fills it in.
