//! The REAPI shape of a bitzel job.
//!
//! ```text
//! Action ── command_digest ──► Command  argv `bitzel run-job job.json`, the task's
//!   │                                   environment, platform properties
//!   └── input_root_digest ──► Directory
//!         ├── job.json                  the RemoteJob (JSON)
//!         └── cas/                      Directory: one file per blob the job needs,
//!               └── <blake3 hex>        named by BLAKE3, addressed by SHA-256
//! ```
//!
//! **Decision:** the layers travel as bitzel's own tree manifests and file
//! blobs (the `cas/` directory) rather than as REAPI `Directory` trees of the
//! files themselves: a layer has overlay whiteouts, opaque directories and
//! modes that REAPI's tree cannot say, and a worker needs the manifests
//! anyway to build its overlay layers. Every byte is still in the engine's
//! CAS under its SHA-256 and listed in the input root, so the engine's
//! deduplication and action cache work as for any client, and the `Action`
//! digest is a pure function of the bitzel key's inputs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use prost::Message;
use sha2::Digest as _;

use bitzel_cache::remote::RemoteCache;
use bitzel_cache::tree::read_tree;
use bitzel_cache::{Cas, Digest as B3};
use bitzel_exec::remote::RemoteJob;

use crate::proto::{
    Action, Command, Digest, Directory, DirectoryNode, EnvironmentVariable, FileNode, Platform,
    Property,
};
use crate::RemoteExecError;

/// The job's file in the input root.
pub const JOB_FILE: &str = "job.json";
/// The blobs' directory in the input root.
pub const CAS_DIR: &str = "cas";

/// Platform property: the sandbox kind (`hermetic`, `hermetic-remapped`).
pub const PROP_SANDBOX: &str = "bitzel-sandbox";
/// Platform property: the build root's content digest (BLAKE3 hex): the
/// hermetic root's (`build-root`) in rootfs mode, else the host root's.
pub const PROP_BUILD_ROOT: &str = "bitzel-build-root";
/// Platform property: `on`/`off`.
pub const PROP_NETWORK: &str = "bitzel-network";
/// Platform property: the host tools' digest (BLAKE3 hex).
pub const PROP_TOOLS: &str = "bitzel-tools";

/// SHA-256 digest of `bytes`.
pub fn digest_of(bytes: &[u8]) -> Digest {
    Digest {
        hash: format!("{:x}", sha2::Sha256::digest(bytes)),
        size_bytes: bytes.len() as i64,
    }
}

/// The platform properties of a job: what a worker must match.
pub fn platform(job: &RemoteJob) -> Platform {
    let a = &job.action;
    let policy = |k: &str| a.policy.get(k).cloned().unwrap_or_default();
    let mut properties = vec![
        Property {
            name: PROP_BUILD_ROOT.into(),
            value: a
                .inputs
                .get(bitzel_exec::executor::BUILD_ROOT_INPUT)
                .or_else(|| a.inputs.get("host-root"))
                .map(B3::to_hex)
                .unwrap_or_default(),
        },
        Property {
            name: PROP_NETWORK.into(),
            value: policy("network"),
        },
        Property {
            name: PROP_SANDBOX.into(),
            value: policy("sandbox"),
        },
        Property {
            name: PROP_TOOLS.into(),
            value: a.tools.to_hex(),
        },
    ];
    properties.sort();
    Platform { properties }
}

/// A job as REAPI blobs.
#[derive(Debug)]
pub struct InputRoot {
    /// The action.
    pub action: Action,
    /// Its digest (what `Execute` is given).
    pub action_digest: Digest,
    /// Small blobs built here: the action, command, directories, job file.
    pub messages: Vec<(Digest, Vec<u8>)>,
    /// The job's blobs: (SHA-256 digest, local CAS file; absent for an output
    /// of an earlier remote run that was left on the engine).
    pub files: Vec<(Digest, PathBuf)>,
}

/// Build the input root of `job`: every tree manifest and file blob it
/// names, read from `cas`; SHA-256 names come from (and go to) `remote`'s map.
pub fn build(
    job: &RemoteJob,
    cas: &Cas,
    remote: &RemoteCache,
) -> Result<InputRoot, RemoteExecError> {
    // Each blob with its size when a tree manifest gives it: outputs of
    // earlier remote runs may be on the engine only (fetched on demand).
    let mut blobs: BTreeMap<B3, Option<u64>> = BTreeMap::new();
    for t in job.trees() {
        blobs.insert(t, None);
        for e in read_tree(cas, &t)?.entries() {
            if let bitzel_cache::EntryKind::File { digest, size, .. } = e.kind {
                blobs.insert(digest, Some(size));
            }
        }
    }
    for f in job.files() {
        blobs.entry(f).or_insert(None);
    }
    let mut nodes = Vec::new();
    let mut files = Vec::new();
    for (b3, known) in &blobs {
        let path = cas.blob_path(b3);
        let (sha, size) = match (std::fs::metadata(&path), known, remote.blob_name(b3)) {
            (Ok(md), _, _) => {
                let sha =
                    remote
                        .blob_name_of_file(b3, &path)
                        .map_err(|e| RemoteExecError::Local {
                            what: format!("hashing blob {b3}"),
                            source: std::io::Error::other(e.to_string()),
                        })?;
                (sha, md.len())
            }
            // Left on the engine by an earlier remote run.
            (Err(_), Some(size), Some(sha)) => (sha, *size),
            (Err(source), _, _) => {
                return Err(RemoteExecError::Local {
                    what: format!(
                        "blob {b3} of the job is missing from the local CAS ({}) and not known to be on the engine",
                        path.display()
                    ),
                    source,
                })
            }
        };
        let d = Digest {
            hash: sha,
            size_bytes: size as i64,
        };
        nodes.push(FileNode {
            name: b3.to_hex(),
            digest: Some(d.clone()),
            is_executable: false,
        });
        files.push((d, path));
    }
    let mut messages = Vec::new();
    let mut add = |bytes: Vec<u8>| {
        let d = digest_of(&bytes);
        messages.push((d.clone(), bytes));
        d
    };
    let cas_dir = add(Directory {
        files: nodes,
        directories: vec![],
    }
    .encode_to_vec());
    let job_bytes = serde_json::to_vec(job).map_err(|e| RemoteExecError::Local {
        what: "encoding the job".into(),
        source: std::io::Error::other(e),
    })?;
    let job_d = add(job_bytes);
    let root = add(Directory {
        files: vec![FileNode {
            name: JOB_FILE.into(),
            digest: Some(job_d),
            is_executable: false,
        }],
        directories: vec![DirectoryNode {
            name: CAS_DIR.into(),
            digest: Some(cas_dir),
        }],
    }
    .encode_to_vec());
    let platform = platform(job);
    let command = Command {
        arguments: vec!["bitzel".into(), "run-job".into(), JOB_FILE.into()],
        environment_variables: job
            .action
            .env
            .iter()
            .map(|(name, value)| EnvironmentVariable {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        platform: Some(platform.clone()),
        output_paths: vec![],
    };
    let command_d = add(command.encode_to_vec());
    let action = Action {
        command_digest: Some(command_d),
        input_root_digest: Some(root),
        timeout: None,
        do_not_cache: false,
        platform: Some(platform),
    };
    let action_digest = add(action.encode_to_vec());
    Ok(InputRoot {
        action,
        action_digest,
        messages,
        files,
    })
}

/// The property `name` of `p`.
pub fn property<'a>(p: &'a Platform, name: &str) -> Option<&'a str> {
    p.properties
        .iter()
        .find(|q| q.name == name)
        .map(|q| q.value.as_str())
}
