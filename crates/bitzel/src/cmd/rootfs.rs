//! `bitzel rootfs lock|build|show <yml>`: the pinned Debian root of `build_root: rootfs`
//! (`bitzel_exec::rootfs`), and how `bitzel build` gets it ([`tools`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use bitzel_cache::Cache;
use bitzel_config::Project;
use bitzel_exec::executor::{HostTools, RootfsLayer};
use bitzel_exec::hosttools::ToolSet;
use bitzel_exec::rootfs::{self, Lock, RootfsDecl};

use crate::output::Output;
use crate::project::{load_project_locked, shown, ConfigArgs};

/// `PATH` inside the root, searched for `HOSTTOOLS`.
const ROOT_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";

/// Arguments of `bitzel rootfs`.
#[derive(Debug, clap::Args)]
pub struct RootfsArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: RootfsAction,
}

/// `bitzel rootfs` verbs.
#[derive(Debug, clap::Subcommand)]
pub enum RootfsAction {
    /// Build the declared root from its package list as the archive has it now and write
    /// `<name>.rootfs.lock` next to the kas file (every package's exact version; check it in).
    Lock(ConfigArgs),
    /// Build the locked root into the cache (or find it there) and print its digest.
    Build(ConfigArgs),
    /// Show the declaration, the lock and whether the cache holds its root.
    Show {
        /// The project.
        #[command(flatten)]
        project: ConfigArgs,
        /// List every locked package with its version.
        #[arg(long)]
        packages: bool,
    },
}

/// The declared root, the mirror resolved (the config's, else the host's apt sources).
pub fn decl(project: &Project) -> anyhow::Result<RootfsDecl> {
    let r = project.bitzel.rootfs.as_ref().with_context(|| {
        format!(
            "{} declares no root filesystem: add `bitzel: build_root: rootfs: {{suite: bookworm, packages: [build-essential, ...]}}`",
            project.file.display()
        )
    })?;
    Ok(RootfsDecl {
        suite: r.suite.clone(),
        packages: r.packages.clone(),
        mirror: r.mirror.clone(),
        tarball: r.tarball.clone(),
    })
}

/// The lock of `project`, checked against its declaration.
fn checked_lock(project: &Project, d: &RootfsDecl) -> anyhow::Result<(Lock, PathBuf)> {
    let path = rootfs::lock_path(&project.file);
    let lock = rootfs::read_lock(&path, &project.file)?;
    lock.check_matches(d, &rootfs::host_arch(), &path)?;
    Ok((lock, path))
}

/// Scratch space for building a root: the build directory's `tmp`.
fn scratch(project: &Project) -> anyhow::Result<PathBuf> {
    let d = crate::build_flow::build_dir(project)?.join("tmp");
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    Ok(d)
}

/// The locked root as a layer of this machine: found in the cache (a mount, no copy) or
/// built, checked against the lock and stored.
pub fn ensure_layer(
    out: &Output,
    project: &Project,
    cache: &Cache,
    may_build: bool,
) -> anyhow::Result<(RootfsLayer, rootfs::Built)> {
    let d = decl(project)?;
    let (lock, lock_file) = checked_lock(project, &d)?;
    if rootfs::remembered(cache, &lock)?.is_none() {
        if !may_build {
            anyhow::bail!(
                "the root of {} is not in the cache, and its digest is in every key: run `bitzel rootfs build {}` first",
                shown(&lock_file),
                project.file.display()
            );
        }
        out.info(&format!(
            "rootfs: building the {} root of {} ({} locked packages) into the cache",
            d.suite,
            shown(&lock_file),
            lock.packages.len()
        ));
    }
    let built = rootfs::ensure_root(cache, &d, &lock, &lock_file, &scratch(project)?)?;
    let layer = cache
        .ensure_layer(&built.digest)
        .with_context(|| format!("materialising the rootfs layer {}", built.digest.short()))?;
    Ok((
        RootfsLayer {
            digest: built.digest,
            layer,
        },
        built,
    ))
}

/// `bitzel build`'s tools in `rootfs` mode: the root's layer, and `HOSTTOOLS` resolved
/// inside it (links to paths in the root, so no host file is reachable through them).
/// Without `may_build` (`bitzel explain`, which runs nothing) a root not in the cache yet
/// is an error.
pub fn tools(
    out: &Output,
    project: &Project,
    cache: &Cache,
    build_dir: &Path,
    tool_names: (&[String], &[String]),
    may_build: bool,
) -> anyhow::Result<HostTools> {
    let (required, optional) = tool_names;
    let (root, built) = ensure_layer(out, project, cache, may_build)?;
    if built.fresh {
        out.info(&format!(
            "rootfs: {} built in {:.1}s",
            built.digest.short(),
            built.elapsed.as_secs_f64()
        ));
    }
    let found = rootfs::resolve_tools_in_root(&root.layer, required, optional, ROOT_PATH)
        .map_err(|missing| {
            anyhow::anyhow!(
                "the rootfs lacks these required tools (HOSTTOOLS): {}; add the packages that provide them to `bitzel: build_root: rootfs: packages:` and run `bitzel rootfs lock` again",
                missing.join(", ")
            )
        })?;
    let mut names = std::collections::BTreeMap::new();
    for (n, p) in &found {
        names.insert(n.clone(), bitzel_cache::Digest::of_bytes(p.as_bytes()));
    }
    let set = ToolSet {
        tools: found
            .into_iter()
            .map(|(n, p)| (n, PathBuf::from(p)))
            .collect(),
    };
    let dir = build_dir.join("tmp").join("hosttools-rootfs");
    set.link_into(&dir)?;
    Ok(HostTools {
        dir,
        // The tools' contents are in the root's digest; the set is its names and paths.
        digest: bitzel_cache::hosttools::set_digest(&names),
        root_paths: Vec::new(),
        root_digest: root.digest,
        rootfs: Some(root),
    })
}

/// Run `bitzel rootfs`.
pub fn run(out: &Output, args: RootfsArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        RootfsAction::Lock(c) => lock(out, &c),
        RootfsAction::Build(c) => {
            let (project, _l) = load_project_locked(out, &c.config, &c.overrides())?;
            let cache = crate::build_flow::open_cache(&project)?;
            let (root, built) = ensure_layer(out, &project, &cache, true)?;
            println!(
                "rootfs {}: {} in {:.1}s; layer {}",
                root.digest,
                if built.fresh {
                    "built and stored"
                } else {
                    "found in the cache"
                },
                built.elapsed.as_secs_f64(),
                root.layer.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        RootfsAction::Show { project, packages } => show(out, &project, packages),
    }
}

fn lock(out: &Output, c: &ConfigArgs) -> anyhow::Result<ExitCode> {
    let (project, _l) = load_project_locked(out, &c.config, &c.overrides())?;
    let d = decl(&project)?;
    let cache = crate::build_flow::open_cache(&project)?;
    out.info(&format!(
        "rootfs lock: building the {} root from [{}] as the archive has it now",
        d.suite,
        d.packages.join(", ")
    ));
    let (lock, built) = rootfs::lock(&cache, &d, &scratch(&project)?)?;
    let path = rootfs::lock_path(&project.file);
    let tmp = path.with_extension(format!("lock.tmp{}", std::process::id()));
    std::fs::write(&tmp, lock.render()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "{}: {} packages locked; root {} stored in the cache ({:.1}s)",
        shown(&path),
        lock.packages.len(),
        built.digest,
        built.elapsed.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

fn show(out: &Output, c: &ConfigArgs, packages: bool) -> anyhow::Result<ExitCode> {
    let (project, _l) = load_project_locked(out, &c.config, &c.overrides())?;
    let d = decl(&project)?;
    match &d.tarball {
        Some(t) => println!("declared:  tarball {}", t.display()),
        None => println!(
            "declared:  suite {}, packages [{}]",
            d.suite,
            d.packages.join(", ")
        ),
    }
    let mirror = d.mirror.clone().or_else(rootfs::host_mirror);
    println!(
        "mirror:    {}",
        mirror.as_deref().unwrap_or("(none: give `mirror:`)")
    );
    let path = rootfs::lock_path(&project.file);
    let lock = match checked_lock(&project, &d) {
        Ok((l, _)) => l,
        Err(e) => {
            println!("lock:      {}: {e:#}", shown(&path));
            return Ok(ExitCode::from(1));
        }
    };
    println!(
        "lock:      {} ({} packages)",
        shown(&path),
        lock.packages.len()
    );
    let cache = crate::build_flow::open_cache(&project)?;
    match rootfs::remembered(&cache, &lock)? {
        Some(dg) => println!("root:      {dg} (in the cache)"),
        None => println!("root:      not in the cache yet (`bitzel rootfs build` makes it)"),
    }
    if packages {
        for (p, v) in &lock.packages {
            println!("  {p} {v}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
