//! The hub's gRPC surface: the agent channel ([`agent`]), enrolment ([`enrol`]) and the user API
//! ([`user`]), served on one port. The only place in the hub that touches wire types.

pub mod agent;
pub mod enrol;
pub mod user;

use cairn_proto::model::{Denial, Refusal};
use cairn_proto::pb;
use tonic::Status;

use crate::operations::{self, Hub};

pub use cairn_proto::MAX_MESSAGE;

/// Serves both services on `listener`, over TLS with `tls`, until `shutdown` resolves.
pub async fn serve(
    hub: Hub,
    listener: tokio::net::TcpListener,
    tls: crate::pki::Tls,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    use tokio_stream::StreamExt;
    // No Nagle: small replies (a `backup list`, an instruction) leave at once instead of waiting
    // out the peer's delayed ACK (40 ms on Linux).
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
        conn.and_then(|c| {
            c.set_nodelay(true)?;
            Ok(c)
        })
    });
    // The chain holds the CA too: an agent holding only a join token checks it against the
    // token's fingerprint.
    let chain = if tls.cert_pem.contains(tls.ca_pem.trim()) {
        tls.cert_pem.clone()
    } else {
        format!("{}\n{}", tls.cert_pem.trim_end(), tls.ca_pem)
    };
    let identity = tonic::transport::Identity::from_pem(chain, &tls.key_pem);
    // Agents present a certificate the agents' CA issued; users and enrolling agents none.
    let clients = tonic::transport::Certificate::from_pem(hub.client_ca_pem());
    tonic::transport::Server::builder()
        .tls_config(
            tonic::transport::ServerTlsConfig::new()
                .identity(identity)
                .client_ca_root(clients)
                .client_auth_optional(true),
        )?
        .add_service(
            pb::agent_channel_server::AgentChannelServer::new(agent::AgentChannel::new(hub.clone()))
                .max_decoding_message_size(agent::AGENT_MESSAGE_MAX),
        )
        .add_service(pb::enrolment_server::EnrolmentServer::new(enrol::Enrolment::new(
            hub.clone(),
        )))
        .add_service(
            pb::cairn_server::CairnServer::new(user::UserApi::new(hub))
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

impl From<operations::Error> for Status {
    fn from(e: operations::Error) -> Self {
        e.denial().status(cairn_proto::error_chain(&e))
    }
}

/// A request field that does not convert to a domain value.
pub fn invalid(e: &cairn_proto::convert::Error) -> Status {
    Denial::Refused(Refusal::Invalid).status(cairn_proto::error_chain(e))
}
