//! The isolation suite: every test runs against the native and the bubblewrap backend
//! (`native::*`, `bwrap::*`). `scripts/test.d/20-sandbox-unprivileged.sh` runs the same
//! binary again as an unprivileged user. Tests needing bwrap FAIL when it is missing
//! (`scripts/install-deps --test` installs `bubblewrap`).
//!
//! `BITZEL_SANDBOX_HELPER` overrides the helper binary (for copies of this test binary).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    missing_docs
)]

use std::collections::BTreeSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bitzel_sandbox::*;

fn helper() -> PathBuf {
    std::env::var_os("BITZEL_SANDBOX_HELPER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_bitzel-sandbox-helper")))
}

fn config() -> SandboxConfig {
    SandboxConfig::new(HelperExe::Path(helper()))
}

fn make(kind: &str) -> Box<dyn Backend> {
    match kind {
        "native" => Box::new(NativeBackend::new(config())),
        "native_legacy" => {
            let mut c = config();
            c.force_legacy_overlay = true;
            Box::new(NativeBackend::new(c))
        }
        "bwrap" => {
            let found = std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).any(|d| d.join("bwrap").is_file()))
                .unwrap_or(false);
            assert!(
                found,
                "bwrap is not installed: run scripts/install-deps --test (package bubblewrap)"
            );
            Box::new(BwrapBackend::new(config()))
        }
        other => panic!("unknown backend {other}"),
    }
}

/// A task fixture: a temp dir with a lower layer, an upper/work pair, a read-only
/// downloads dir and output files.
struct T {
    dir: tempfile::TempDir,
    b: Box<dyn Backend>,
    kind: &'static str,
}

impl T {
    fn new(kind: &'static str) -> T {
        let dir = tempfile::Builder::new()
            .prefix("bitzel-iso-")
            .tempdir()
            .unwrap();
        for d in ["l1", "up", "wk", "dl", "secret"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        std::fs::write(dir.path().join("l1/input.txt"), "from-lower\n").unwrap();
        // Run as root, a task is an unprivileged host id: lower layers it writes into (copy-up)
        // must belong to it, as bitzel's cache materialises them.
        if let Some((uid, gid)) = sandbox_identity() {
            for p in ["l1", "l1/input.txt"] {
                std::os::unix::fs::chown(dir.path().join(p), Some(uid), Some(gid)).unwrap();
            }
        }
        std::fs::write(dir.path().join("dl/src.tar"), "tarball\n").unwrap();
        std::fs::write(dir.path().join("secret/key"), "secret\n").unwrap();
        T {
            dir,
            b: make(kind),
            kind,
        }
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn spec(&self, script: &str) -> SandboxSpec {
        let mut s = SandboxSpec::new(
            vec!["sh".into(), "-c".into(), script.into()],
            SandboxSpec::default_host_paths(),
        );
        s.env
            .insert("PATH".into(), "/usr/bin:/bin:/usr/sbin:/sbin".into());
        s.cwd = "/bitzel/work".into();
        s.hostname = "bitzel-test".into();
        s.timeout = Some(Duration::from_secs(60));
        s.mounts.push(Mount::Overlay {
            lowers: vec![self.p("l1")],
            upper: Some((self.p("up"), self.p("wk"))),
            dst: "/bitzel/work".into(),
        });
        s.mounts.push(Mount::Bind {
            src: self.p("dl"),
            dst: "/bitzel/downloads".into(),
            writable: false,
        });
        s.stdout = Stdio::File(self.p("out"));
        s.stderr = Stdio::File(self.p("err"));
        s
    }
    fn run(&self, spec: &SandboxSpec) -> ExitStatus {
        let o = self
            .b
            .run(spec)
            .unwrap_or_else(|e| panic!("{}: sandbox error: {e}", self.kind));
        o.status
    }
    /// Run a script, expect exit 0, return stdout.
    fn ok(&self, script: &str) -> String {
        let _ = std::fs::remove_file(self.p("out"));
        let _ = std::fs::remove_file(self.p("err"));
        let st = self.run(&self.spec(script));
        let out = std::fs::read_to_string(self.p("out")).unwrap_or_default();
        let err = std::fs::read_to_string(self.p("err")).unwrap_or_default();
        assert_eq!(
            st,
            ExitStatus::Code(0),
            "{}: script failed: {script}\nstdout: {out}\nstderr: {err}",
            self.kind
        );
        out
    }
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod native { $( #[test] fn $name() { super::$name(super::T::new("native")); } )* }
        mod bwrap { $( #[test] fn $name() { super::$name(super::T::new("bwrap")); } )* }
    };
}

suite!(
    exit_code_propagated,
    task_failure_is_not_setup_error,
    signal_reported,
    setup_error_missing_bind_source,
    setup_error_missing_program,
    setup_error_missing_interpreter,
    writes_outside_outputs_fail,
    undeclared_host_paths_invisible,
    siblings_of_declared_inputs_invisible,
    host_processes_invisible,
    kill_all_inside_harms_nothing_outside,
    no_route_to_host_loopback_or_elsewhere,
    network_policy_on_shares_host_network,
    hostname_fixed,
    proc_self_is_the_task,
    dev_holds_only_listed_nodes,
    only_fds_0_to_2,
    env_cleared,
    setuid_bits_cannot_be_created,
    setuid_bits_cannot_be_used_and_no_capabilities,
    daemonised_orphan_dead_when_task_returns,
    timeout_kills_sigterm_ignoring_tree,
    parent_death_kills_sandbox,
    symlink_outputs_captured_as_links,
    tmp_fresh_per_task,
    overlay_600_layers,
    overlay_deletion_is_a_whiteout_in_upper,
    cwd_stdin_and_rlimits,
    rootfs_layers_root,
    interactive_keeps_the_callers_session,
    task_runs_as_an_unprivileged_host_id,
    devshell_sees_no_host_secrets_and_maps_root_away,
    etc_is_generated,
    etc_with_network_has_the_resolver,
    toolchains_work_with_the_generated_etc,
    core_dumps_disabled,
);

fn exit_code_propagated(t: T) {
    assert_eq!(t.run(&t.spec("exit 7")), ExitStatus::Code(7));
    assert_eq!(t.run(&t.spec("exit 0")), ExitStatus::Code(0));
}

fn task_failure_is_not_setup_error(t: T) {
    let r = t.b.run(&t.spec("false"));
    assert!(
        matches!(
            r,
            Ok(Outcome {
                status: ExitStatus::Code(1),
                ..
            })
        ),
        "{r:?}"
    );
}

fn signal_reported(t: T) {
    assert_eq!(
        t.run(&t.spec("kill -SEGV $$")),
        ExitStatus::Signal(libc::SIGSEGV)
    );
    assert_eq!(
        t.run(&t.spec("kill -9 $$")),
        ExitStatus::Signal(libc::SIGKILL)
    );
}

fn setup_error_missing_bind_source(t: T) {
    let mut s = t.spec("true");
    let missing = t.p("does-not-exist");
    s.mounts.push(Mount::Bind {
        src: missing.clone(),
        dst: "/bitzel/x".into(),
        writable: false,
    });
    let e = t.b.run(&s).unwrap_err();
    assert!(e.is_setup(), "{e}");
    assert!(
        e.to_string().contains(missing.to_str().unwrap()),
        "error should name the path: {e}"
    );
}

fn setup_error_missing_program(t: T) {
    let mut s = t.spec("");
    s.argv = vec!["/no/such/program".into()];
    let e = t.b.run(&s).unwrap_err();
    match &e {
        SandboxError::Setup {
            step, path, errno, ..
        } => {
            assert_eq!(step, "exec");
            assert_eq!(path.as_deref(), Some(Path::new("/no/such/program")));
            assert_eq!(*errno, libc::ENOENT);
        }
        other => panic!("expected a setup error, got {other}"),
    }
}

fn setup_error_missing_interpreter(t: T) {
    let script = t.p("l1/run.sh");
    std::fs::write(&script, "#!/no/such/interpreter\necho hi\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut s = t.spec("");
    s.argv = vec!["/bitzel/work/run.sh".into()];
    let e = t.b.run(&s).unwrap_err();
    assert!(
        matches!(&e, SandboxError::Setup { step, errno, .. } if step == "exec" && *errno == libc::ENOENT),
        "{e}"
    );
    // A program that is not executable.
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = t.b.run(&s).unwrap_err();
    assert!(
        matches!(&e, SandboxError::Setup { errno, .. } if *errno == libc::EACCES),
        "{e}"
    );
}

fn writes_outside_outputs_fail(t: T) {
    for target in [
        "/usr/bitzel-x",
        "/etc/bitzel-x",
        "/bitzel-x",
        "/bitzel/downloads/x",
        "/bitzel/downloads/src.tar",
        "/dev/bitzel-x",
        "/proc/bitzel-x",
    ] {
        let st = t.run(&t.spec(&format!("echo x > {target}")));
        assert_ne!(
            st,
            ExitStatus::Code(0),
            "{}: writing {target} succeeded",
            t.kind
        );
    }
    assert!(!Path::new("/usr/bitzel-x").exists() && !Path::new("/etc/bitzel-x").exists());
    assert_eq!(
        std::fs::read_to_string(t.p("dl/src.tar")).unwrap(),
        "tarball\n"
    );
    t.ok("echo out > /bitzel/work/result && echo t > /tmp/x && echo y >> /bitzel/work/input.txt");
    assert_eq!(std::fs::read_to_string(t.p("up/result")).unwrap(), "out\n");
    assert_eq!(
        std::fs::read_to_string(t.p("up/input.txt")).unwrap(),
        "from-lower\ny\n"
    );
    assert_eq!(
        std::fs::read_to_string(t.p("l1/input.txt")).unwrap(),
        "from-lower\n",
        "lower layer changed"
    );
}

fn undeclared_host_paths_invisible(t: T) {
    let secret = t.p("secret/key");
    let out = t.ok(&format!(
        "for p in {} {} /root /home /work /var /srv /opt /mnt /sys /boot; do test -e $p && echo \"visible $p\"; done; ls /",
        secret.display(),
        t.dir.path().display()
    ));
    assert!(!out.contains("visible"), "{}: {out}", t.kind);
    let top: BTreeSet<&str> = out.lines().collect();
    for p in &top {
        assert!(
            [
                "bin", "bitzel", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sbin",
                "tmp", "usr"
            ]
            .contains(p),
            "{}: unexpected top-level entry {p}",
            t.kind
        );
    }
}

fn siblings_of_declared_inputs_invisible(t: T) {
    std::fs::create_dir_all(t.p("inputs/a")).unwrap();
    std::fs::write(t.p("inputs/a/f"), "a").unwrap();
    std::fs::write(t.p("inputs/b"), "sibling").unwrap();
    std::fs::write(t.p("inputs/file-in"), "file").unwrap();
    let mut s = t.spec("ls -A /bitzel/in; ls -A /bitzel/in/a; cat /bitzel/file; test -e /bitzel/in/../b && echo LEAK; true");
    s.mounts.push(Mount::Bind {
        src: t.p("inputs/a"),
        dst: "/bitzel/in/a".into(),
        writable: false,
    });
    s.mounts.push(Mount::Bind {
        src: t.p("inputs/file-in"),
        dst: "/bitzel/file".into(),
        writable: false,
    });
    assert_eq!(t.run(&s), ExitStatus::Code(0));
    let out = std::fs::read_to_string(t.p("out")).unwrap();
    assert_eq!(out, "a\nf\nfile", "{}", t.kind);
}

fn host_processes_invisible(t: T) {
    let out =
        t.ok("cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /proc | grep -E '^[0-9]+$' | wc -l");
    let mut lines = out.lines();
    let init = lines.next().unwrap();
    assert!(
        init.contains("__sandbox-helper"),
        "{}: PID 1 is {init}",
        t.kind
    );
    let n: usize = lines.next().unwrap().trim().parse().unwrap();
    // PID 1, sh, ls, grep, wc (cat has exited) — never the host's processes.
    assert!(n <= 5, "{}: {n} processes visible", t.kind);
}

fn kill_all_inside_harms_nothing_outside(t: T) {
    let mut bystander = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let st = t.run(&t.spec("kill -9 -1; kill -TERM -1; sleep 0.1; echo survived"));
    assert_eq!(st, ExitStatus::Code(0));
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "{}: a host process was killed",
        t.kind
    );
    bystander.kill().unwrap();
    let _ = bystander.wait();
}

fn no_route_to_host_loopback_or_elsewhere(t: T) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        "bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' 2>&1; echo rc=$?; \
         bash -c 'exec 3<>/dev/tcp/192.0.2.1/80' 2>&1; echo rc=$?; \
         echo links:; ip -o link show up | cut -d: -f2"
    );
    let out = t.ok(&script);
    assert!(
        out.contains("Connection refused"),
        "{}: loopback inside should refuse: {out}",
        t.kind
    );
    assert!(
        out.contains("Network is unreachable"),
        "{}: outside should be unreachable: {out}",
        t.kind
    );
    assert!(!out.contains("rc=0"), "{}: {out}", t.kind);
    let links: Vec<&str> = out
        .split("links:\n")
        .nth(1)
        .unwrap_or("")
        .lines()
        .map(str::trim)
        .collect();
    assert_eq!(links, vec!["lo"], "{}: {out}", t.kind);
    assert!(
        listener.accept().is_err(),
        "{}: the host listener was reached",
        t.kind
    );
}

fn network_policy_on_shares_host_network(t: T) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut s = t.spec(&format!("bash -c 'echo hello >/dev/tcp/127.0.0.1/{port}'"));
    s.network = true;
    let h = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        let mut buf = String::new();
        std::io::Read::read_to_string(&mut c, &mut buf).unwrap();
        buf
    });
    assert_eq!(t.run(&s), ExitStatus::Code(0));
    assert_eq!(h.join().unwrap(), "hello\n");
}

fn hostname_fixed(t: T) {
    assert_eq!(
        t.ok("hostname; cat /proc/sys/kernel/hostname"),
        "bitzel-test\nbitzel-test\n"
    );
    let _ = t.run(&t.spec("hostname evil"));
    assert_ne!(nix::unistd::gethostname().unwrap(), "evil");
}

fn proc_self_is_the_task(t: T) {
    let out = t.ok("echo $$; exec cat /proc/self/stat");
    let mut l = out.lines();
    let pid = l.next().unwrap();
    let stat_pid = l.next().unwrap().split(' ').next().unwrap();
    assert_eq!(pid, stat_pid);
    assert_eq!(pid, "2", "{}: the task is the first child of PID 1", t.kind);
}

fn dev_holds_only_listed_nodes(t: T) {
    let out = t.ok("ls -A /dev; ls -A /dev/pts; echo; stat -c '%n %F %t:%T' /dev/null /dev/zero");
    let mut parts = out.split("\n\n");
    let names: BTreeSet<&str> = parts.next().unwrap().lines().collect();
    let mut allowed: BTreeSet<&str> = DEV_NODES.iter().copied().collect();
    allowed.extend(["pts", "shm", "ptmx", "fd", "stdin", "stdout", "stderr"]);
    if t.kind == "bwrap" {
        allowed.insert("core"); // bwrap's --dev adds a core -> /proc/kcore link
    }
    let extra: Vec<_> = names
        .iter()
        .filter(|n| !allowed.contains(**n) && **n != "ptmx")
        .collect();
    assert!(
        extra.is_empty(),
        "{}: unexpected /dev entries {extra:?}",
        t.kind
    );
    for n in DEV_NODES {
        assert!(names.contains(n), "{}: /dev/{n} missing", t.kind);
    }
    assert!(parts
        .next()
        .unwrap()
        .contains("/dev/null character special file 1:3"));
    assert_eq!(
        t.ok("head -c 4 /dev/zero | od -An -tx1 | tr -d ' '"),
        "00000000\n"
    );
}

fn only_fds_0_to_2(t: T) {
    // A leaked, non-close-on-exec fd in the caller must not reach the task.
    let leak = std::fs::File::open("/dev/null").unwrap();
    // SAFETY: dup of a valid fd; the result has no FD_CLOEXEC.
    let fd = unsafe { libc::dup(std::os::fd::AsRawFd::as_raw_fd(&leak)) };
    assert!(fd > 2);
    let mut s = t.spec("");
    s.argv = vec!["/bin/ls".into(), "-l".into(), "/proc/self/fd".into()];
    let st = t.run(&s);
    // SAFETY: closing the fd we duplicated.
    unsafe { libc::close(fd) };
    assert_eq!(st, ExitStatus::Code(0));
    let out = std::fs::read_to_string(t.p("out")).unwrap();
    let fds: Vec<(u32, &str)> = out
        .lines()
        .filter_map(|l| l.split_once(" -> "))
        .map(|(a, b)| (a.rsplit(' ').next().unwrap().parse().unwrap(), b))
        .collect();
    let unexpected: Vec<_> = fds
        .iter()
        .filter(|(n, target)| *n > 2 && !(target.starts_with("/proc/") && target.ends_with("/fd")))
        .collect();
    // Only 0-2, plus the directory ls itself opened to list them.
    assert!(unexpected.is_empty(), "{}: {out}", t.kind);
    assert_eq!(fds.len(), 4, "{}: {out}", t.kind);
}

fn env_cleared(t: T) {
    let mut s = t.spec("");
    s.argv = vec!["/usr/bin/env".into()];
    s.env.insert("FOO".into(), "bar baz".into());
    assert_eq!(t.run(&s), ExitStatus::Code(0));
    let out = std::fs::read_to_string(t.p("out")).unwrap();
    assert_eq!(
        out, "FOO=bar baz\nPATH=/usr/bin:/bin:/usr/sbin:/sbin\n",
        "{}",
        t.kind
    );
}

fn setuid_bits_cannot_be_created(t: T) {
    let out = t.ok(
        "for d in /tmp /bitzel/work; do touch $d/f; \
           chmod u+s $d/f && echo \"made-suid $d\"; chmod g+s $d/f && echo \"made-sgid $d\"; \
           install -m 4755 /bin/true $d/t 2>/dev/null && echo \"installed $d\"; \
           stat -c '%A %n' $d/f; done; \
         cp /bin/true /tmp/x; python3 -c 'import os; os.chmod(\"/tmp/x\", 0o4755)' 2>/dev/null; stat -c '%A' /tmp/x",
    );
    assert!(
        !out.contains("made-") && !out.contains("installed"),
        "{}: {out}",
        t.kind
    );
    assert!(
        !out.contains('s')
            || out
                .lines()
                .all(|l| !l.split(' ').next().unwrap_or("").contains('s')),
        "{}: {out}",
        t.kind
    );
    let md = std::fs::metadata(t.p("up/f")).unwrap();
    assert_eq!(md.mode() & 0o6000, 0);
}

fn setuid_bits_cannot_be_used_and_no_capabilities(t: T) {
    let out = t.ok(
        "grep -E '^(NoNewPrivs|CapEff|CapPrm|CapBnd)' /proc/self/status; \
         awk '{print $6}' /proc/self/mountinfo | grep -v nosuid | wc -l; \
         mount -o remount,rw /usr 2>/dev/null && echo REMOUNTED; \
         umount /bitzel/downloads 2>/dev/null && echo UNMOUNTED; true",
    );
    assert!(out.contains("NoNewPrivs:\t1"), "{}: {out}", t.kind);
    for cap in ["CapEff", "CapPrm", "CapBnd"] {
        assert!(
            out.contains(&format!("{cap}:\t0000000000000000")),
            "{}: {cap} not empty: {out}",
            t.kind
        );
    }
    assert!(
        out.contains("\n0\n"),
        "{}: mounts without nosuid: {out}",
        t.kind
    );
    assert!(
        !out.contains("REMOUNTED") && !out.contains("UNMOUNTED"),
        "{}: {out}",
        t.kind
    );
}

fn daemonised_orphan_dead_when_task_returns(t: T) {
    let start = Instant::now();
    // The daemon writes after 3 s; a run that waited for it would take that long.
    let st = t.run(&t.spec("setsid sh -c 'sleep 3; echo late > /bitzel/work/late' >/dev/null 2>&1 < /dev/null & echo started"));
    assert_eq!(st, ExitStatus::Code(0));
    assert!(
        start.elapsed() < Duration::from_millis(2500),
        "{}: run waited for the daemon",
        t.kind
    );
    std::thread::sleep(Duration::from_millis(3500).saturating_sub(start.elapsed()));
    assert!(
        !t.p("up/late").exists(),
        "{}: the daemon outlived the task",
        t.kind
    );
}

fn timeout_kills_sigterm_ignoring_tree(t: T) {
    let mut s = t.spec("trap '' TERM; (trap '' TERM; while :; do sleep 0.05; echo > /bitzel/work/beat; done) & while :; do sleep 0.05; done");
    s.timeout = Some(Duration::from_millis(400));
    s.kill_grace = Duration::from_millis(300);
    let start = Instant::now();
    let o = t.b.run(&s).unwrap();
    assert_eq!(o.status, ExitStatus::TimedOut, "{}", t.kind);
    assert!(start.elapsed() < Duration::from_secs(5));
    let m1 = std::fs::metadata(t.p("up/beat"))
        .unwrap()
        .modified()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let m2 = std::fs::metadata(t.p("up/beat"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(m1, m2, "{}: a child survived the timeout", t.kind);
}

fn parent_death_kills_sandbox(t: T) {
    let role = std::env::var("BITZEL_SANDBOX_TEST_ROLE").ok();
    let spec = |t: &T| {
        let mut s = t.spec("while :; do date +%s%N > /bitzel/work/beat; sleep 0.05; done");
        s.timeout = None;
        s
    };
    if role.as_deref() == Some("parent") {
        // The child role: use the fixture dir the parent names, run forever.
        let dir = PathBuf::from(std::env::var("BITZEL_SANDBOX_TEST_DIR").unwrap());
        let mut s = spec(&t);
        s.mounts[0] = Mount::Overlay {
            lowers: vec![dir.join("l1")],
            upper: Some((dir.join("up"), dir.join("wk"))),
            dst: "/bitzel/work".into(),
        };
        let _ = t.b.run(&s);
        return;
    }
    let name = format!("{}::parent_death_kills_sandbox", t.kind);
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &name, "--test-threads=1", "--nocapture"])
        .env("BITZEL_SANDBOX_TEST_ROLE", "parent")
        .env("BITZEL_SANDBOX_TEST_DIR", t.dir.path())
        .env("BITZEL_SANDBOX_HELPER", helper())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let beat = t.p("up/beat");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !beat.exists() {
        assert!(
            Instant::now() < deadline,
            "{}: the sandbox never started",
            t.kind
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(300));
    let a = std::fs::read_to_string(&beat).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let b = std::fs::read_to_string(&beat).unwrap();
    assert_eq!(a, b, "{}: the sandbox outlived its parent", t.kind);
}

fn symlink_outputs_captured_as_links(t: T) {
    t.ok("ln -s /etc/passwd /bitzel/work/abs; ln -s ../../../../../../etc/hostname /bitzel/work/rel; ln -s /bitzel/downloads/src.tar /bitzel/work/dl");
    for (name, target) in [
        ("abs", "/etc/passwd"),
        ("rel", "../../../../../../etc/hostname"),
        ("dl", "/bitzel/downloads/src.tar"),
    ] {
        let p = t.p(&format!("up/{name}"));
        let md = std::fs::symlink_metadata(&p).unwrap();
        assert!(
            md.file_type().is_symlink(),
            "{}: {name} is not a link",
            t.kind
        );
        assert_eq!(std::fs::read_link(&p).unwrap(), PathBuf::from(target));
    }
    // Writing through a link that points outside the outputs fails and changes nothing.
    let st = t.run(&t.spec("echo pwned > /bitzel/work/dl"));
    assert_ne!(st, ExitStatus::Code(0));
    assert_eq!(
        std::fs::read_to_string(t.p("dl/src.tar")).unwrap(),
        "tarball\n"
    );
}

fn tmp_fresh_per_task(t: T) {
    t.ok("test ! -e /tmp/marker && touch /tmp/marker && ls -A /tmp");
    assert_eq!(t.ok("ls -A /tmp | wc -l"), "0\n");
}

fn overlay_600_layers_with(t: &T) {
    let mut lowers = Vec::new();
    for i in 0..600 {
        let d = t.p(&format!("layers/{i:03}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("f{i:03}")), "").unwrap();
        std::fs::write(d.join("top"), format!("{i}\n")).unwrap();
        lowers.push(d);
    }
    lowers.reverse(); // top first: layer 599 is on top
    let mut s = t.spec("ls /bitzel/sysroot | wc -l; cat /bitzel/sysroot/top; ls /bitzel/work | wc -l; cat /bitzel/work/top; echo new > /bitzel/work/new");
    s.mounts.push(Mount::Overlay {
        lowers: lowers.clone(),
        upper: None,
        dst: "/bitzel/sysroot".into(),
    });
    s.mounts[0] = Mount::Overlay {
        lowers,
        upper: Some((t.p("up"), t.p("wk"))),
        dst: "/bitzel/work".into(),
    };
    assert_eq!(
        t.run(&s),
        ExitStatus::Code(0),
        "{}: {}",
        t.kind,
        std::fs::read_to_string(t.p("err")).unwrap_or_default()
    );
    assert_eq!(
        std::fs::read_to_string(t.p("out")).unwrap(),
        "601\n599\n601\n599\n"
    );
    assert_eq!(std::fs::read_to_string(t.p("up/new")).unwrap(), "new\n");
}

fn overlay_600_layers(t: T) {
    overlay_600_layers_with(&t);
}

#[test]
fn native_legacy_mount_api_600_layers() {
    overlay_600_layers_with(&T::new("native_legacy"));
}

#[test]
fn native_legacy_mount_api_long_paths() {
    long_layer_paths(T::new("native_legacy"));
}

#[test]
fn native_fsconfig_long_layer_paths_over_255_bytes() {
    long_layer_paths(T::new("native"));
}

fn long_layer_paths(t: T) {
    let long = "d".repeat(200);
    let mut lowers = Vec::new();
    for i in 0..40 {
        let d = t.p(&format!("{long}/{long}/{i:02}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("f{i}")), "").unwrap();
        lowers.push(d);
    }
    let mut s = t.spec("ls /bitzel/sysroot | wc -l");
    s.mounts.push(Mount::Overlay {
        lowers,
        upper: None,
        dst: "/bitzel/sysroot".into(),
    });
    assert_eq!(
        t.run(&s),
        ExitStatus::Code(0),
        "{}",
        std::fs::read_to_string(t.p("err")).unwrap_or_default()
    );
    assert_eq!(std::fs::read_to_string(t.p("out")).unwrap(), "40\n");
}

fn overlay_deletion_is_a_whiteout_in_upper(t: T) {
    t.ok("rm /bitzel/work/input.txt; test ! -e /bitzel/work/input.txt");
    let md = std::fs::symlink_metadata(t.p("up/input.txt")).unwrap();
    assert!(
        md.file_type().is_char_device() && md.rdev() == 0,
        "{}: no whiteout",
        t.kind
    );
    assert!(t.p("l1/input.txt").exists());
}

fn cwd_stdin_and_rlimits(t: T) {
    std::fs::write(t.p("in"), "piped\n").unwrap();
    let mut s = t.spec("pwd; cat; ulimit -n; ulimit -t");
    s.stdin = Stdio::File(t.p("in"));
    s.limits.nofile = Some(123);
    s.limits.cpu_secs = Some(77);
    assert_eq!(t.run(&s), ExitStatus::Code(0));
    assert_eq!(
        std::fs::read_to_string(t.p("out")).unwrap(),
        "/bitzel/work\npiped\n123\n77\n"
    );
    // A missing working directory is a setup error.
    let mut s = t.spec("true");
    s.cwd = "/no/such/dir".into();
    let e = t.b.run(&s).unwrap_err();
    assert!(
        matches!(&e, SandboxError::Setup { step, .. } if step == "chdir"),
        "{e}"
    );
}

/// Copy `/bin/sh` and the libraries it needs into layer directories.
fn build_rootfs(t: &T, split: bool) -> Vec<PathBuf> {
    let base = t.p("rootfs-base");
    let top = if split {
        t.p("rootfs-top")
    } else {
        base.clone()
    };
    let ldd = std::process::Command::new("ldd")
        .arg("/bin/sh")
        .output()
        .unwrap();
    let mut files: Vec<PathBuf> = String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(PathBuf::from)
        .collect();
    files.push("/bin/sh".into());
    // The bwrap backend's PID 1 is the helper, so a rootfs must provide its libraries too
    // (a real rootfs has libc and libgcc_s).
    let ldd = std::process::Command::new("ldd")
        .arg(helper())
        .output()
        .unwrap();
    files.extend(
        String::from_utf8_lossy(&ldd.stdout)
            .split_whitespace()
            .filter(|w| w.starts_with('/'))
            .map(PathBuf::from),
    );
    files.sort();
    files.dedup();
    for f in files {
        let layer = if f.ends_with("sh") { &top } else { &base };
        let dst = layer.join(f.strip_prefix("/").unwrap());
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(std::fs::canonicalize(&f).unwrap(), &dst).unwrap();
    }
    if split {
        vec![base, top]
    } else {
        vec![base]
    }
}

fn rootfs_layers_root(t: T) {
    // Native stacks two layers; bwrap takes a single-layer rootfs.
    let layers = build_rootfs(&t, t.kind == "native");
    let mut s = t.spec("echo *; test -e /usr/bin/ls && echo HOST; echo ok > /bitzel/work/o");
    s.argv[0] = "/bin/sh".into();
    s.root = RootSpec::Layers(layers);
    assert_eq!(
        t.run(&s),
        ExitStatus::Code(0),
        "{}: {}",
        t.kind,
        std::fs::read_to_string(t.p("err")).unwrap_or_default()
    );
    let out = std::fs::read_to_string(t.p("out")).unwrap();
    assert!(
        !out.contains("HOST"),
        "{}: host /usr visible: {out}",
        t.kind
    );
    assert_eq!(std::fs::read_to_string(t.p("up/o")).unwrap(), "ok\n");
}

fn interactive_keeps_the_callers_session(t: T) {
    let script = "read -r pid comm state ppid pgrp sid rest < /proc/self/stat; echo $pid $sid > /bitzel/work/sid";
    assert_eq!(t.run(&t.spec(script)), ExitStatus::Code(0));
    // A normal run is its own session (no controlling terminal of the caller's).
    assert_eq!(
        std::fs::read_to_string(t.p("up/sid")).unwrap(),
        "2 2\n",
        "{}",
        t.kind
    );
    let o = t.b.run_interactive(&t.spec(script)).unwrap();
    assert_eq!(o.status, ExitStatus::Code(0));
    // devshell: the caller's session, whose leader is outside the PID namespace (shown as 0).
    assert_eq!(
        std::fs::read_to_string(t.p("up/sid")).unwrap(),
        "2 0\n",
        "{}",
        t.kind
    );
}

/// The host ids the sandbox's 0 must map to: the unprivileged range when run as root, else
/// the invoking user.
fn expected_identity() -> (u32, u32) {
    let root = nix::unistd::geteuid().is_root();
    match sandbox_identity() {
        Some(ids) => {
            assert!(root, "sandbox_identity() is Some for a non-root user");
            ids
        }
        None => {
            assert!(
                !root,
                "run as root, tasks must be mapped to an unprivileged host range"
            );
            (
                nix::unistd::getuid().as_raw(),
                nix::unistd::getgid().as_raw(),
            )
        }
    }
}

/// `(inside, outside, count)` of the first line of an id map.
fn first_map_line(text: &str) -> (u32, u32, u32) {
    let f: Vec<u32> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    assert_eq!(f.len(), 3, "id map {text:?}");
    (f[0], f[1], f[2])
}

fn task_runs_as_an_unprivileged_host_id(t: T) {
    let (uid, gid) = expected_identity();
    let out = t.ok(
        "cat /proc/self/uid_map; echo; cat /proc/self/gid_map; echo; id -u; id -g; \
         grep '^Groups:' /proc/self/status; echo made > /bitzel/work/made; \
         echo appended >> /bitzel/work/input.txt; mkdir /bitzel/work/d && touch /bitzel/work/d/f",
    );
    let mut parts = out.split("\n\n");
    let umap = first_map_line(parts.next().unwrap());
    let gmap = first_map_line(parts.next().unwrap());
    assert_eq!((umap.0, umap.1), (0, uid), "{}: uid_map {out}", t.kind);
    assert_eq!((gmap.0, gmap.1), (0, gid), "{}: gid_map {out}", t.kind);
    assert_ne!(umap.1, 0, "{}: the task is host root", t.kind);
    let rest: Vec<&str> = parts.next().unwrap().lines().collect();
    assert_eq!(rest[..2], ["0", "0"], "{}: {out}", t.kind);
    if nix::unistd::geteuid().is_root() {
        // Host root's supplementary groups (e.g. 0) must not come along.
        assert_eq!(rest[2].trim_end(), "Groups:", "{}: {out}", t.kind);
    }
    for f in ["made", "input.txt", "d", "d/f"] {
        let md = std::fs::symlink_metadata(t.p(&format!("up/{f}"))).unwrap();
        assert_eq!((md.uid(), md.gid()), (uid, gid), "{}: owner of {f}", t.kind);
    }
}

/// Needs a host `/etc/shadow` (not in the VM of 35-isolation-vm.sh, which skips it by name).
fn devshell_sees_no_host_secrets_and_maps_root_away(t: T) {
    let shadow = Path::new("/etc/shadow");
    assert!(shadow.exists(), "this check needs a host /etc/shadow");
    let (uid, _) = expected_identity();
    let mut s = t.spec(
        "{ test -e /etc/shadow && echo SHADOW-VISIBLE; cat /bitzel/shadow >/dev/null 2>&1 && echo SHADOW-READ; \
           read inside outside count < /proc/self/uid_map; echo \"map $inside $outside\"; } > /bitzel/work/r",
    );
    // The host file bound in on purpose: even then the task cannot read it.
    s.mounts.push(Mount::Bind {
        src: shadow.into(),
        dst: "/bitzel/shadow".into(),
        writable: false,
    });
    let o = t.b.run_interactive(&s).unwrap();
    assert_eq!(o.status, ExitStatus::Code(0), "{}", t.kind);
    let r = std::fs::read_to_string(t.p("up/r")).unwrap();
    assert_eq!(r, format!("map 0 {uid}\n"), "{}", t.kind);
    assert_ne!(uid, 0);
}

fn etc_is_generated(t: T) {
    let out = t.ok(
        "ls -A /etc; echo; cat /etc/passwd /etc/group; echo; id -un; grep -w bitzel-test /etc/hosts; \
         test -e /etc/resolv.conf && echo RESOLV; test -e /etc/ssl/certs && echo CERTS; \
         echo x > /etc/x 2>/dev/null && echo WROTE; true",
    );
    let mut parts = out.split("\n\n");
    let names: BTreeSet<&str> = parts.next().unwrap().lines().collect();
    let mut expected: BTreeSet<String> = ["passwd", "group", "hosts", "nsswitch.conf"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for p in etc_host_paths(false) {
        let rel = p.strip_prefix("/etc").unwrap();
        let top = rel.components().next().unwrap();
        expected.insert(top.as_os_str().to_string_lossy().into_owned());
    }
    let names: BTreeSet<String> = names.iter().map(|s| s.to_string()).collect();
    assert_eq!(names, expected, "{}: /etc", t.kind);
    let rest = parts.collect::<Vec<_>>().join("\n\n");
    assert!(
        rest.starts_with("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:"),
        "{}: {rest}",
        t.kind
    );
    assert!(
        rest.contains("root:x:0:\nnogroup:x:65534:\n"),
        "{}: {rest}",
        t.kind
    );
    assert!(rest.contains("\nroot\n"), "{}: id -un: {rest}", t.kind);
    assert!(
        rest.contains("\n127.0.1.1\tbitzel-test\n"),
        "{}: {rest}",
        t.kind
    );
    for bad in ["RESOLV", "CERTS", "WROTE"] {
        assert!(!rest.contains(bad), "{}: {bad}: {rest}", t.kind);
    }
}

fn etc_with_network_has_the_resolver(t: T) {
    let mut s = t.spec(
        "cat /etc/resolv.conf; echo; ls /etc/ssl; test -e /etc/ssl/private && echo PRIVATE; true",
    );
    s.network = true;
    assert_eq!(t.run(&s), ExitStatus::Code(0), "{}", t.kind);
    let out = std::fs::read_to_string(t.p("out")).unwrap();
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    assert!(out.starts_with(&format!("{host}\n")), "{}: {out}", t.kind);
    assert!(!out.contains("PRIVATE"), "{}: {out}", t.kind);
    let expect_certs = Path::new("/etc/ssl/certs").exists();
    assert_eq!(out.contains("certs"), expect_certs, "{}: {out}", t.kind);
}

/// Needs the host's gcc, make, perl and python3 (not in the VM of 35-isolation-vm.sh, which
/// skips it by name).
fn toolchains_work_with_the_generated_etc(t: T) {
    std::fs::write(
        t.p("dl/h.c"),
        "#include <stdio.h>\nint main(void){puts(\"hello\");return 0;}\n",
    )
    .unwrap();
    std::fs::write(t.p("dl/Makefile"), "all:\n\t@echo made\n").unwrap();
    std::fs::write(t.p("dl/a"), "one\n").unwrap();
    std::fs::write(t.p("dl/p.diff"), "--- a\n+++ a\n@@ -1 +1 @@\n-one\n+two\n").unwrap();
    let out = t.ok("set -e; cd /tmp; cc -o h /bitzel/downloads/h.c; ./h; \
         gcc -static -o hs /bitzel/downloads/h.c; ./hs; \
         make -s -f /bitzel/downloads/Makefile; \
         echo 'a b' | awk '{print $2}'; \
         perl -e 'use POSIX; use File::Temp; print \"perl\\n\"'; \
         python3 -c 'import sysconfig, json, subprocess, tempfile, shutil; print(\"python\")'; \
         cp /bitzel/downloads/a a; patch -s a /bitzel/downloads/p.diff; cat a; \
         tar cf x.tar a; tar tvf x.tar | awk '{print $2}'");
    assert_eq!(
        out, "hello\nhello\nmade\nb\nperl\npython\ntwo\nroot/root\n",
        "{}",
        t.kind
    );
    let err = std::fs::read_to_string(t.p("err")).unwrap_or_default();
    assert_eq!(err, "", "{}: the tools complained", t.kind);
}

fn core_dumps_disabled(t: T) {
    // Make the inherited limit non-zero, so a sandbox that did not set it would show it.
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_CORE).unwrap();
    assert!(
        hard > 0,
        "the hard RLIMIT_CORE is 0 here: raise it to run this check"
    );
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, hard, hard).unwrap();
    assert_eq!(t.ok("ulimit -c; ulimit -Hc"), "0\n0\n", "{}", t.kind);
}
