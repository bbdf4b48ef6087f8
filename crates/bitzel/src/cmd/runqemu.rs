//! `bitzel runqemu <machine.yml>`: boot the built kernel and initramfs in QEMU.
//!
//! The artifacts come from the build's deploy directory,
//! `<build_dir>/tmp/deploy/images/<machine>/`: the kernel (`bzImage`) and the
//! image `<image>-<machine>.cpio.gz` (the image is the config's first target
//! unless `--image` names another). QEMU runs with `-nographic`, the serial
//! console on this terminal, KVM when `/dev/kvm` is usable and the CPU
//! offers virtualisation, TCG otherwise.
//!
//! Interactive by default (quit with `Ctrl-A x`). `--check` boots without a
//! terminal, drives the serial console through pipes and passes when the
//! image's boot marker appears and its shell answers a probe with the
//! expected `uname -m` and a BusyBox banner; it fails on a kernel panic, an
//! early QEMU exit or `--timeout`. QEMU is killed on the way out either way.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::output::Output;

/// The boot marker of the shipped example image (`BITZEL_BOOT_MARKER` in
/// `core-image-busybox.bb`).
pub const DEFAULT_MARKER: &str = "bitzel: core-image-busybox is up";

/// Arguments of `bitzel runqemu`.
#[derive(Debug, clap::Args)]
pub struct RunqemuArgs {
    /// The kas-style project configuration (machine.yml) that was built.
    pub config: PathBuf,
    /// Build directory (default `bitzel.build_dir` of the config, else `./build`).
    #[arg(long, value_name = "DIR")]
    pub build_dir: Option<PathBuf>,
    /// The image recipe to boot (default: the config's first target).
    #[arg(long, value_name = "NAME")]
    pub image: Option<String>,
    /// Boot without a terminal, check that BusyBox runs inside, exit 0 or 1.
    #[arg(long)]
    pub check: bool,
    /// With --check: give up after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub timeout: u64,
    /// With --check: the line /init prints once the system is up.
    #[arg(long, value_name = "TEXT", default_value = DEFAULT_MARKER)]
    pub marker: String,
    /// Accelerator: auto (KVM when usable, else TCG), kvm or tcg.
    #[arg(long, value_enum, default_value_t = Accel::Auto)]
    pub accel: Accel,
    /// Guest memory in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub mem: u32,
    /// Extra kernel command-line arguments.
    #[arg(long, value_name = "ARGS")]
    pub append: Option<String>,
}

/// Which QEMU accelerator to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Accel {
    /// KVM when it is usable here, else TCG.
    Auto,
    /// Hardware virtualisation (fails when unavailable).
    Kvm,
    /// Software emulation.
    Tcg,
}

/// Run `bitzel runqemu`.
pub fn run(out: &Output, args: RunqemuArgs) -> anyhow::Result<ExitCode> {
    let project = bitzel_config::load(&args.config)?;
    let machine = project
        .machine
        .clone()
        .context("the config names no `machine:`; runqemu needs it to find the deploy directory")?;
    let image = match (&args.image, project.targets.first()) {
        (Some(i), _) => i.clone(),
        (None, Some(t)) => t.clone(),
        (None, None) => {
            bail!("the config names no `target:`; say which image to boot with --image")
        }
    };
    let cwd = std::env::current_dir().context("cannot determine the current directory")?;
    let build_dir = match (&args.build_dir, &project.bitzel.build_dir) {
        (Some(d), _) => cwd.join(d),
        (None, Some(d)) => project.dir.join(d),
        (None, None) => cwd.join("build"),
    };
    let deploy = qemu::deploy_dir(&build_dir, &machine);
    let (kernel, initrd) = qemu::find_artifacts(&deploy, &image, &machine)?;
    let accel = match args.accel {
        Accel::Kvm => qemu::Accel::Kvm,
        Accel::Tcg => qemu::Accel::Tcg,
        Accel::Auto => {
            let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
            let dev_ok = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/kvm")
                .is_ok();
            if qemu::kvm_usable(dev_ok, &cpuinfo) {
                qemu::Accel::Kvm
            } else {
                qemu::Accel::Tcg
            }
        }
    };
    let plan = qemu::Plan {
        binary: "qemu-system-x86_64".into(),
        kernel,
        initrd,
        mem_mib: args.mem,
        accel,
        append: args.append.clone().unwrap_or_default(),
    };
    out.info(&format!(
        "booting {} with {} ({})",
        plan.initrd.display(),
        plan.kernel.display(),
        accel.as_str()
    ));
    if !args.check {
        eprintln!("runqemu: serial console on this terminal; quit with Ctrl-A x");
        let status = Command::new(&plan.binary)
            .args(plan.args())
            .status()
            .with_context(|| format!("cannot run {} (install qemu-system-x86)", plan.binary))?;
        return Ok(if status.success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let verdict = check_boot(&plan, &args.marker, Duration::from_secs(args.timeout))?;
    match verdict {
        qemu::Verdict::Pass(details) => {
            println!("runqemu --check: ok: {details}");
            Ok(ExitCode::SUCCESS)
        }
        qemu::Verdict::Fail(reason) => {
            eprintln!("runqemu --check: FAILED: {reason}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Kills and reaps QEMU when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn check_boot(plan: &qemu::Plan, marker: &str, timeout: Duration) -> anyhow::Result<qemu::Verdict> {
    let mut child = KillOnDrop(
        Command::new(&plan.binary)
            .args(plan.args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {} (install qemu-system-x86)", plan.binary))?,
    );
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    for stream in [
        child
            .0
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .0
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let mut stdin = child
        .0
        .stdin
        .take()
        .context("no pipe to qemu's serial console")?;
    let mut console = qemu::ConsoleCheck::new(marker, "x86_64");
    let start = Instant::now();
    let mut stdout = std::io::stdout();
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Ok(qemu::Verdict::Fail(format!(
                "timed out after {}s ({}); last console lines:\n{}",
                timeout.as_secs(),
                console.waiting_for(),
                console.tail(20)
            )));
        }
        match rx.recv_timeout(left.min(Duration::from_millis(500))) {
            Ok(chunk) => {
                let _ = stdout.write_all(&chunk);
                let _ = stdout.flush();
                match console.feed(&chunk) {
                    qemu::Step::Wait => {}
                    qemu::Step::Send(cmd) => {
                        stdin
                            .write_all(cmd.as_bytes())
                            .context("writing to qemu's serial console")?;
                        stdin.flush().context("writing to qemu's serial console")?;
                    }
                    qemu::Step::Done(verdict) => {
                        let _ = stdin.write_all(b"poweroff -f\n");
                        let _ = stdin.flush();
                        println!();
                        return Ok(verdict);
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child
                    .0
                    .wait()
                    .ok()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                return Ok(qemu::Verdict::Fail(format!(
                    "qemu exited ({status}) {}; last console lines:\n{}",
                    console.waiting_for(),
                    console.tail(20)
                )));
            }
        }
    }
}

/// QEMU command lines and console checking, free of I/O so they can be tested.
pub mod qemu {
    use std::path::{Path, PathBuf};

    /// The accelerator actually used.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Accel {
        /// Hardware virtualisation.
        Kvm,
        /// Software emulation.
        Tcg,
    }

    impl Accel {
        /// `kvm` or `tcg`.
        pub fn as_str(self) -> &'static str {
            match self {
                Accel::Kvm => "kvm",
                Accel::Tcg => "tcg",
            }
        }
    }

    /// Whether KVM can be used: `/dev/kvm` opens read-write and the CPU
    /// advertises `vmx` or `svm` (a `/dev/kvm` without them, as in some
    /// nested VMs, hangs the guest).
    pub fn kvm_usable(dev_kvm_opens: bool, cpuinfo: &str) -> bool {
        dev_kvm_opens
            && cpuinfo
                .lines()
                .filter(|l| l.starts_with("flags"))
                .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
    }

    /// `<build_dir>/tmp/deploy/images/<machine>`.
    pub fn deploy_dir(build_dir: &Path, machine: &str) -> PathBuf {
        build_dir
            .join("tmp")
            .join("deploy")
            .join("images")
            .join(machine)
    }

    /// The kernel and the initramfs in the deploy directory, or an error
    /// that says what is missing and what is there.
    pub fn find_artifacts(
        deploy: &Path,
        image: &str,
        machine: &str,
    ) -> anyhow::Result<(PathBuf, PathBuf)> {
        let kernel = deploy.join("bzImage");
        let initrd = deploy.join(format!("{image}-{machine}.cpio.gz"));
        let missing: Vec<String> = [&kernel, &initrd]
            .iter()
            .filter(|p| !p.is_file())
            .map(|p| p.display().to_string())
            .collect();
        if !missing.is_empty() {
            let mut present: Vec<String> = std::fs::read_dir(deploy)
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            present.sort();
            anyhow::bail!(
                "not built yet: {} missing (the deploy directory {} has: {}); run `bitzel build` with this config first",
                missing.join(" and "),
                deploy.display(),
                if present.is_empty() { "nothing".to_string() } else { present.join(", ") }
            );
        }
        Ok((kernel, initrd))
    }

    /// Everything needed to start QEMU.
    #[derive(Debug, Clone)]
    pub struct Plan {
        /// `qemu-system-x86_64`.
        pub binary: String,
        /// The kernel image.
        pub kernel: PathBuf,
        /// The initramfs.
        pub initrd: PathBuf,
        /// Guest memory in MiB.
        pub mem_mib: u32,
        /// The accelerator.
        pub accel: Accel,
        /// Extra kernel arguments.
        pub append: String,
    }

    impl Plan {
        /// QEMU's arguments: no display, serial console on stdio, no reboot
        /// (a panic with `panic=-1` ends QEMU), no network.
        pub fn args(&self) -> Vec<String> {
            let mut cmdline = "console=ttyS0 panic=-1 quiet".to_string();
            if !self.append.trim().is_empty() {
                cmdline.push(' ');
                cmdline.push_str(self.append.trim());
            }
            let mut a: Vec<String> = vec![
                "-nographic".into(),
                "-no-reboot".into(),
                "-m".into(),
                self.mem_mib.to_string(),
                "-nic".into(),
                "none".into(),
                "-kernel".into(),
                self.kernel.display().to_string(),
                "-initrd".into(),
                self.initrd.display().to_string(),
                "-append".into(),
                cmdline,
            ];
            match self.accel {
                Accel::Kvm => a.extend(["-enable-kvm".into(), "-cpu".into(), "host".into()]),
                Accel::Tcg => a.extend(["-accel".into(), "tcg".into()]),
            }
            a
        }
    }

    /// The result of a `--check` boot.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Verdict {
        /// BusyBox answered; what it said.
        Pass(String),
        /// Why the check failed.
        Fail(String),
    }

    /// What the driver should do after feeding console output.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Step {
        /// Keep reading.
        Wait,
        /// Type this on the console.
        Send(String),
        /// Finished.
        Done(Verdict),
    }

    /// The probe typed once the marker appears. Its output differs from its
    /// echo: the echo shows `$(uname -m)` and `$((6*7))`, the output the values.
    pub const PROBE: &str = "echo \"BITZEL-CHECK arch=$(uname -m)\"; busybox | head -n 1; echo \"BITZEL-CHECK-END $((6*7))\"\n";

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum State {
        Booting,
        Probing,
        Finished,
    }

    /// Scans the serial console: waits for the boot marker, sends [`PROBE`],
    /// then checks its answer (`uname -m` and a `BusyBox v` banner). A kernel
    /// panic fails at once.
    #[derive(Debug)]
    pub struct ConsoleCheck {
        marker: String,
        arch: String,
        state: State,
        text: String,
        probe_from: usize,
    }

    impl ConsoleCheck {
        /// Expect `marker`, then a shell on `arch` (`x86_64`).
        pub fn new(marker: &str, arch: &str) -> Self {
            ConsoleCheck {
                marker: marker.to_string(),
                arch: arch.to_string(),
                state: State::Booting,
                text: String::new(),
                probe_from: 0,
            }
        }

        /// What the check is waiting for, for messages.
        pub fn waiting_for(&self) -> String {
            match self.state {
                State::Booting => format!("waiting for the boot marker `{}`", self.marker),
                State::Probing => "waiting for the shell's answer to the probe".into(),
                State::Finished => "finished".into(),
            }
        }

        /// The last `n` console lines, without escape sequences.
        pub fn tail(&self, n: usize) -> String {
            let lines: Vec<&str> = self.text.lines().collect();
            lines[lines.len().saturating_sub(n)..]
                .iter()
                .map(|l| format!("  | {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        }

        /// Feed console bytes.
        pub fn feed(&mut self, bytes: &[u8]) -> Step {
            self.text
                .push_str(&strip_escapes(&String::from_utf8_lossy(bytes)));
            if self.state == State::Finished {
                return Step::Wait;
            }
            if let Some(line) = self.text.lines().find(|l| l.contains("Kernel panic")) {
                self.state = State::Finished;
                return Step::Done(Verdict::Fail(format!(
                    "the kernel panicked: {}",
                    line.trim()
                )));
            }
            match self.state {
                State::Booting => match self.text.find(&self.marker) {
                    Some(at) => {
                        self.state = State::Probing;
                        self.probe_from = at + self.marker.len();
                        Step::Send(PROBE.to_string())
                    }
                    None => Step::Wait,
                },
                State::Probing => {
                    let answer = &self.text[self.probe_from..];
                    // Only complete lines count.
                    let complete = match answer.rfind('\n') {
                        Some(i) => &answer[..i],
                        None => return Step::Wait,
                    };
                    if !complete
                        .lines()
                        .any(|l| l.trim_end() == "BITZEL-CHECK-END 42")
                    {
                        return Step::Wait;
                    }
                    self.state = State::Finished;
                    let arch = complete
                        .lines()
                        .filter_map(|l| l.trim_end().strip_prefix("BITZEL-CHECK arch="))
                        .find(|a| !a.contains('$'))
                        .map(str::to_string);
                    let banner = complete
                        .lines()
                        .map(str::trim)
                        .find(|l| l.starts_with("BusyBox v"));
                    Step::Done(match (arch, banner) {
                        (Some(a), Some(b)) if a == self.arch => {
                            Verdict::Pass(format!("marker seen; uname -m = {a}; {b}"))
                        }
                        (Some(a), _) if a != self.arch => {
                            Verdict::Fail(format!("uname -m says `{a}`, expected `{}`", self.arch))
                        }
                        (None, _) => Verdict::Fail("the probe printed no architecture".into()),
                        _ => Verdict::Fail(
                            "no `BusyBox v...` banner: is /bin/busybox in the image?".into(),
                        ),
                    })
                }
                State::Finished => Step::Wait,
            }
        }
    }

    /// Drop ANSI escape sequences and carriage returns.
    fn strip_escapes(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\u{1b}' => {
                    if chars.peek() == Some(&'[') {
                        chars.next();
                        while let Some(&d) = chars.peek() {
                            chars.next();
                            if d.is_ascii_alphabetic() {
                                break;
                            }
                        }
                    } else {
                        chars.next();
                    }
                }
                '\r' => {}
                c => out.push(c),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::qemu::*;
    use expect_test::expect;
    use std::path::Path;

    #[test]
    fn kvm_needs_the_device_and_the_cpu_flag() {
        let with = "processor: 0\nflags\t\t: fpu vme vmx sse\n";
        let without = "processor: 0\nflags\t\t: fpu vme sse\n";
        assert!(kvm_usable(true, with));
        assert!(!kvm_usable(false, with));
        assert!(
            !kvm_usable(true, without),
            "a /dev/kvm without vmx/svm hangs the guest"
        );
        assert!(kvm_usable(true, "flags : svm lm"));
    }

    #[test]
    fn qemu_arguments() {
        let mut plan = Plan {
            binary: "qemu-system-x86_64".into(),
            kernel: "/d/bzImage".into(),
            initrd: "/d/core-image-busybox-qemux86-64.cpio.gz".into(),
            mem_mib: 256,
            accel: Accel::Tcg,
            append: String::new(),
        };
        expect!["-nographic -no-reboot -m 256 -nic none -kernel /d/bzImage -initrd /d/core-image-busybox-qemux86-64.cpio.gz -append console=ttyS0 panic=-1 quiet -accel tcg"]
            .assert_eq(&plan.args().join(" "));
        plan.accel = Accel::Kvm;
        plan.append = " loglevel=7 ".into();
        let a = plan.args();
        assert!(a.ends_with(&["-enable-kvm".to_string(), "-cpu".into(), "host".into()]));
        assert!(a.contains(&"console=ttyS0 panic=-1 quiet loglevel=7".to_string()));
    }

    #[test]
    fn artifacts_are_looked_up_in_the_deploy_dir() {
        let t = tempfile::tempdir().unwrap();
        let deploy = deploy_dir(t.path(), "qemux86-64");
        assert_eq!(deploy, t.path().join("tmp/deploy/images/qemux86-64"));
        std::fs::create_dir_all(&deploy).unwrap();
        std::fs::write(deploy.join("bzImage"), "k").unwrap();
        let err = find_artifacts(&deploy, "core-image-busybox", "qemux86-64")
            .unwrap_err()
            .to_string();
        let err = err.replace(&t.path().display().to_string(), "$B");
        expect!["not built yet: $B/tmp/deploy/images/qemux86-64/core-image-busybox-qemux86-64.cpio.gz missing (the deploy directory $B/tmp/deploy/images/qemux86-64 has: bzImage); run `bitzel build` with this config first"]
            .assert_eq(&err);
        std::fs::write(deploy.join("core-image-busybox-qemux86-64.cpio.gz"), "i").unwrap();
        let (k, i) = find_artifacts(&deploy, "core-image-busybox", "qemux86-64").unwrap();
        assert_eq!(k, deploy.join("bzImage"));
        assert_eq!(
            i.file_name().unwrap(),
            Path::new("core-image-busybox-qemux86-64.cpio.gz")
        );
    }

    const MARKER: &str = "bitzel: core-image-busybox is up";

    #[test]
    fn console_check_passes_on_the_real_answer_only() {
        let mut c = ConsoleCheck::new(MARKER, "x86_64");
        assert_eq!(
            c.feed(b"\x1b[2J[    5.9] Run /init as init process\r\n"),
            Step::Wait
        );
        // The marker may arrive split over reads.
        assert_eq!(c.feed(b"bitzel: core-image-busy"), Step::Wait);
        assert_eq!(
            c.feed(b"box is up (x86_64, 6.1.0)\r\nbitzel# "),
            Step::Send(PROBE.to_string())
        );
        // The console echoes the typed probe: that must not count.
        assert_eq!(c.feed(PROBE.replace('\n', "\r\n").as_bytes()), Step::Wait);
        assert_eq!(c.feed(b"BITZEL-CHECK arch=x86_64\r\nBusyBox v1.35.0 (2023-11-14 22:13:20 UTC) multi-call binary.\r\n"), Step::Wait);
        assert_eq!(
            c.feed(b"BITZEL-CHECK-END 42\r\nbitzel# "),
            Step::Done(Verdict::Pass(
                "marker seen; uname -m = x86_64; BusyBox v1.35.0 (2023-11-14 22:13:20 UTC) multi-call binary.".into()
            ))
        );
    }

    #[test]
    fn console_check_fails_on_wrong_arch_missing_busybox_and_panic() {
        let answer = |body: &str| {
            let mut c = ConsoleCheck::new(MARKER, "x86_64");
            assert!(matches!(
                c.feed(format!("{MARKER}\n").as_bytes()),
                Step::Send(_)
            ));
            c.feed(format!("{body}BITZEL-CHECK-END 42\n").as_bytes())
        };
        assert_eq!(
            answer("BITZEL-CHECK arch=aarch64\nBusyBox v1.35.0\n"),
            Step::Done(Verdict::Fail(
                "uname -m says `aarch64`, expected `x86_64`".into()
            ))
        );
        assert_eq!(
            answer("BITZEL-CHECK arch=x86_64\n/bin/sh: busybox: not found\n"),
            Step::Done(Verdict::Fail(
                "no `BusyBox v...` banner: is /bin/busybox in the image?".into()
            ))
        );
        let mut c = ConsoleCheck::new(MARKER, "x86_64");
        assert_eq!(
            c.feed(b"[ 1.0] Kernel panic - not syncing: No working init found.\n"),
            Step::Done(Verdict::Fail(
                "the kernel panicked: [ 1.0] Kernel panic - not syncing: No working init found."
                    .into()
            ))
        );
        assert!(c.waiting_for().contains("finished"));
        let c = ConsoleCheck::new(MARKER, "x86_64");
        assert_eq!(
            c.waiting_for(),
            format!("waiting for the boot marker `{MARKER}`")
        );
    }
}
