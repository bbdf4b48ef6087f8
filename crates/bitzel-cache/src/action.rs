//! Actions (the canonical inputs of a task) and their results.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::canon::Encoder;
use crate::digest::{ActionKey, Digest};

/// Version of the action-key encoding. Bumping it changes every key (and the
/// cache directory's `v<N>` bucket), so old entries are simply never found.
pub const FORMAT_VERSION: u32 = 1;

/// Everything a task's result may depend on, as canonical values. Exec fills
/// it; [`Action::key`] hashes it. No absolute host path belongs in here.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Action {
    /// `"pn:do_task"` (no paths).
    pub label: String,
    /// The fully expanded task script.
    pub script: String,
    /// The exported environment.
    pub env: BTreeMap<String, String>,
    /// Other variable values the script depends on (for explain).
    pub vars: BTreeMap<String, String>,
    /// Named input trees/files: `"work"`, `"sysroot:busybox"`, `"file:defconfig"`, ...
    pub inputs: BTreeMap<String, Digest>,
    /// Sandbox policy: `"network" => "off"`, `"build_root" => "host"`, ...
    pub policy: BTreeMap<String, String>,
    /// Digest of the allowed host-tool set (see [`crate::hosttools`]).
    pub tools: Digest,
}

impl Action {
    /// The canonical encoding: domain tag, [`FORMAT_VERSION`], then every
    /// field in a fixed order, maps in key order.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut e = Encoder::new("bitzel-action", FORMAT_VERSION);
        e.str(&self.label)
            .str(&self.script)
            .str_map(&self.env)
            .str_map(&self.vars)
            .digest_map(&self.inputs)
            .str_map(&self.policy)
            .digest(&self.tools);
        e.finish()
    }

    /// BLAKE3 of [`Action::canonical_bytes`].
    pub fn key(&self) -> ActionKey {
        ActionKey(Digest::of_bytes(&self.canonical_bytes()))
    }
}

/// What the action cache stores for a key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ActionResult {
    /// The task label, `"pn:do_task"`.
    pub label: String,
    /// Digest of the output tree manifest (the captured upperdir).
    pub output: Digest,
    /// Further named trees derived from the output (e.g. `"sysroot"` for a
    /// sysroot-layer subtree) that must stay in the cache as long as this
    /// entry does. Checked on lookup and kept by gc, like `output`.
    pub extra_outputs: BTreeMap<String, Digest>,
    /// The task's exit status.
    pub exit_code: i32,
    /// Blob holding the task's stdout, if captured.
    pub stdout: Option<Digest>,
    /// Blob holding the task's stderr, if captured.
    pub stderr: Option<Digest>,
    /// How long the task ran.
    pub duration_ms: u64,
    /// When this result was recorded (Unix milliseconds).
    pub created_unix_ms: u64,
    /// The inputs that produced it, for `explain`.
    pub action: Action,
}

impl ActionResult {
    /// Every tree this result references (output first).
    pub fn trees(&self) -> Vec<Digest> {
        let mut v = vec![self.output];
        v.extend(self.extra_outputs.values().copied());
        v
    }
    /// Every plain blob (not a tree) this result references directly.
    pub fn log_blobs(&self) -> Vec<Digest> {
        self.stdout
            .iter()
            .chain(self.stderr.iter())
            .copied()
            .collect()
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Action {
        let mut a = Action {
            label: "busybox:do_compile".into(),
            script: "oe_runmake\n".into(),
            ..Action::default()
        };
        a.env.insert("PATH".into(), "/usr/bin".into());
        a.vars.insert("CFLAGS".into(), "-O2".into());
        a.inputs.insert("work".into(), Digest::of_bytes(b"w"));
        a.policy.insert("network".into(), "off".into());
        a.tools = Digest::of_bytes(b"tools");
        a
    }

    #[test]
    fn identical_inputs_identical_key_and_pinned_value() {
        assert_eq!(sample().key(), sample().clone().key());
        // Pinned: a change here means every cache entry in the world is lost.
        // Only update together with FORMAT_VERSION.
        expect_test::expect!["07d0a1a3e8d406b274465d2d1977c52c555ce9dc5ebb864a5c0ffd4a26997e0c"]
            .assert_eq(&sample().key().to_hex());
    }

    #[test]
    fn insertion_order_does_not_matter() {
        let mut a = sample();
        let mut b = sample();
        a.env.insert("A".into(), "1".into());
        a.env.insert("Z".into(), "2".into());
        b.env.insert("Z".into(), "2".into());
        b.env.insert("A".into(), "1".into());
        assert_eq!(a.key(), b.key());
    }

    #[test]
    fn every_input_class_changes_the_key() {
        let base = sample().key();
        let mut changed: Vec<(&str, Action)> = Vec::new();
        let mut a = sample();
        a.label = "busybox:do_install".into();
        changed.push(("label", a));
        let mut a = sample();
        a.script.push_str("true\n");
        changed.push(("script", a));
        let mut a = sample();
        a.env.insert("PATH".into(), "/bin".into());
        changed.push(("env value", a));
        let mut a = sample();
        a.env.insert("NEW".into(), String::new());
        changed.push(("env new var", a));
        let mut a = sample();
        a.vars.insert("CFLAGS".into(), "-O3".into());
        changed.push(("var", a));
        let mut a = sample();
        a.inputs.insert("work".into(), Digest::of_bytes(b"w2"));
        changed.push(("input digest", a));
        let mut a = sample();
        a.inputs
            .insert("sysroot:zlib".into(), Digest::of_bytes(b"z"));
        changed.push(("input added", a));
        let mut a = sample();
        a.policy.insert("network".into(), "on".into());
        changed.push(("policy", a));
        let mut a = sample();
        a.tools = Digest::of_bytes(b"other tools");
        changed.push(("tools", a));
        // Moving a byte between adjacent fields must not collide.
        let mut a = sample();
        a.label = "busybox:do_compileo".into();
        a.script = "e_runmake\n".into();
        changed.push(("field boundary", a));
        for (what, a) in changed {
            assert_ne!(a.key(), base, "{what} did not change the key");
        }
    }
}
