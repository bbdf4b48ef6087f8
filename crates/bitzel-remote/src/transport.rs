//! [`GrpcTransport`]: the remote cache's [`BlobTransport`] over a REAPI
//! engine, so `--remote-cache grpc://…` and the executor's own cache level
//! reuse every check of the HTTP remote cache (verified downloads, the
//! BLAKE3→SHA-256 map, hostile-entry handling, the give-up-once policy).
//!
//! | cache operation | REAPI call |
//! | --- | --- |
//! | `GET cas/<sha256>` | `BatchReadBlobs` (≤ [`MAX_BATCH_BYTES`]) or ByteStream `Read` |
//! | `PUT cas/<sha256>` | `BatchUpdateBlobs` (≤ [`MAX_BATCH_BYTES`]) or ByteStream `Write` |
//! | `HEAD cas/<sha256>` | `FindMissingBlobs` |
//! | `GET`/`PUT ac/<name>` | `GetActionResult`/`UpdateActionResult` of digest (`name`, [`AC_KEY_SIZE`]) |
//!
//! gRPC names a blob by hash *and* size: a blob whose size is not known is
//! treated as absent (the remote cache always knows it for what it fetches).

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sha2::Digest as _;
use tonic::Code;

use bitzel_cache::remote::stats::RemoteStats;
use bitzel_cache::remote::{Attempt, BlobTransport, Gate, Namespace, Received, RemoteError};
use bitzel_cache::Digest as B3;

use crate::grpc::{Engine, MAX_BATCH_BYTES};
use crate::proto::{ActionResult, Digest};
use crate::RemoteExecError;

/// The size bitzel gives the digest of an action-cache key: the length of
/// the preimage the remote cache hashes (`bitzel/ac/v1\0` and the 32-byte key).
pub const AC_KEY_SIZE: i64 = 13 + 32;

/// The remote cache's transport over an [`Engine`].
#[derive(Debug)]
pub struct GrpcTransport {
    engine: Arc<Engine>,
    gate: Gate,
    stats: Arc<RemoteStats>,
}

impl GrpcTransport {
    /// A transport over `engine`, counting into `stats`.
    pub fn new(engine: Arc<Engine>, stats: Arc<RemoteStats>) -> GrpcTransport {
        GrpcTransport {
            gate: Gate::new(
                engine.config().url.clone(),
                3,
                Duration::from_millis(100),
                stats.clone(),
            ),
            engine,
            stats,
        }
    }

    /// Run `call` under the remote cache's retry policy ([`Gate`]):
    /// transient codes are retried; the remote is given up when it keeps
    /// failing or refuses access.
    fn run<T>(
        &self,
        what: &str,
        call: &dyn Fn() -> Result<T, RemoteExecError>,
    ) -> Result<T, RemoteError> {
        self.gate.run(what, || match call() {
            Ok(v) => Attempt::Done(v),
            Err(RemoteExecError::Local { what, source }) => Attempt::Fail(RemoteError::Local {
                digest: B3([0; 32]),
                source: format!("{what}: {source}").into(),
            }),
            Err(e) if e.is_transient() => Attempt::Retry(e.to_string()),
            Err(e) => Attempt::GiveUp(e.to_string()),
        })
    }

    fn digest(hex: &str, size: u64) -> Digest {
        Digest {
            hash: hex.to_string(),
            size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
        }
    }

    fn read_all(&self, d: &Digest, limit: u64) -> Result<Option<Vec<u8>>, RemoteExecError> {
        if d.size_bytes as u64 > limit {
            return Ok(None);
        }
        if (d.size_bytes as usize) <= MAX_BATCH_BYTES {
            let got = self.engine.batch_read(std::slice::from_ref(d))?;
            return Ok(got.into_iter().find(|(g, _)| g == d).and_then(|(_, b)| b));
        }
        let mut buf = Vec::new();
        let found = self.engine.read_stream(d, &mut |chunk| {
            if (buf.len() + chunk.len()) as u64 > limit {
                return Err(std::io::Error::other("larger than expected"));
            }
            buf.extend_from_slice(chunk);
            Ok(())
        })?;
        Ok(found.then_some(buf))
    }
}

impl BlobTransport for GrpcTransport {
    fn is_down(&self) -> bool {
        self.gate.is_down()
    }

    fn display_url(&self) -> &str {
        self.gate.display_url()
    }

    fn give_up(&self, reason: &str) {
        self.gate.give_up(reason)
    }

    fn get(
        &self,
        ns: Namespace,
        hex: &str,
        size: Option<u64>,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        match ns {
            Namespace::Ac => {
                let key = Digest {
                    hash: hex.to_string(),
                    size_bytes: AC_KEY_SIZE,
                };
                let got = self.run("GetActionResult", &|| self.engine.get_action_result(&key))?;
                Ok(got.map(|ar| prost::Message::encode_to_vec(&ar)))
            }
            Namespace::Cas => {
                let Some(size) = size else {
                    tracing::debug!(blob = hex, "blob of unknown size: not requested over gRPC");
                    return Ok(None);
                };
                let d = Self::digest(hex, size);
                let got = self.run("read blob", &|| self.read_all(&d, limit))?;
                if let Some(b) = &got {
                    self.stats.note_download(b.len() as u64);
                }
                Ok(got)
            }
        }
    }

    fn get_to_file(
        &self,
        ns: Namespace,
        hex: &str,
        size: Option<u64>,
        limit: u64,
        out: &mut File,
        out_path: &Path,
        want_sha256: bool,
    ) -> Result<Option<Received>, RemoteError> {
        let (Namespace::Cas, Some(size)) = (ns, size) else {
            return Ok(None);
        };
        if size > limit {
            return Ok(None);
        }
        let d = Self::digest(hex, size);
        let got = self.run("ByteStream Read", &|| {
            out.set_len(0)
                .and_then(|()| std::io::Seek::rewind(&mut &*out))
                .map_err(|source| RemoteExecError::Local {
                    what: format!("truncating {}", out_path.display()),
                    source,
                })?;
            let mut b3 = blake3::Hasher::new();
            let mut sha = sha2::Sha256::new();
            let mut len = 0u64;
            let mut w = &*out;
            let found = self.engine.read_stream(&d, &mut |chunk| {
                len += chunk.len() as u64;
                if len > limit {
                    return Err(std::io::Error::other("larger than expected"));
                }
                b3.update(chunk);
                if want_sha256 {
                    sha.update(chunk);
                }
                w.write_all(chunk)
            })?;
            Ok(found.then(|| Received {
                len,
                blake3: B3(*b3.finalize().as_bytes()),
                sha256: want_sha256.then(|| sha.clone().finalize().into()),
            }))
        })?;
        if let Some(r) = &got {
            self.stats.note_download(r.len);
        }
        Ok(got)
    }

    fn head(&self, ns: Namespace, hex: &str, size: Option<u64>) -> Result<bool, RemoteError> {
        let (Namespace::Cas, Some(size)) = (ns, size) else {
            return Ok(false);
        };
        let d = Self::digest(hex, size);
        let missing = self.run("FindMissingBlobs", &|| {
            self.engine.find_missing(std::slice::from_ref(&d))
        })?;
        Ok(missing.is_empty())
    }

    fn put(&self, ns: Namespace, hex: &str, body: &[u8]) -> Result<(), RemoteError> {
        match ns {
            Namespace::Ac => {
                let ar = <ActionResult as prost::Message>::decode(body).map_err(|e| {
                    RemoteError::Local {
                        digest: B3([0; 32]),
                        source: format!("an action-cache entry that does not decode: {e}").into(),
                    }
                })?;
                let key = Digest {
                    hash: hex.to_string(),
                    size_bytes: AC_KEY_SIZE,
                };
                self.run("UpdateActionResult", &|| {
                    self.engine.update_action_result(&key, ar.clone())
                })
            }
            Namespace::Cas => {
                let d = Self::digest(hex, body.len() as u64);
                self.run("upload blob", &|| {
                    if body.len() <= MAX_BATCH_BYTES {
                        self.engine.batch_update(vec![(d.clone(), body.to_vec())])
                    } else {
                        self.engine.write_stream(
                            &d,
                            Box::new(std::io::Cursor::new(body.to_vec())),
                            Box::new(|_| true),
                        )
                    }
                })?;
                self.stats.note_upload(body.len() as u64);
                Ok(())
            }
        }
    }

    fn put_file(
        &self,
        ns: Namespace,
        hex: &str,
        path: &Path,
        expected: &B3,
    ) -> Result<(), RemoteError> {
        let size = std::fs::metadata(path)
            .map_err(|source| RemoteError::LocalFile {
                digest: *expected,
                path: path.to_path_buf(),
                source,
            })?
            .len();
        if ns == Namespace::Ac || size as usize <= MAX_BATCH_BYTES {
            let body = std::fs::read(path).map_err(|source| RemoteError::LocalFile {
                digest: *expected,
                path: path.to_path_buf(),
                source,
            })?;
            if B3::of_bytes(&body) != *expected {
                return Err(RemoteError::CorruptLocal {
                    digest: *expected,
                    path: path.to_path_buf(),
                });
            }
            return self.put(ns, hex, &body);
        }
        let d = Self::digest(hex, size);
        let want = *expected;
        let res = self.run("ByteStream Write", &|| {
            let f = File::open(path).map_err(|source| RemoteExecError::Local {
                what: format!("opening {}", path.display()),
                source,
            })?;
            let mut h = blake3::Hasher::new();
            self.engine.write_stream(
                &d,
                Box::new(f),
                Box::new(move |chunk| match chunk {
                    Some(c) => {
                        h.update(c);
                        true
                    }
                    None => B3(*h.finalize().as_bytes()) == want,
                }),
            )
        });
        match res {
            Ok(()) => {
                self.stats.note_upload(size);
                Ok(())
            }
            Err(RemoteError::Local { .. }) => Err(RemoteError::CorruptLocal {
                digest: *expected,
                path: path.to_path_buf(),
            }),
            Err(e) => Err(e),
        }
    }
}

impl RemoteExecError {
    /// Worth retrying: the engine is busy, restarting or briefly unreachable.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RemoteExecError::Call {
                code: Code::Unavailable
                    | Code::DeadlineExceeded
                    | Code::ResourceExhausted
                    | Code::Aborted
                    | Code::Unknown,
                ..
            }
        )
    }
}
