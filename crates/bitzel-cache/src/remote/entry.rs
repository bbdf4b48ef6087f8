//! bitzel's action result as a REAPI `ActionResult`, so an HTTP cache that
//! validates `ac/` entries (bazel-remote, Buildbarn, BuildBuddy) accepts it.
//!
//! | REAPI field | bitzel content |
//! | --- | --- |
//! | `exit_code` | the task's exit status |
//! | `stdout_digest` / `stderr_digest` | the task's log blobs |
//! | `execution_metadata` | worker `bitzel`, start/completion timestamps |
//! | `output_files[".bitzel/result"]` | bitzel's own encoded result (a `cas/` blob) |
//! | `output_files[".bitzel/cas/<blake3 hex>"]` | every other blob the result references |
//!
//! So an `ac/` entry references only blobs in `cas/`, a validating server
//! checks all of them, and the `.bitzel/cas/` paths carry the BLAKE3 name of
//! each blob next to its server-side digest: with the `sha256` digest
//! function a fresh machine learns the BLAKE3→SHA-256 map from the entry.

use prost::Message;

use super::proto;
use super::RemoteError;
use crate::digest::Digest;

/// The output path holding bitzel's encoded result.
pub const RESULT_PATH: &str = ".bitzel/result";
/// The prefix of the output paths listing referenced blobs by BLAKE3.
pub const BLOB_PREFIX: &str = ".bitzel/cas/";

/// A blob an entry references: its BLAKE3 name and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobRef {
    /// BLAKE3 of the content.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
}

impl BlobRef {
    /// The reference to `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> BlobRef {
        BlobRef {
            digest: Digest::of_bytes(bytes),
            size: bytes.len() as u64,
        }
    }
}

/// An action-cache entry in bitzel's terms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoteEntry {
    /// bitzel's encoded action result (opaque to the remote layer).
    pub result: Vec<u8>,
    /// The task's exit status.
    pub exit_code: i32,
    /// The stdout log blob, if any (also listed in `blobs`).
    pub stdout: Option<BlobRef>,
    /// The stderr log blob, if any (also listed in `blobs`).
    pub stderr: Option<BlobRef>,
    /// Every blob the result references (tree manifests, file contents, logs).
    pub blobs: Vec<BlobRef>,
    /// When the task started, milliseconds since the Unix epoch.
    pub started_unix_ms: Option<u64>,
    /// When the task ended, milliseconds since the Unix epoch.
    pub completed_unix_ms: Option<u64>,
}

impl RemoteEntry {
    /// `blobs` sorted, deduplicated, with the log blobs included.
    pub fn normalized_blobs(&self) -> Vec<BlobRef> {
        let mut v = self.blobs.clone();
        v.extend(self.stdout);
        v.extend(self.stderr);
        v.sort();
        v.dedup();
        v
    }
}

fn ts(ms: u64) -> proto::Timestamp {
    proto::Timestamp {
        seconds: i64::try_from(ms / 1000).unwrap_or(i64::MAX),
        nanos: i32::try_from((ms % 1000) * 1_000_000).unwrap_or(0),
    }
}

fn ms(t: &proto::Timestamp) -> Option<u64> {
    let s = u64::try_from(t.seconds).ok()?;
    let n = u64::try_from(t.nanos).ok()?;
    Some(s.saturating_mul(1000).saturating_add(n / 1_000_000))
}

/// Encode `entry` as an `ActionResult`. `remote` gives the server-side hash
/// of a blob (its hex under the configured digest function); `result_remote`
/// is that of the result blob.
pub fn encode(
    entry: &RemoteEntry,
    result_remote: &str,
    remote: &dyn Fn(&BlobRef) -> Option<String>,
) -> Result<Vec<u8>, RemoteError> {
    let digest = |b: &BlobRef| -> Result<proto::Digest, RemoteError> {
        Ok(proto::Digest {
            hash: remote(b).ok_or(RemoteError::UnmappedBlob { digest: b.digest })?,
            size_bytes: i64::try_from(b.size).unwrap_or(i64::MAX),
        })
    };
    let mut files = vec![proto::OutputFile {
        path: RESULT_PATH.to_string(),
        digest: Some(proto::Digest {
            hash: result_remote.to_string(),
            size_bytes: i64::try_from(entry.result.len()).unwrap_or(i64::MAX),
        }),
        is_executable: false,
    }];
    for b in entry.normalized_blobs() {
        files.push(proto::OutputFile {
            path: format!("{BLOB_PREFIX}{}", b.digest.to_hex()),
            digest: Some(digest(&b)?),
            is_executable: false,
        });
    }
    let ar = proto::ActionResult {
        output_files: files,
        exit_code: entry.exit_code,
        stdout_digest: entry.stdout.as_ref().map(digest).transpose()?,
        stderr_digest: entry.stderr.as_ref().map(digest).transpose()?,
        execution_metadata: Some(proto::ExecutedActionMetadata {
            worker: "bitzel".to_string(),
            execution_start_timestamp: entry.started_unix_ms.map(ts),
            execution_completed_timestamp: entry.completed_unix_ms.map(ts),
        }),
    };
    Ok(ar.encode_to_vec())
}

/// An `ac/` entry decoded, before its result blob is fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedEntry {
    /// The result blob: BLAKE3 unknown until fetched, so only its remote name.
    pub result_remote: String,
    /// Size of the result blob.
    pub result_size: u64,
    /// The entry with `result` empty.
    pub entry: RemoteEntry,
    /// Server-side hex of each blob in `entry.blobs`, same order.
    pub remote_names: Vec<String>,
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

fn size_of(d: &proto::Digest, what: &str) -> Result<u64, String> {
    if !is_hex64(&d.hash) {
        return Err(format!("{what} has a malformed hash {:?}", d.hash));
    }
    u64::try_from(d.size_bytes).map_err(|_| format!("{what} has a negative size"))
}

/// Decode an `ac/` entry. `Err` carries why the entry is not one bitzel can
/// use (not protobuf, written by another client, malformed digests).
pub fn decode(bytes: &[u8]) -> Result<DecodedEntry, String> {
    let ar = proto::ActionResult::decode(bytes).map_err(|e| format!("not an ActionResult: {e}"))?;
    let mut result = None;
    let mut blobs = Vec::new();
    for f in &ar.output_files {
        let Some(d) = &f.digest else {
            return Err(format!("output file {:?} has no digest", f.path));
        };
        let size = size_of(d, &f.path)?;
        if f.path == RESULT_PATH {
            result = Some((d.hash.clone(), size));
        } else if let Some(hex) = f.path.strip_prefix(BLOB_PREFIX) {
            let digest: Digest = hex
                .parse()
                .map_err(|e| format!("output file {:?}: {e}", f.path))?;
            blobs.push((BlobRef { digest, size }, d.hash.clone()));
        } else {
            return Err(format!(
                "unexpected output file {:?} (not written by bitzel)",
                f.path
            ));
        }
    }
    let (result_remote, result_size) =
        result.ok_or_else(|| format!("no {RESULT_PATH} output (not written by bitzel)"))?;
    blobs.sort();
    blobs.dedup();
    let find = |d: &Option<proto::Digest>, what: &str| -> Result<Option<BlobRef>, String> {
        match d {
            None => Ok(None),
            Some(d) => blobs
                .iter()
                .find(|(_, r)| *r == d.hash)
                .map(|(b, _)| Some(*b))
                .ok_or_else(|| format!("{what} is not among the listed blobs")),
        }
    };
    let stdout = find(&ar.stdout_digest, "stdout_digest")?;
    let stderr = find(&ar.stderr_digest, "stderr_digest")?;
    let md = ar.execution_metadata.unwrap_or_default();
    Ok(DecodedEntry {
        result_remote,
        result_size,
        entry: RemoteEntry {
            result: Vec::new(),
            exit_code: ar.exit_code,
            stdout,
            stderr,
            blobs: blobs.iter().map(|(b, _)| *b).collect(),
            started_unix_ms: md.execution_start_timestamp.as_ref().and_then(ms),
            completed_unix_ms: md.execution_completed_timestamp.as_ref().and_then(ms),
        },
        remote_names: blobs.into_iter().map(|(_, r)| r).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    fn sample() -> RemoteEntry {
        let out = BlobRef::of_bytes(b"hello\n");
        let tree = BlobRef::of_bytes(b"tree manifest");
        RemoteEntry {
            result: b"bitzel result".to_vec(),
            exit_code: 0,
            stdout: Some(out),
            stderr: None,
            blobs: vec![tree, out, tree],
            started_unix_ms: Some(1_700_000_000_123),
            completed_unix_ms: Some(1_700_000_001_456),
        }
    }

    #[test]
    fn round_trip_with_blake3_names() {
        let e = sample();
        let result_hex = Digest::of_bytes(&e.result).to_hex();
        let bytes = encode(&e, &result_hex, &|b| Some(b.digest.to_hex())).unwrap();
        let d = decode(&bytes).unwrap();
        assert_eq!(d.result_remote, result_hex);
        assert_eq!(d.result_size, 13);
        let mut want = e.clone();
        want.result.clear();
        want.blobs = e.normalized_blobs();
        assert_eq!(d.entry, want);
        let names: Vec<String> = want.blobs.iter().map(|b| b.digest.to_hex()).collect();
        assert_eq!(d.remote_names, names);
    }

    #[test]
    fn snapshot_of_the_reapi_shape() {
        let e = sample();
        let bytes = encode(&e, &"0".repeat(64), &|b| Some(hex::short_fake(&b.digest))).unwrap();
        let ar = proto::ActionResult::decode(&bytes[..]).unwrap();
        expect![[r#"
            ActionResult {
                output_files: [
                    OutputFile {
                        path: ".bitzel/result",
                        digest: Some(
                            Digest {
                                hash: "0000000000000000000000000000000000000000000000000000000000000000",
                                size_bytes: 13,
                            },
                        ),
                        is_executable: false,
                    },
                    OutputFile {
                        path: ".bitzel/cas/6192acd6f56122fbf8f67b438e3ae753ae4a4d9b80bc1bbe0bd3dbb7358f408e",
                        digest: Some(
                            Digest {
                                hash: "sha-of-6192acd6f561",
                                size_bytes: 13,
                            },
                        ),
                        is_executable: false,
                    },
                    OutputFile {
                        path: ".bitzel/cas/8e4c7c1b99dbfd50e7a95185fead5ee1448fa904a2fdd778eaf5f2dbfd629a99",
                        digest: Some(
                            Digest {
                                hash: "sha-of-8e4c7c1b99db",
                                size_bytes: 6,
                            },
                        ),
                        is_executable: false,
                    },
                ],
                exit_code: 0,
                stdout_digest: Some(
                    Digest {
                        hash: "sha-of-8e4c7c1b99db",
                        size_bytes: 6,
                    },
                ),
                stderr_digest: None,
                execution_metadata: Some(
                    ExecutedActionMetadata {
                        worker: "bitzel",
                        execution_start_timestamp: Some(
                            Timestamp {
                                seconds: 1700000000,
                                nanos: 123000000,
                            },
                        ),
                        execution_completed_timestamp: Some(
                            Timestamp {
                                seconds: 1700000001,
                                nanos: 456000000,
                            },
                        ),
                    },
                ),
            }
        "#]]
        .assert_debug_eq(&ar);
    }

    #[test]
    fn foreign_and_malformed_entries_are_refused() {
        let foreign = proto::ActionResult {
            output_files: vec![proto::OutputFile {
                path: "bazel-out/k8/bin/foo".into(),
                digest: Some(proto::Digest {
                    hash: "a".repeat(64),
                    size_bytes: 3,
                }),
                is_executable: false,
            }],
            ..Default::default()
        };
        let e = decode(&foreign.encode_to_vec()).unwrap_err();
        assert!(e.contains("not written by bitzel"), "{e}");
        assert!(decode(&proto::ActionResult::default().encode_to_vec())
            .unwrap_err()
            .contains(RESULT_PATH));
        assert!(decode(b"\xff\xff\xff")
            .unwrap_err()
            .contains("not an ActionResult"));
        let bad_hash = proto::ActionResult {
            output_files: vec![proto::OutputFile {
                path: RESULT_PATH.into(),
                digest: Some(proto::Digest {
                    hash: "../../etc".into(),
                    size_bytes: 3,
                }),
                is_executable: false,
            }],
            ..Default::default()
        };
        assert!(decode(&bad_hash.encode_to_vec())
            .unwrap_err()
            .contains("malformed"));
    }

    #[test]
    fn unmapped_blob_is_an_error_not_a_broken_entry() {
        let e = sample();
        assert!(matches!(
            encode(&e, &"0".repeat(64), &|_| None),
            Err(RemoteError::UnmappedBlob { .. })
        ));
    }

    mod hex {
        use crate::digest::Digest;
        pub fn short_fake(d: &Digest) -> String {
            format!("sha-of-{}", d.short())
        }
    }
}
