//! Key completeness: for every input category a task can see, a change
//! changes the task's key; for everything a task cannot see (where the
//! checkout, cache and build directory are, `-j`, unexported variables, the
//! time of day) the key stays the same.
//!
//! Each case is a [`Scenario`] built from the same base: the fixture layers
//! (`testdata/exec/meta-tiny` over `layers/meta-bitzel`) copied into a fresh
//! checkout, a `.bbappend` and `local.conf` lines of the case's own, parsed by
//! `bitzel-meta`, planned by `bitzel-graph`; the key is what
//! `BuildExecutor::action` derives for one task from synthetic dependency
//! outputs. Nothing runs, so neither root nor a sandbox is needed.
//!
//! Adding a category is one line in [`CHANGES`] (or [`SAME`]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::Mutex;

use bitzel_cache::{Action, Cache, Digest};
use bitzel_exec::builtin::Fetched;
use bitzel_exec::executor::{
    BuildExecutor, Download, HostDirs, HostTools, RootfsLayer, TaskOutput,
};
use bitzel_sandbox::{Backend, HelperExe, NativeBackend, NoneBackend, SandboxConfig};

/// Everything one key computation depends on; each case changes one thing.
#[derive(Clone)]
struct Scenario {
    /// The task whose key is compared.
    task: &'static str,
    /// Where the checkout, build and cache directories are (below a fresh
    /// temp dir).
    checkout: &'static str,
    build: &'static str,
    cache: &'static str,
    /// `.bbappend` text for the `tiny` recipe.
    append: String,
    /// Extra `local.conf` lines.
    conf: String,
    /// Variables handed to the datastore from the environment.
    env: BTreeMap<String, String>,
    /// Files written into the recipe directory (relative path, content).
    files: Vec<(&'static str, &'static str)>,
    /// Parser threads.
    parse_jobs: Option<usize>,
    /// Seeds of the synthetic dependency outputs and download digest.
    dep_output: &'static str,
    download: &'static str,
    /// Seed of the host-tool digest.
    tools: &'static str,
    /// Content of a header in the (stand-in) host root, digested as bitzel
    /// digests the real one.
    host_header: &'static str,
    /// Native sandbox (hermetic) or none.
    hermetic: bool,
    /// The host directories bound as the build root.
    root_paths: Vec<PathBuf>,
    /// `rootfs` build root: the seed of its tree digest (`None`: the host root).
    rootfs: Option<&'static str>,
}

impl Scenario {
    fn base(task: &'static str) -> Scenario {
        Scenario {
            task,
            checkout: "checkout",
            build: "build",
            cache: "cache",
            append: String::new(),
            conf: String::new(),
            env: BTreeMap::new(),
            files: Vec::new(),
            parse_jobs: None,
            dep_output: "dep",
            download: "download",
            tools: "tools",
            host_header: "int host_value = 1;\n",
            hermetic: true,
            root_paths: ["/usr", "/bin", "/lib", "/etc"]
                .iter()
                .map(PathBuf::from)
                .collect(),
            rootfs: None,
        }
    }

    fn append(&mut self, text: &str) {
        self.append.push_str(text);
        self.append.push('\n');
    }
}

type Change = fn(&mut Scenario);

/// The digest of a stand-in host root (one directory, the same for every
/// scenario of this process) whose `include/bitzel-key-test.h` holds
/// `header`, computed by the same function as the real host root's.
fn host_root_digest(header: &str) -> Digest {
    static ROOT: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    let _one_at_a_time = LOCK.lock().unwrap();
    let root = ROOT.get_or_init(|| tempfile::tempdir().unwrap()).path();
    fs::create_dir_all(root.join("include")).unwrap();
    fs::write(root.join("include/bitzel-key-test.h"), header).unwrap();
    let none = bitzel_cache::HostDigestCache::none();
    bitzel_cache::host_root_digest(&[root.to_path_buf()], &none)
        .unwrap()
        .digest
}

/// Each of these must change the key of the named task.
const CHANGES: &[(&str, &str, Change)] = &[
    ("script", "do_compile", |s| {
        s.append("do_compile() {\n\techo changed >out.txt\n}")
    }),
    ("exported variable", "do_compile", |s| {
        s.append("GREETING = \"bye\"")
    }),
    (
        "exported variable from the configuration",
        "do_compile",
        |s| s.conf.push_str("export NEW_SETTING = \"1\"\n"),
    ),
    ("[sysroot-layer]", "do_populate_sysroot", |s| {
        s.append("do_populate_sysroot[sysroot-layer] = \"image\"")
    }),
    ("[deploy-dir]", "do_install", |s| {
        s.append("do_install[deploy-dir] = \"image\"")
    }),
    ("[network]", "do_compile", |s| {
        s.append("do_compile[network] = \"1\"")
    }),
    ("[builtin]", "do_patch", |s| {
        s.append("do_patch[builtin] = \"unpack\"")
    }),
    ("[dirs]", "do_compile", |s| {
        s.append("do_compile[dirs] = \"${WORKDIR}/other ${B}\"")
    }),
    ("[cleandirs]", "do_compile", |s| {
        s.append("do_compile[cleandirs] = \"${B}/obj\"")
    }),
    ("[prefuncs]", "do_compile", |s| {
        s.append("do_compile[prefuncs] += \"tiny_post\"")
    }),
    ("[postfuncs]", "do_compile", |s| {
        s.append("do_compile[postfuncs] = \"\"")
    }),
    ("a prefunc's body", "do_compile", |s| {
        s.append("tiny_pre() {\n\techo other >pre.txt\n}")
    }),
    ("a postfunc's [dirs]", "do_compile", |s| {
        s.append("tiny_post[dirs] = \"${WORKDIR}\"")
    }),
    ("dependency output", "do_compile", |s| {
        s.dep_output = "other dep"
    }),
    ("download", "do_unpack", |s| s.download = "other download"),
    ("[file-checksums] file", "do_configure", |s| {
        s.files.push(("files/a.cfg", "CONFIG_A=n\n"))
    }),
    (
        "[file-checksums] file below a directory",
        "do_configure",
        |s| s.files.push(("files/conf.d/extra", "EXTRA=2\n")),
    ),
    (
        "[file-checksums] new file in a directory",
        "do_configure",
        |s| s.files.push(("files/conf.d/more", "x\n")),
    ),
    ("[file-checksums] new glob match", "do_configure", |s| {
        s.files.push(("files/c.cfg", "CONFIG_C=y\n"))
    }),
    ("[file-checksums] absent entry", "do_configure", |s| {
        s.append("do_configure[file-checksums] += \"${FILE_DIRNAME}/files/x.cfg:False\"")
    }),
    ("host tool", "do_compile", |s| s.tools = "other tools"),
    ("host header", "do_compile", |s| {
        s.host_header = "int host_value = 2;\n"
    }),
    ("sandbox policy: hermetic", "do_compile", |s| {
        s.hermetic = false
    }),
    ("build root", "do_compile", |s| {
        s.root_paths.push("/opt".into())
    }),
    ("build root kind: rootfs", "do_compile", |s| {
        s.rootfs = Some("root a")
    }),
];

/// Each of these must leave the key of the named task alone.
const SAME: &[(&str, &str, Change)] = &[
    ("checkout path", "do_configure", |s| {
        s.checkout = "elsewhere/checkout"
    }),
    ("cache directory path", "do_compile", |s| {
        s.cache = "other-cache"
    }),
    ("build directory path", "do_compile", |s| {
        s.build = "elsewhere/build"
    }),
    ("-j (parser threads)", "do_compile", |s| {
        s.parse_jobs = Some(1)
    }),
    ("unexported variable", "do_compile", |s| {
        s.append("UNUSED_SETTING = \"2\"")
    }),
    ("DATE/TIME (unexported)", "do_compile", |s| {
        s.conf.push_str("DATE = \"20260101\"\nTIME = \"120000\"\n")
    }),
    ("environment variable (not exported)", "do_compile", |s| {
        s.env.insert("BITZEL_TEST_HOST_VAR".into(), "x".into());
    }),
    ("limits flag (deliberately not keyed)", "do_compile", |s| {
        s.append("do_compile[memory-max] = \"1G\"")
    }),
];

/// The action of `s.task`, from a fresh checkout in a fresh temp dir.
fn action(s: &Scenario) -> Action {
    let tmp = tempfile::tempdir().unwrap();
    let checkout = common::checkout(&tmp.path().join(s.checkout));
    let recipe_dir = common::recipe_dir(&checkout);
    for (rel, content) in &s.files {
        fs::write(recipe_dir.join(rel), content).unwrap();
    }
    fs::write(recipe_dir.join("tiny_1.0.bbappend"), &s.append).unwrap();
    let build_dir = tmp.path().join(s.build);
    let ws = common::load(&checkout, &build_dir, &s.conf, s.env.clone(), s.parse_jobs);
    let graph = common::graph(&ws);
    let id = graph.find("tiny", s.task).expect("task in the graph");
    let task = &graph.tasks[id];

    // Synthetic outputs of the task's dependencies: a work layer each, and
    // the recipe's one download (fetched, and handed along the chain).
    let outputs: Vec<_> = graph
        .deps(id)
        .iter()
        .map(|&d| {
            let dep = &graph.tasks[d];
            let mut out = TaskOutput {
                work: vec![Digest::of_bytes(
                    format!("{} {}", s.dep_output, dep.label()).as_bytes(),
                )],
                ..TaskOutput::default()
            };
            {
                let fetched = Fetched {
                    entry_index: 0,
                    local_name: "hello.txt".into(),
                    local_path: recipe_dir.join("files/hello.txt"),
                    digest: String::new(),
                    sha256: None,
                    is_dir: false,
                    downloaded: false,
                };
                let digest = Digest::of_bytes(s.download.as_bytes());
                out.downloads.insert(
                    "hello.txt".into(),
                    Download {
                        fetched,
                        digest,
                        pending: None,
                    },
                );
            }
            (dep, out)
        })
        .collect();
    let deps: Vec<_> = outputs.iter().map(|(t, o)| (*t, o)).collect();

    let cache = Cache::open(&tmp.path().join(s.cache)).unwrap();
    let native = NativeBackend::new(SandboxConfig::new(HelperExe::CurrentExe));
    let sandbox: &dyn Backend = if s.hermetic { &native } else { &NoneBackend };
    let exec = BuildExecutor {
        no_network: true,
        timeout: None,
        explain_only: false,
        devshell: None,
        force: Default::default(),
        remote: None,
        ..BuildExecutor::new(
            &ws.recipes,
            &cache,
            sandbox,
            HostDirs {
                build_dir: build_dir.clone(),
                dl_dir: build_dir.join("downloads"),
            },
            match s.rootfs {
                None => HostTools {
                    dir: build_dir.join("tmp/hosttools"),
                    digest: Digest::of_bytes(s.tools.as_bytes()),
                    root_digest: host_root_digest(s.host_header),
                    root_paths: s.root_paths.clone(),
                    rootfs: None,
                },
                // As `bitzel build` makes it in rootfs mode: nothing of the host.
                Some(seed) => {
                    let digest = Digest::of_bytes(seed.as_bytes());
                    HostTools {
                        dir: build_dir.join("tmp/hosttools-rootfs"),
                        digest: Digest::of_bytes(s.tools.as_bytes()),
                        root_digest: digest,
                        root_paths: Vec::new(),
                        rootfs: Some(RootfsLayer {
                            digest,
                            layer: tmp.path().join(s.cache).join("layers/root"),
                        }),
                    }
                }
            },
        )
    };
    exec.action(task, &deps)
        .unwrap_or_else(|f| panic!("{}: {}", task.label(), f.message))
        .expect("a keyed task")
}

/// The base action of each task, computed once.
fn base(task: &'static str) -> Action {
    static BASE: Mutex<BTreeMap<&str, Action>> = Mutex::new(BTreeMap::new());
    let mut m = BASE.lock().unwrap();
    m.entry(task)
        .or_insert_with(|| action(&Scenario::base(task)))
        .clone()
}

fn run(cases: &[(&str, &'static str, Change)], expect_change: bool) -> Vec<String> {
    let mut wrong = Vec::new();
    for (name, task, change) in cases {
        let mut s = Scenario::base(task);
        change(&mut s);
        let (old, new) = (base(task), action(&s));
        let diff = bitzel_cache::explain::diff(&old, &new);
        if (old.key() != new.key()) != expect_change {
            wrong.push(format!("{name} ({task}): {diff:?}"));
        }
    }
    wrong
}

#[test]
fn every_input_category_changes_the_key() {
    let wrong = run(CHANGES, true);
    assert!(
        wrong.is_empty(),
        "these changes left the key alone: {wrong:#?}"
    );
}

#[test]
fn what_a_task_cannot_see_leaves_the_key_alone() {
    let wrong = run(SAME, false);
    assert!(wrong.is_empty(), "these changed the key: {wrong:#?}");
}

#[test]
fn the_key_carries_the_execution_semantics_version() {
    let a = base("do_compile");
    assert_eq!(
        a.policy.get("semantics"),
        Some(&bitzel_exec::EXEC_SEMANTICS_VERSION.to_string())
    );
    let mut older = a.clone();
    older.policy.insert(
        "semantics".into(),
        (bitzel_exec::EXEC_SEMANTICS_VERSION - 1).to_string(),
    );
    assert_ne!(a.key(), older.key());
    // Without the entry (every key made before it existed) it differs too.
    older.policy.remove("semantics");
    assert_ne!(a.key(), older.key());
}

#[test]
fn the_wall_clock_does_not_enter_the_key() {
    let first = action(&Scenario::base("do_install"));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let again = action(&Scenario::base("do_install"));
    assert_eq!(first.key(), again.key());
}

#[test]
fn keyed_flags_are_named_in_the_action_and_no_host_path_is() {
    let a = base("do_configure");
    assert_eq!(
        a.vars.get("do_configure[dirs]").map(String::as_str),
        Some("/bitzel/work/tiny-1.0")
    );
    let inputs: Vec<&str> = a.inputs.keys().map(String::as_str).collect();
    for name in ["file:a.cfg", "file:b.cfg", "file:conf.d/"] {
        assert!(inputs.contains(&name), "{name} not among {inputs:?}");
    }
    assert_eq!(
        a.vars.get("file-checksums:absent").map(String::as_str),
        Some("absent.cfg.d")
    );
    // The checkout, build and cache directories live in a `.tmpXXXXXX`
    // directory of the test's; nothing of their paths may show.
    let text = format!("{a:?}");
    for host in ["/.tmp", "checkout", "meta-tiny", "/build"] {
        assert!(
            !text.contains(host),
            "a host path ({host}) entered the action: {text}"
        );
    }
}

#[test]
fn a_rootfs_key_has_the_roots_digest_and_nothing_of_the_host() {
    let mut a = Scenario::base("do_compile");
    a.rootfs = Some("root a");
    let ka = action(&a);
    assert_eq!(ka.policy["build_root"], "rootfs");
    assert_eq!(
        ka.inputs[bitzel_exec::executor::BUILD_ROOT_INPUT],
        Digest::of_bytes(b"root a")
    );
    assert!(!ka.inputs.contains_key("host-root"), "{ka:?}");
    assert!(!ka.policy.contains_key("build_root_paths"), "{ka:?}");
    // Another root: another key. The host's files (and where they are): the same key.
    let mut b = Scenario::base("do_compile");
    b.rootfs = Some("root b");
    assert_ne!(action(&b).key(), ka.key());
    let mut c = Scenario::base("do_compile");
    c.rootfs = Some("root a");
    c.host_header = "int host_value = 3;\n";
    c.root_paths.push("/opt".into());
    c.checkout = "elsewhere/checkout";
    c.cache = "other-cache";
    assert_eq!(action(&c).key(), ka.key());
}
