//! Publishing deploy artifacts: the `[deploy-dir]` subtrees of the build's
//! deploy tasks are applied onto the host `DEPLOY_DIR_IMAGE`. This is the only
//! materialisation a fully cached build does.

use std::path::{Path, PathBuf};

use bitzel_cache::{Cache, Digest};
use bitzel_graph::TaskGraph;

use crate::executor::TaskOutput;

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
#[error("publishing deploy artifacts to {}: {message}", dest.display())]
pub struct DeployError {
    /// The destination directory.
    pub dest: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// Apply every deploy tree among `outputs` (graph order) onto `dest`.
/// Returns the digests applied.
pub fn publish(
    cache: &Cache,
    graph: &TaskGraph,
    outputs: &[Option<TaskOutput>],
    dest: &Path,
) -> Result<Vec<Digest>, DeployError> {
    let mut trees = Vec::new();
    for &id in graph.topo_order() {
        if let Some(Some(out)) = outputs.get(id) {
            if let Some(d) = out.deploy {
                if !trees.contains(&d) {
                    trees.push(d);
                }
            }
        }
    }
    if trees.is_empty() {
        return Ok(trees);
    }
    std::fs::create_dir_all(dest).map_err(|e| DeployError {
        dest: dest.to_path_buf(),
        message: e.to_string(),
    })?;
    cache.apply(&trees, dest).map_err(|e| DeployError {
        dest: dest.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(trees)
}
