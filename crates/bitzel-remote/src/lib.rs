//! bitzel remote execution on a REAPI v2 engine (BuildGrid, and the client
//! side of any engine).
//!
//! - [`proto`]: the REAPI, ByteStream, long-running-operation and Remote
//!   Workers messages bitzel uses, declared by hand with `prost`.
//! - [`grpc::Engine`]: a blocking client of the engine's services.
//! - [`transport::GrpcTransport`]: the remote cache over the engine, so the
//!   cache level's checks are the HTTP cache's.
//! - [`client::RemoteExecutor`]: `bitzel build --remote-executor`: each miss
//!   becomes an `Action` with an input root, uploaded and `Execute`d.
//! - [`worker`]: `bitzel worker`, a bot of the Remote Workers API that runs
//!   leases with [`bitzel_exec::executor::BuildExecutor::run_job`].

pub mod client;
pub mod grpc;
pub mod input;
pub mod proto;
pub mod transport;
pub mod worker;

use std::path::Path;
use std::sync::Arc;

use bitzel_cache::remote::store::HttpStore;
use bitzel_cache::remote::{RemoteCache, RemoteConfig};

pub use client::RemoteExecutor;
pub use grpc::{Engine, EngineConfig};

/// Errors of the remote-execution client and worker.
#[derive(Debug, thiserror::Error)]
pub enum RemoteExecError {
    /// The endpoint URL or its settings are unusable.
    #[error("remote executor `{url}`: {reason}")]
    BadEndpoint {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A call failed.
    #[error("{op} on {url} failed: {code:?}: {message}{hint}", hint = hint(*code))]
    Call {
        /// The RPC.
        op: &'static str,
        /// The engine.
        url: String,
        /// The gRPC status code.
        code: tonic::Code,
        /// The server's message.
        message: String,
    },
    /// The engine answered something bitzel cannot use.
    #[error("the engine at {url} sent {what}")]
    Protocol {
        /// The engine.
        url: String,
        /// What it sent.
        what: String,
    },
    /// A local file or thread could not be used.
    #[error("{what}: {source}")]
    Local {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The local cache failed.
    #[error("local cache: {0}")]
    Cache(#[from] bitzel_cache::Error),
}

fn hint(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Unavailable => {
            " (is the engine running and reachable? check the host and port)"
        }
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
            " (check the auth header variable)"
        }
        _ => "",
    }
}

/// The engine as a remote-cache level of `cache` (its `ActionCache` and
/// CAS, SHA-256 names mapped to BLAKE3 in `<cache>/remote-sha256`).
pub fn cache_level(
    engine: Arc<Engine>,
    config: RemoteConfig,
    cache: &bitzel_cache::Cache,
) -> Result<HttpStore, bitzel_cache::remote::RemoteError> {
    let map_dir = cache.root().join("remote-sha256");
    let remote = RemoteCache::with_transport(config, Some(Path::new(&map_dir)), &|_, stats| {
        Box::new(transport::GrpcTransport::new(engine.clone(), stats))
    })?;
    Ok(HttpStore::with_remote(remote, Some(cache.cas().clone())))
}
