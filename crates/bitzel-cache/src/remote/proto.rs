//! The subset of the REAPI v2 messages (`build.bazel.remote.execution.v2`)
//! that an HTTP cache's `ac/` entry holds: an `ActionResult` and what it
//! refers to.
//!
//! Field numbers and types are those of `remote_execution.proto` (as
//! generated in the `bazel-remote-apis` crate 0.30); fields bitzel never sets
//! are left out, which protobuf allows (a decoder skips unknown fields, and an
//! absent field is its default). The types are declared here with `prost`
//! rather than taken from `bazel-remote-apis` because that crate depends
//! unconditionally on `tonic` with its default features (tokio, hyper, h2,
//! axum, tower) — a gRPC stack this synchronous HTTP client never uses.
//! `tests::wire_shape_matches_reapi_field_numbers` checks the encoding at the
//! wire level, independently of these annotations.

/// `build.bazel.remote.execution.v2.Digest`: a content hash (lowercase hex of
/// the digest function's output) and the content's size.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct Digest {
    /// Lowercase hex hash.
    #[prost(string, tag = "1")]
    pub hash: String,
    /// Size of the content in bytes.
    #[prost(int64, tag = "2")]
    pub size_bytes: i64,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// `build.bazel.remote.execution.v2.ExecutedActionMetadata` (the fields bitzel sets).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ExecutedActionMetadata {
    /// Who ran the action (bitzel writes `bitzel`).
    #[prost(string, tag = "1")]
    pub worker: String,
    /// When the task's process started.
    #[prost(message, optional, tag = "7")]
    pub execution_start_timestamp: Option<Timestamp>,
    /// When the task's process ended.
    #[prost(message, optional, tag = "8")]
    pub execution_completed_timestamp: Option<Timestamp>,
}

/// `build.bazel.remote.execution.v2.OutputFile`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct OutputFile {
    /// Path of the output (bitzel uses `.bitzel/...` names, see `remote::entry`).
    #[prost(string, tag = "1")]
    pub path: String,
    /// The blob in `cas/` holding the file's content.
    #[prost(message, optional, tag = "2")]
    pub digest: Option<Digest>,
    /// Executable bit.
    #[prost(bool, tag = "4")]
    pub is_executable: bool,
}

/// `build.bazel.remote.execution.v2.ActionResult` (the fields bitzel uses).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ActionResult {
    /// Output files; every referenced blob must exist in `cas/`.
    #[prost(message, repeated, tag = "2")]
    pub output_files: Vec<OutputFile>,
    /// The process's exit status.
    #[prost(int32, tag = "4")]
    pub exit_code: i32,
    /// The captured standard output, as a `cas/` blob.
    #[prost(message, optional, tag = "6")]
    pub stdout_digest: Option<Digest>,
    /// The captured standard error, as a `cas/` blob.
    #[prost(message, optional, tag = "8")]
    pub stderr_digest: Option<Digest>,
    /// Timing.
    #[prost(message, optional, tag = "9")]
    pub execution_metadata: Option<ExecutedActionMetadata>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// A minimal protobuf wire walker: (field number, wire type, payload) of
    /// each top-level field. Independent of prost, so it checks the tags.
    fn fields(mut b: &[u8]) -> Vec<(u64, u8, Vec<u8>)> {
        fn varint(b: &mut &[u8]) -> u64 {
            let mut v = 0u64;
            let mut shift = 0;
            loop {
                let byte = b[0];
                *b = &b[1..];
                v |= u64::from(byte & 0x7f) << shift;
                if byte & 0x80 == 0 {
                    return v;
                }
                shift += 7;
            }
        }
        let mut out = Vec::new();
        while !b.is_empty() {
            let key = varint(&mut b);
            let (field, wt) = (key >> 3, (key & 7) as u8);
            let payload = match wt {
                0 => varint(&mut b).to_le_bytes().to_vec(),
                2 => {
                    let n = varint(&mut b) as usize;
                    let p = b[..n].to_vec();
                    b = &b[n..];
                    p
                }
                other => panic!("unexpected wire type {other}"),
            };
            out.push((field, wt, payload));
        }
        out
    }

    #[test]
    fn wire_shape_matches_reapi_field_numbers() {
        let d = |h: &str, n| Digest {
            hash: h.to_string(),
            size_bytes: n,
        };
        let ar = ActionResult {
            output_files: vec![OutputFile {
                path: ".bitzel/result".into(),
                digest: Some(d("ab", 7)),
                is_executable: true,
            }],
            exit_code: 3,
            stdout_digest: Some(d("cd", 1)),
            stderr_digest: Some(d("ef", 2)),
            execution_metadata: Some(ExecutedActionMetadata {
                worker: "bitzel".into(),
                execution_start_timestamp: Some(Timestamp {
                    seconds: 10,
                    nanos: 5,
                }),
                execution_completed_timestamp: Some(Timestamp {
                    seconds: 11,
                    nanos: 0,
                }),
            }),
        };
        let bytes = ar.encode_to_vec();
        let top: Vec<(u64, u8)> = fields(&bytes).iter().map(|f| (f.0, f.1)).collect();
        // REAPI: output_files=2, exit_code=4, stdout_digest=6, stderr_digest=8, execution_metadata=9.
        assert_eq!(top, vec![(2, 2), (4, 0), (6, 2), (8, 2), (9, 2)]);
        let all = fields(&bytes);
        // OutputFile: path=1, digest=2, is_executable=4; Digest: hash=1, size_bytes=2.
        let of: Vec<(u64, u8)> = fields(&all[0].2).iter().map(|f| (f.0, f.1)).collect();
        assert_eq!(of, vec![(1, 2), (2, 2), (4, 0)]);
        let dg = fields(&fields(&all[0].2)[1].2);
        assert_eq!((dg[0].0, dg[0].2.as_slice()), (1, &b"ab"[..]));
        assert_eq!((dg[1].0, dg[1].1, dg[1].2[0]), (2, 0, 7));
        // ExecutedActionMetadata: worker=1, execution_start=7, execution_completed=8.
        let md: Vec<(u64, u8)> = fields(&all[4].2).iter().map(|f| (f.0, f.1)).collect();
        assert_eq!(md, vec![(1, 2), (7, 2), (8, 2)]);
        assert_eq!(ActionResult::decode(&bytes[..]).unwrap(), ar);
    }

    #[test]
    fn decoding_skips_fields_bitzel_does_not_model() {
        // An ActionResult from another client with output_directories (3) and stdout_raw (5).
        let mut bytes = ActionResult {
            exit_code: 1,
            ..Default::default()
        }
        .encode_to_vec();
        bytes.extend_from_slice(&[0x1a, 0x00, 0x2a, 0x02, b'h', b'i']);
        let ar = ActionResult::decode(&bytes[..]).unwrap();
        assert_eq!(ar.exit_code, 1);
        assert!(ar.output_files.is_empty());
    }
}
