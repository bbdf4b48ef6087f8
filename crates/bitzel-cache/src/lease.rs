//! What running builds hold, so that `cache gc` and `cache verify` never
//! remove it.
//!
//! Two mechanisms, both `flock`-based (a killed process releases both):
//!
//! - **Leases.** Every [`crate::Cache`] handle that restores, captures or
//!   stores something records the digests it holds in its own lease file,
//!   `leases/<unique>.lease`, locked exclusively for the handle's life
//!   (created under another name, locked, then renamed, so a live lease is
//!   never seen unlocked). Lines are `t <hex>` (a tree: its manifest, its
//!   file blobs and its materialised layer) and `b <hex>` (one blob, e.g.
//!   a log). A lease is recorded *before* the thing is relied on: at a
//!   lookup hit before the entry's blobs are checked, at a capture before
//!   the captured tree is used, before a layer is returned for mounting.
//!   Maintenance reads every lease file whose lock is held and keeps what
//!   it names; a file whose lock is free belonged to a finished or killed
//!   process and is deleted.
//! - **The maintenance lock** `gc.lock`. Those steps (lookup, capture,
//!   storing blobs, materialising a layer) run under a *shared* lock;
//!   maintenance takes it *exclusively* for its whole run. So a lease is
//!   either written before maintenance reads the leases, or its step
//!   starts after maintenance has finished — never in between, where a
//!   blob could be judged unreferenced just as a build starts relying on
//!   it. Maintenance waits for steps in progress (seconds), never for
//!   whole builds. `gc.intent` gives it priority: once it announces itself
//!   (exclusive lock on `gc.intent`), no new step starts until it is done,
//!   so a busy machine cannot starve it.
//!
//! Inside one process the shared lock is counted (an `flock` belongs to the
//! open file, not the thread): the first step takes it, the last releases
//! it, and a thread that already holds a step (or the exclusive lock) nests
//! freely.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::digest::Digest;
use crate::error::{IoContext, Result};
use crate::fsutil::unique_name;
use crate::lock::{flock, open_lock_file, owner_line, unlock, LockMode};

/// What a lease line names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Held {
    /// A tree: manifest, file blobs, layer.
    Tree(Digest),
    /// One blob.
    Blob(Digest),
}

/// The leases of live processes, as maintenance sees them.
#[derive(Debug, Default)]
pub(crate) struct LiveLeases {
    pub(crate) trees: BTreeSet<Digest>,
    pub(crate) blobs: BTreeSet<Digest>,
}

thread_local! {
    /// Per cache root: the steps this thread holds, or [`EXCLUSIVE`] while
    /// it holds the exclusive lock.
    static DEPTH: RefCell<HashMap<PathBuf, usize>> = RefCell::new(HashMap::new());
}

const EXCLUSIVE: usize = usize::MAX;

fn depth(root: &Path) -> usize {
    DEPTH.with(|d| d.borrow().get(root).copied().unwrap_or(0))
}

fn set_depth(root: &Path, n: usize) {
    DEPTH.with(|d| {
        let mut d = d.borrow_mut();
        if n == 0 {
            d.remove(root);
        } else {
            d.insert(root.to_path_buf(), n);
        }
    });
}

/// The shared lock of one cache root in this process (all handles on the
/// same root share it: one `flock` per open file, counted here).
#[derive(Debug, Default)]
struct Shared {
    /// Steps in progress in this process.
    count: usize,
    /// The open `gc.lock`, locked shared while `count > 0`.
    main: Option<File>,
}

fn shared_for(root: &Path) -> Arc<Mutex<Shared>> {
    static ALL: OnceLock<Mutex<HashMap<PathBuf, Arc<Mutex<Shared>>>>> = OnceLock::new();
    let mut all = relock(ALL.get_or_init(Default::default));
    Arc::clone(all.entry(root.to_path_buf()).or_default())
}

#[derive(Debug, Default)]
struct Own {
    file: Option<File>,
    held: HashSet<Held>,
}

/// The protocol's state for one cache handle.
#[derive(Debug)]
pub(crate) struct Leases {
    root: PathBuf,
    shared: Arc<Mutex<Shared>>,
    own: Mutex<Own>,
}

/// A step in progress (shared maintenance lock). Dropping it ends the step.
#[derive(Debug)]
pub(crate) struct Step<'a> {
    leases: Option<&'a Leases>,
}

/// The exclusive maintenance lock: no step runs in any process while it lives.
#[derive(Debug)]
pub(crate) struct Exclusive {
    root: PathBuf,
    _intent: File,
    _main: File,
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Leases {
    /// The protocol for the cache rooted at `root` (`<cache-dir>/v1`).
    pub(crate) fn new(root: &Path) -> Leases {
        Leases {
            root: root.to_path_buf(),
            shared: shared_for(root),
            own: Mutex::new(Own::default()),
        }
    }

    fn main_path(&self) -> PathBuf {
        self.root.join("gc.lock")
    }

    fn intent_path(&self) -> PathBuf {
        self.root.join("gc.intent")
    }

    fn dir(&self) -> PathBuf {
        self.root.join("leases")
    }

    /// Begin a step: wait while maintenance runs or has announced itself.
    pub(crate) fn step(&self) -> Result<Step<'_>> {
        match depth(&self.root) {
            EXCLUSIVE => return Ok(Step { leases: None }),
            0 => {}
            n => {
                // Nested in a step of this thread: the lock is held.
                set_depth(&self.root, n + 1);
                relock(&self.shared).count += 1;
                return Ok(Step { leases: Some(self) });
            }
        }
        let intent_path = self.intent_path();
        loop {
            let mut st = relock(&self.shared);
            if st.count == 0 {
                let intent = open_lock_file(&intent_path)?;
                flock(&intent, LockMode::Shared, true).ctx("lock", &intent_path)?;
                let main_path = self.main_path();
                let main = open_lock_file(&main_path)?;
                flock(&main, LockMode::Shared, true).ctx("lock", &main_path)?;
                drop(intent);
                st.main = Some(main);
            } else {
                // Join the steps in progress unless maintenance is waiting
                // for them to end.
                let intent = open_lock_file(&intent_path)?;
                if !flock(&intent, LockMode::Shared, false).ctx("lock", &intent_path)? {
                    drop(st);
                    flock(&intent, LockMode::Shared, true).ctx("lock", &intent_path)?;
                    continue;
                }
            }
            st.count += 1;
            set_depth(&self.root, 1);
            return Ok(Step { leases: Some(self) });
        }
    }

    fn end_step(&self) {
        set_depth(&self.root, depth(&self.root).saturating_sub(1));
        let mut st = relock(&self.shared);
        st.count = st.count.saturating_sub(1);
        if st.count == 0 {
            if let Some(main) = st.main.take() {
                unlock(&main);
            }
        }
    }

    /// Take the exclusive maintenance lock, waiting for steps in progress
    /// (the wait is logged once, naming the processes holding leases).
    /// Not from inside a step of the same cache.
    pub(crate) fn exclusive(&self) -> Result<Exclusive> {
        let take = |path: PathBuf| -> Result<File> {
            let f = open_lock_file(&path)?;
            if !flock(&f, LockMode::Exclusive, false).ctx("lock", &path)? {
                let users = self.live_owners();
                tracing::warn!(
                    "waiting for builds using the cache to finish their current step{}",
                    if users.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", users.join(", "))
                    }
                );
                flock(&f, LockMode::Exclusive, true).ctx("lock", &path)?;
            }
            Ok(f)
        };
        let intent = take(self.intent_path())?;
        let main = take(self.main_path())?;
        set_depth(&self.root, EXCLUSIVE);
        Ok(Exclusive {
            root: self.root.clone(),
            _intent: intent,
            _main: main,
        })
    }

    /// Record that this handle holds `items` (each once per handle).
    pub(crate) fn hold(&self, items: &[Held]) -> Result<()> {
        let mut own = relock(&self.own);
        let mut text = String::new();
        for it in items {
            if own.held.insert(*it) {
                let (k, d) = match it {
                    Held::Tree(d) => ('t', d),
                    Held::Blob(d) => ('b', d),
                };
                text.push_str(&format!("{k} {}\n", d.to_hex()));
            }
        }
        if text.is_empty() {
            return Ok(());
        }
        if own.file.is_none() {
            own.file = Some(self.create_lease_file()?);
        }
        if let Some(f) = own.file.as_mut() {
            f.write_all(text.as_bytes())
                .ctx("append to lease file in", self.dir())?;
        }
        Ok(())
    }

    fn create_lease_file(&self) -> Result<File> {
        let dir = self.dir();
        fs::create_dir_all(&dir).ctx("create directory", &dir)?;
        let tmp = dir.join(unique_name("new"));
        let mut f = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&tmp)
            .ctx("create", &tmp)?;
        flock(&f, LockMode::Exclusive, false).ctx("lock", &tmp)?;
        f.write_all(format!("# {}\n", owner_line()).as_bytes())
            .ctx("write", &tmp)?;
        let path = tmp.with_extension("lease");
        fs::rename(&tmp, &path).ctx("rename", &path)?;
        Ok(f)
    }

    /// Every lease file with its lock state: `(path, live, text)`.
    fn scan(&self) -> Vec<(PathBuf, bool, String)> {
        let Ok(rd) = fs::read_dir(self.dir()) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let p = e.path();
            let Ok(mut f) = File::open(&p) else { continue };
            let live = !flock(&f, LockMode::Exclusive, false).unwrap_or(false);
            let mut text = String::new();
            if p.extension().is_some_and(|x| x == "lease") {
                let _ = f.read_to_string(&mut text);
            }
            out.push((p, live, text));
        }
        out
    }

    fn live_owners(&self) -> Vec<String> {
        self.scan()
            .into_iter()
            .filter(|(_, live, _)| *live)
            .filter_map(|(_, _, text)| {
                text.lines()
                    .next()
                    .and_then(|l| l.strip_prefix("# "))
                    .map(str::to_string)
            })
            .collect()
    }

    /// What live processes hold; lease files of dead ones (and their
    /// unfinished creations) are deleted. Call with [`Exclusive`] held.
    pub(crate) fn live(&self, _held: &Exclusive) -> LiveLeases {
        let mut out = LiveLeases::default();
        for (path, live, text) in self.scan() {
            if !live {
                let _ = fs::remove_file(&path);
                continue;
            }
            for line in text.lines() {
                let parsed = match line.split_once(' ') {
                    Some(("t", hex)) => hex.parse().ok().map(Held::Tree),
                    Some(("b", hex)) => hex.parse().ok().map(Held::Blob),
                    _ => None,
                };
                match parsed {
                    Some(Held::Tree(d)) => {
                        out.trees.insert(d);
                    }
                    Some(Held::Blob(d)) => {
                        out.blobs.insert(d);
                    }
                    None => {}
                }
            }
        }
        out
    }
}

impl Drop for Step<'_> {
    fn drop(&mut self) {
        if let Some(l) = self.leases {
            l.end_step();
        }
    }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        set_depth(&self.root, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    fn d(s: &str) -> Digest {
        Digest::of_bytes(s.as_bytes())
    }

    #[test]
    fn maintenance_waits_for_a_step_and_new_steps_wait_for_it() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().to_path_buf();
        let (started, step_taken) = mpsc::channel();
        let r1 = root.clone();
        let stepper = std::thread::spawn(move || {
            let l = Leases::new(&r1);
            let s = l.step().unwrap();
            started.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(400));
            drop(s);
        });
        step_taken.recv().unwrap();
        let (excl_tx, excl_rx) = mpsc::channel();
        let r2 = root.clone();
        let gc = std::thread::spawn(move || {
            let l = Leases::new(&r2);
            let t0 = Instant::now();
            let x = l.exclusive().unwrap();
            excl_tx.send(t0.elapsed()).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            drop(x);
        });
        // Let maintenance announce itself, then try a new step: it must
        // wait for maintenance to finish (no starvation).
        std::thread::sleep(Duration::from_millis(100));
        let l = Leases::new(&root);
        let t0 = Instant::now();
        let s = l.step().unwrap();
        let stepped_after = t0.elapsed();
        let waited = excl_rx.recv().unwrap();
        assert!(
            waited >= Duration::from_millis(250),
            "maintenance waited for the step in progress: {waited:?}"
        );
        assert!(
            stepped_after >= Duration::from_millis(450),
            "a new step waited for maintenance: {stepped_after:?}"
        );
        drop(s);
        stepper.join().unwrap();
        gc.join().unwrap();
    }

    #[test]
    fn leases_of_live_holders_are_read_and_dead_ones_removed() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let a = Leases::new(root);
        {
            let _s = a.step().unwrap();
            a.hold(&[Held::Tree(d("t")), Held::Blob(d("b")), Held::Tree(d("t"))])
                .unwrap();
        }
        let b = Leases::new(root);
        {
            let _s = b.step().unwrap();
            b.hold(&[Held::Tree(d("gone"))]).unwrap();
        }
        drop(b); // its lease file's lock is released: a finished holder
        let gc = Leases::new(root);
        let x = gc.exclusive().unwrap();
        let live = gc.live(&x);
        assert_eq!(live.trees, BTreeSet::from([d("t")]));
        assert_eq!(live.blobs, BTreeSet::from([d("b")]));
        let files = fs::read_dir(root.join("leases")).unwrap().count();
        assert_eq!(files, 1, "the finished holder's lease file is gone");
        let text = fs::read_to_string(
            fs::read_dir(root.join("leases"))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path(),
        )
        .unwrap();
        assert_eq!(
            text.lines().filter(|l| l.starts_with("t ")).count(),
            1,
            "each item once: {text}"
        );
        assert!(
            text.starts_with(&format!("# pid {} (", std::process::id())),
            "{text}"
        );
        drop(x);
        drop(a);
    }
}
