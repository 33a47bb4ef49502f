//! The `Enrolment` service: how an agent without a certificate gets one. Served without a
//! client certificate; a join secret (cluster agents) or a vouched-for service-account token
//! (node agents) stands for one.

use cairn_proto::pb;
use tonic::{Request, Response, Status};

use crate::operations::Hub;

/// Largest certificate request or service-account token taken: each is a few KiB, and anyone who
/// reaches the hub may send one.
pub const MAX_REQUEST: usize = 64 << 10;

/// Refuses `field` if it is larger than [`MAX_REQUEST`].
pub fn bounded(what: &str, field: &str) -> Result<(), Status> {
    if field.len() > MAX_REQUEST {
        return Err(Status::invalid_argument(format!(
            "{what} of {} bytes: at most {MAX_REQUEST} bytes",
            field.len()
        )));
    }
    Ok(())
}

/// The `Enrolment` service.
pub struct Enrolment {
    hub: Hub,
}

impl Enrolment {
    /// Over `hub`.
    pub fn new(hub: Hub) -> Self {
        Self { hub }
    }
}

#[tonic::async_trait]
impl pb::enrolment_server::Enrolment for Enrolment {
    async fn join(
        &self,
        request: Request<pb::JoinRequest>,
    ) -> Result<Response<pb::IssuedCertificate>, Status> {
        let peer = request.remote_addr();
        let pb::JoinRequest { secret, csr_pem } = request.into_inner();
        bounded("certificate request", &csr_pem)?;
        let joined = self.hub.join(&secret.into(), &csr_pem).await;
        let (who, outcome) = match &joined {
            Ok((_, cluster)) => (format!("agent of cluster {cluster}"), Ok(())),
            Err(e) => (format!("{peer:?}"), Err(cairn_proto::error_chain(e))),
        };
        self.hub.audit(&who, "join", "enrolment", outcome).await;
        let (issued, cluster) = joined?;
        Ok(Response::new(pb::IssuedCertificate {
            cert_pem: issued.cert_pem,
            cluster: cluster.to_string(),
        }))
    }

    async fn join_node(
        &self,
        request: Request<pb::JoinNodeRequest>,
    ) -> Result<Response<pb::IssuedCertificate>, Status> {
        let peer = request.remote_addr();
        let pb::JoinNodeRequest {
            cluster,
            node,
            csr_pem,
            token,
        } = request.into_inner();
        bounded("certificate request", &csr_pem)?;
        bounded("service-account token", &token)?;
        let cluster = cluster
            .parse()
            .map_err(|e: cairn_proto::model::InvalidName| Status::invalid_argument(e.to_string()))?;
        let issued = self
            .hub
            .join_node(&cluster, &node, &csr_pem, token.into())
            .await
            .inspect_err(
                |e| tracing::warn!(?peer, %cluster, %node, error = %e, "node agent's join refused"),
            )?;
        Ok(Response::new(pb::IssuedCertificate {
            cert_pem: issued.cert_pem,
            cluster: cluster.to_string(),
        }))
    }
}
