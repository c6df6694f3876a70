//! The runtime's transports over the simulated network: WebSocket connects on turmoil streams,
//! and HTTP through hyper-util over the same streams (reqwest cannot run inside turmoil).

use std::time::Duration;

use keel_core::engine::scheduler::HttpError;
use keel_runtime::transport::{
    BoxFuture, Connector, HttpTransport, Io, PrivateReply, SignedRequest, rate_limit_of,
};

use crate::harness::{SimHttpError, TurmoilHttp};

/// Connects to hosts of the simulation.
pub struct SimConnector;

impl Connector for SimConnector {
    fn connect(&self, host: String, port: u16) -> BoxFuture<std::io::Result<Box<dyn Io>>> {
        Box::pin(async move {
            let s = turmoil::net::TcpStream::connect((host.as_str(), port)).await?;
            Ok(Box::new(s) as Box<dyn Io>)
        })
    }
}

/// GETs on the simulated network, with the runtime's error kinds.
pub struct SimHttp(pub TurmoilHttp);

impl HttpTransport for SimHttp {
    fn get(&self, url: String, timeout: Duration) -> BoxFuture<Result<(u16, String), HttpError>> {
        let c = self.0.clone();
        Box::pin(async move {
            c.get(&url, timeout).await.map_err(|e| match e {
                SimHttpError::Timeout => HttpError::Timeout,
                SimHttpError::Connect(s) => HttpError::Connect(s),
                SimHttpError::Other(s) => HttpError::Other(s),
            })
        })
    }

    fn send(
        &self,
        req: SignedRequest,
        timeout: Duration,
    ) -> BoxFuture<Result<PrivateReply, HttpError>> {
        let c = self.0.clone();
        Box::pin(async move {
            let (status, body, headers) = c
                .request(req.post, &req.url, &req.headers, req.body, timeout)
                .await
                .map_err(|e| match e {
                    SimHttpError::Timeout => HttpError::Timeout,
                    SimHttpError::Connect(s) => HttpError::Connect(s),
                    SimHttpError::Other(s) => HttpError::Other(s),
                })?;
            Ok(PrivateReply {
                status,
                body,
                limit: rate_limit_of(&headers),
            })
        })
    }
}
