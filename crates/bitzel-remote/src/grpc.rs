//! [`Engine`]: a blocking client of a REAPI engine's gRPC services (CAS,
//! ByteStream, ActionCache, Execution, and the Remote Workers `Bots`
//! service), over one HTTP/2 channel driven by a private tokio runtime, so
//! the rest of bitzel (thread pools, the runqueue) stays synchronous.
//! Call it from plain threads, never from inside a tokio runtime.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request};
use tonic_prost::ProstCodec;

use crate::proto::*;
use crate::RemoteExecError as Error;
use bitzel_cache::remote::AuthHeader;

/// Blobs up to this size travel in `BatchUpdateBlobs`/`BatchReadBlobs`
/// requests, whose total stays under it too (BuildGrid refuses batches of
/// about 4 MiB); larger blobs go through ByteStream.
pub const MAX_BATCH_BYTES: usize = 3 << 20;
/// ByteStream chunk size.
const CHUNK: usize = 1 << 20;

/// Where the engine is and how to talk to it.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `grpc://host:port` or `grpcs://host:port` (TLS with the system's roots).
    pub url: String,
    /// The REAPI instance name (may be empty).
    pub instance: String,
    /// A header sent with every call (`--remote-header-env`).
    pub auth: Option<AuthHeader>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Deadline of each unary call.
    pub call_timeout: Duration,
}

impl EngineConfig {
    /// Defaults for `url` and `instance`.
    pub fn new(url: &str, instance: &str) -> EngineConfig {
        EngineConfig {
            url: url.trim().trim_end_matches('/').to_string(),
            instance: instance.trim_matches('/').to_string(),
            auth: None,
            connect_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(60),
        }
    }
}

/// A connection to one engine. Cheap to share by reference across threads.
#[derive(Debug)]
pub struct Engine {
    rt: tokio::runtime::Runtime,
    channel: Channel,
    config: EngineConfig,
    auth: Option<(AsciiMetadataKey, AsciiMetadataValue)>,
}

/// Blobs read: each digest with its content, `None` when absent.
pub type ReadBlobs = Vec<(Digest, Option<Vec<u8>>)>;

/// Sees each chunk of an upload (`Some`), then says at the end (`None`)
/// whether the content may be committed.
pub type ChunkCheck = Box<dyn FnMut(Option<&[u8]>) -> bool + Send>;

/// What `Execute` ended with.
#[derive(Debug, Clone)]
pub struct Executed {
    /// The engine's response.
    pub response: ExecuteResponse,
}

impl Engine {
    /// Set up the channel (connected lazily: the first call tells whether
    /// the engine is reachable).
    pub fn new(config: EngineConfig) -> Result<Engine, Error> {
        let bad = |reason: String| Error::BadEndpoint {
            url: config.url.clone(),
            reason,
        };
        let (tls, rest) = if let Some(r) = config.url.strip_prefix("grpcs://") {
            (true, r)
        } else if let Some(r) = config.url.strip_prefix("grpc://") {
            (false, r)
        } else {
            return Err(bad("the scheme must be grpc:// or grpcs://".into()));
        };
        if rest.is_empty() || rest.contains('/') || rest.contains('@') {
            return Err(bad(
                "expected grpc://host:port (no path, no credentials: use an auth header from the environment)"
                    .into(),
            ));
        }
        let uri = format!("{}://{rest}", if tls { "https" } else { "http" });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bitzel-grpc")
            .enable_all()
            .build()
            .map_err(|e| bad(format!("cannot start the gRPC runtime: {e}")))?;
        let mut ep = Endpoint::from_shared(uri)
            .map_err(|e| bad(e.to_string()))?
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_while_idle(true);
        if tls {
            ep = ep
                .tls_config(ClientTlsConfig::new().with_native_roots())
                .map_err(|e| bad(e.to_string()))?;
        }
        let channel = {
            let _g = rt.enter();
            ep.connect_lazy()
        };
        let auth = match &config.auth {
            Some(a) => {
                let k = AsciiMetadataKey::from_bytes(a.name().to_ascii_lowercase().as_bytes())
                    .map_err(|_| bad(format!("`{}` is not a usable gRPC header name", a.name())))?;
                let v = AsciiMetadataValue::try_from(a.value())
                    .map_err(|_| bad("the auth header's value is not ASCII".into()))?;
                Some((k, v))
            }
            None => None,
        };
        Ok(Engine {
            rt,
            channel,
            config,
            auth,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The instance name.
    pub fn instance(&self) -> &str {
        &self.config.instance
    }

    fn request<T>(&self, msg: T, timeout: Option<Duration>) -> Request<T> {
        let mut r = Request::new(msg);
        if let Some(t) = timeout {
            r.set_timeout(t);
        }
        if let Some((k, v)) = &self.auth {
            r.metadata_mut().insert(k.clone(), v.clone());
        }
        r
    }

    fn err(&self, op: &'static str, status: tonic::Status) -> Error {
        Error::Call {
            op,
            url: self.config.url.clone(),
            code: status.code(),
            message: status.message().to_string(),
        }
    }

    /// One unary call with the default deadline.
    fn unary<Q, R>(&self, op: &'static str, path: &'static str, msg: Q) -> Result<R, Error>
    where
        Q: prost::Message + Send + Sync + 'static,
        R: prost::Message + Default + Send + Sync + 'static,
    {
        self.unary_timeout(op, path, msg, self.config.call_timeout)
    }

    /// One unary call with deadline `timeout`.
    pub(crate) fn unary_timeout<Q, R>(
        &self,
        op: &'static str,
        path: &'static str,
        msg: Q,
        timeout: Duration,
    ) -> Result<R, Error>
    where
        Q: prost::Message + Send + Sync + 'static,
        R: prost::Message + Default + Send + Sync + 'static,
    {
        let req = self.request(msg, Some(timeout));
        let mut g = tonic::client::Grpc::new(self.channel.clone());
        self.rt
            .block_on(async move {
                g.ready()
                    .await
                    .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
                g.unary(
                    req,
                    PathAndQuery::from_static(path),
                    ProstCodec::<Q, R>::default(),
                )
                .await
            })
            .map(tonic::Response::into_inner)
            .map_err(|s| self.err(op, s))
    }

    /// `FindMissingBlobs`.
    pub fn find_missing(&self, blobs: &[Digest]) -> Result<Vec<Digest>, Error> {
        let mut missing = Vec::new();
        for chunk in blobs.chunks(10_000) {
            let r: FindMissingBlobsResponse = self.unary(
                "FindMissingBlobs",
                "/build.bazel.remote.execution.v2.ContentAddressableStorage/FindMissingBlobs",
                FindMissingBlobsRequest {
                    instance_name: self.config.instance.clone(),
                    blob_digests: chunk.to_vec(),
                },
            )?;
            missing.extend(r.missing_blob_digests);
        }
        Ok(missing)
    }

    /// `BatchUpdateBlobs` of blobs whose total is at most [`MAX_BATCH_BYTES`].
    pub fn batch_update(&self, blobs: Vec<(Digest, Vec<u8>)>) -> Result<(), Error> {
        let r: BatchUpdateBlobsResponse = self.unary(
            "BatchUpdateBlobs",
            "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchUpdateBlobs",
            BatchUpdateBlobsRequest {
                instance_name: self.config.instance.clone(),
                requests: blobs
                    .into_iter()
                    .map(|(d, data)| UpdateBlob {
                        digest: Some(d),
                        data,
                    })
                    .collect(),
            },
        )?;
        for resp in r.responses {
            if let Some(s) = resp.status.filter(|s| s.code != 0) {
                return Err(Error::Call {
                    op: "BatchUpdateBlobs",
                    url: self.config.url.clone(),
                    code: Code::from_i32(s.code),
                    message: format!(
                        "blob {}: {}",
                        resp.digest.map(|d| d.hash).unwrap_or_default(),
                        s.message
                    ),
                });
            }
        }
        Ok(())
    }

    /// `BatchReadBlobs`: each blob's content, `None` when the server lacks it.
    pub fn batch_read(&self, blobs: &[Digest]) -> Result<ReadBlobs, Error> {
        let r: BatchReadBlobsResponse = self.unary(
            "BatchReadBlobs",
            "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchReadBlobs",
            BatchReadBlobsRequest {
                instance_name: self.config.instance.clone(),
                digests: blobs.to_vec(),
            },
        )?;
        Ok(r.responses
            .into_iter()
            .filter_map(|resp| {
                let d = resp.digest?;
                let ok = resp.status.as_ref().is_none_or(|s| s.code == 0);
                Some((d, ok.then_some(resp.data)))
            })
            .collect())
    }

    fn resource(&self, d: &Digest) -> String {
        let blob = format!("blobs/{}/{}", d.hash, d.size_bytes);
        if self.config.instance.is_empty() {
            blob
        } else {
            format!("{}/{blob}", self.config.instance)
        }
    }

    /// ByteStream `Read` of blob `d`, each chunk handed to `sink`.
    /// `Ok(false)` when the server lacks it.
    pub fn read_stream(
        &self,
        d: &Digest,
        sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<bool, Error> {
        let req = self.request(
            ReadRequest {
                resource_name: self.resource(d),
                read_offset: 0,
                read_limit: 0,
            },
            None,
        );
        let mut g = tonic::client::Grpc::new(self.channel.clone());
        let idle = self.config.call_timeout;
        let res: Result<bool, Error> = self.rt.block_on(async {
            g.ready()
                .await
                .map_err(|e| self.err("Read", tonic::Status::unavailable(e.to_string())))?;
            let resp = g
                .server_streaming(
                    req,
                    PathAndQuery::from_static("/google.bytestream.ByteStream/Read"),
                    ProstCodec::<ReadRequest, ReadResponse>::default(),
                )
                .await;
            let mut stream = match resp {
                Ok(r) => r.into_inner(),
                Err(s) if s.code() == Code::NotFound => return Ok(false),
                Err(s) => return Err(self.err("Read", s)),
            };
            loop {
                let next = tokio::time::timeout(idle, stream.message())
                    .await
                    .map_err(|_| {
                        self.err("Read", tonic::Status::deadline_exceeded("stream stalled"))
                    })?;
                match next {
                    Ok(Some(chunk)) => sink(&chunk.data).map_err(|source| Error::Local {
                        what: format!("writing blob {}", d.hash),
                        source,
                    })?,
                    Ok(None) => return Ok(true),
                    Err(s) if s.code() == Code::NotFound => return Ok(false),
                    Err(s) => return Err(self.err("Read", s)),
                }
            }
        });
        res
    }

    /// ByteStream `Write` of blob `d` read from `src` (chunks produced on a
    /// plain thread, so memory stays bounded). `check` sees every chunk and,
    /// at the end, may refuse the content (then the write is not finished
    /// and the server keeps nothing).
    pub fn write_stream(
        &self,
        d: &Digest,
        mut src: Box<dyn Read + Send>,
        check: ChunkCheck,
    ) -> Result<(), Error> {
        let name = match self.config.instance.as_str() {
            "" => format!("uploads/{}/blobs/{}/{}", unique_id(), d.hash, d.size_bytes),
            i => format!(
                "{i}/uploads/{}/blobs/{}/{}",
                unique_id(),
                d.hash,
                d.size_bytes
            ),
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<WriteRequest>(4);
        let mut check = check;
        let producer = std::thread::Builder::new()
            .name("bitzel-bytestream".into())
            .spawn(move || -> std::io::Result<bool> {
                let mut off = 0i64;
                let mut first = true;
                loop {
                    let mut buf = vec![0u8; CHUNK];
                    let mut n = 0;
                    while n < buf.len() {
                        let k = src.read(&mut buf[n..])?;
                        if k == 0 {
                            break;
                        }
                        n += k;
                    }
                    buf.truncate(n);
                    let last = n < CHUNK;
                    check(Some(&buf));
                    if last && !check(None) {
                        return Ok(false);
                    }
                    let msg = WriteRequest {
                        resource_name: if first { name.clone() } else { String::new() },
                        write_offset: off,
                        finish_write: last,
                        data: buf,
                    };
                    first = false;
                    off += n as i64;
                    if tx.blocking_send(msg).is_err() || last {
                        return Ok(true);
                    }
                }
            })
            .map_err(|source| Error::Local {
                what: "starting an upload thread".into(),
                source,
            })?;
        let req = self.request(tokio_stream::wrappers::ReceiverStream::new(rx), None);
        let mut g = tonic::client::Grpc::new(self.channel.clone());
        let res = self.rt.block_on(async {
            g.ready()
                .await
                .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
            g.client_streaming(
                req,
                PathAndQuery::from_static("/google.bytestream.ByteStream/Write"),
                ProstCodec::<WriteRequest, WriteResponse>::default(),
            )
            .await
        });
        let produced = producer.join().map_err(|_| Error::Local {
            what: "the upload thread panicked".into(),
            source: std::io::Error::other("panic"),
        })?;
        match produced {
            Ok(true) => {}
            Ok(false) => {
                return Err(Error::Local {
                    what: format!("blob {} changed while it was uploaded; not sent", d.hash),
                    source: std::io::Error::other("content does not match its digest"),
                })
            }
            Err(source) => {
                return Err(Error::Local {
                    what: format!("reading blob {} for upload", d.hash),
                    source,
                })
            }
        }
        let resp = res.map_err(|s| self.err("Write", s))?.into_inner();
        if resp.committed_size != d.size_bytes && resp.committed_size != -1 {
            return Err(Error::Call {
                op: "Write",
                url: self.config.url.clone(),
                code: Code::DataLoss,
                message: format!(
                    "the server committed {} of {} bytes",
                    resp.committed_size, d.size_bytes
                ),
            });
        }
        Ok(())
    }

    /// Upload the file at `path` as blob `d` (ByteStream).
    pub fn write_file(&self, d: &Digest, path: &Path) -> Result<(), Error> {
        let f = std::fs::File::open(path).map_err(|source| Error::Local {
            what: format!("opening {}", path.display()),
            source,
        })?;
        self.write_stream(d, Box::new(f), Box::new(|_| true))
    }

    /// `GetActionResult`: `None` when the cache has no entry.
    pub fn get_action_result(&self, key: &Digest) -> Result<Option<ActionResult>, Error> {
        let r: Result<ActionResult, Error> = self.unary(
            "GetActionResult",
            "/build.bazel.remote.execution.v2.ActionCache/GetActionResult",
            GetActionResultRequest {
                instance_name: self.config.instance.clone(),
                action_digest: Some(key.clone()),
            },
        );
        match r {
            Ok(ar) => Ok(Some(ar)),
            Err(Error::Call {
                code: Code::NotFound,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `UpdateActionResult`.
    pub fn update_action_result(&self, key: &Digest, result: ActionResult) -> Result<(), Error> {
        let _: ActionResult = self.unary(
            "UpdateActionResult",
            "/build.bazel.remote.execution.v2.ActionCache/UpdateActionResult",
            UpdateActionResultRequest {
                instance_name: self.config.instance.clone(),
                action_digest: Some(key.clone()),
                action_result: Some(result),
            },
        )?;
        Ok(())
    }

    /// `Execute` the action `action` and follow its operation to the end
    /// (reconnecting with `WaitExecution` when the stream breaks).
    pub fn execute(&self, action: &Digest) -> Result<Executed, Error> {
        let mut op_name: Option<String> = None;
        let mut broken = 0;
        loop {
            let res = match &op_name {
                None => self.follow(
                    "Execute",
                    "/build.bazel.remote.execution.v2.Execution/Execute",
                    ExecuteRequest {
                        instance_name: self.config.instance.clone(),
                        skip_cache_lookup: false,
                        action_digest: Some(action.clone()),
                    },
                    &mut op_name,
                ),
                Some(n) => self.follow(
                    "WaitExecution",
                    "/build.bazel.remote.execution.v2.Execution/WaitExecution",
                    WaitExecutionRequest { name: n.clone() },
                    &mut op_name,
                ),
            };
            match res {
                Ok(Some(done)) => return Ok(done),
                Ok(None) => {}
                Err(Error::Call { code, .. })
                    if op_name.is_some()
                        && broken < 20
                        && matches!(code, Code::Unavailable | Code::Unknown | Code::Internal) =>
                {
                    broken += 1;
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Read one operation stream: `Some` once the operation is done, `None`
    /// when the stream ended before (follow it again by name).
    fn follow<Q>(
        &self,
        op: &'static str,
        path: &'static str,
        msg: Q,
        op_name: &mut Option<String>,
    ) -> Result<Option<Executed>, Error>
    where
        Q: prost::Message + Send + Sync + 'static,
    {
        let req = self.request(msg, None);
        let mut g = tonic::client::Grpc::new(self.channel.clone());
        self.rt.block_on(async {
            g.ready()
                .await
                .map_err(|e| self.err(op, tonic::Status::unavailable(e.to_string())))?;
            let mut stream = g
                .server_streaming(
                    req,
                    PathAndQuery::from_static(path),
                    ProstCodec::<Q, Operation>::default(),
                )
                .await
                .map_err(|s| self.err(op, s))?
                .into_inner();
            while let Some(o) = stream.message().await.map_err(|s| self.err(op, s))? {
                if !o.name.is_empty() {
                    *op_name = Some(o.name.clone());
                }
                if !o.done {
                    continue;
                }
                if let Some(e) = o.error.filter(|e| e.code != 0) {
                    return Err(Error::Call {
                        op,
                        url: self.config.url.clone(),
                        code: Code::from_i32(e.code),
                        message: e.message,
                    });
                }
                let resp = o
                    .response
                    .filter(|a| a.is(names::EXECUTE_RESPONSE))
                    .ok_or_else(|| Error::Protocol {
                        url: self.config.url.clone(),
                        what: "a finished operation without an ExecuteResponse".into(),
                    })?;
                let response = <ExecuteResponse as prost::Message>::decode(&resp.value[..])
                    .map_err(|e| Error::Protocol {
                        url: self.config.url.clone(),
                        what: format!("an undecodable ExecuteResponse: {e}"),
                    })?;
                return Ok(Some(Executed { response }));
            }
            Ok(None)
        })
    }

    /// `CreateBotSession` (the server may hold the call while it looks for
    /// work, up to `timeout`).
    pub fn create_bot_session(
        &self,
        session: BotSession,
        timeout: Duration,
    ) -> Result<BotSession, Error> {
        self.unary_timeout(
            "CreateBotSession",
            "/google.devtools.remoteworkers.v1test2.Bots/CreateBotSession",
            CreateBotSessionRequest {
                parent: self.config.instance.clone(),
                bot_session: Some(session),
            },
            timeout,
        )
    }

    /// `UpdateBotSession` with the whole session.
    pub fn update_bot_session(
        &self,
        session: BotSession,
        timeout: Duration,
    ) -> Result<BotSession, Error> {
        self.unary_timeout(
            "UpdateBotSession",
            "/google.devtools.remoteworkers.v1test2.Bots/UpdateBotSession",
            UpdateBotSessionRequest {
                name: session.name.clone(),
                bot_session: Some(session),
            },
            timeout,
        )
    }
}

/// A process-unique id for upload resource names.
fn unique_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    // A UUID-shaped name (some engines check the shape).
    let h = blake3_like(format!("{}-{now}-{n}", std::process::id()).as_bytes());
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn blake3_like(b: &[u8]) -> String {
    bitzel_cache::Digest::of_bytes(b).to_hex()
}
