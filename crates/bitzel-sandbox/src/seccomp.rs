//! A small seccomp filter installed in every task (native and bubblewrap backends): it makes
//! `chmod`-family calls and file creation that would set the setuid or setgid bit fail with
//! `EPERM` (as Nix does), so such bits can never be created inside the sandbox. Together with
//! `nosuid` on every mount and `PR_SET_NO_NEW_PRIVS`, setuid bits can be neither created nor used.
//! `openat2` (whose mode sits in a struct the filter cannot read) returns `ENOSYS`; callers fall back.
//!
//! Architectures: the filter knows x86_64 (with its i386 and x32 ABIs) and aarch64 (with its
//! 32-bit ARM ABI). A build for any other architecture has no filter, and [`filter`] returns
//! [`UnsupportedArch`], which the backends report as a setup failure naming the architecture:
//! the sandbox refuses to run rather than run tasks unfiltered. At run time a system call made
//! through an ABI the filter does not list kills the process (`SECCOMP_RET_KILL_PROCESS`).

/// Audit architecture numbers.
const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;
const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
const X32_BIT: u32 = 0x4000_0000;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JSET_K: u16 = 0x45;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const MODE_BITS: u32 = 0o6000;

/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn off_arg(i: u32) -> u32 {
    16 + 8 * i
}

/// What to do with one system call.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// EPERM when argument `n` has a setuid/setgid bit.
    ModeArg(u32, u32),
    /// Always this errno.
    Errno(u32, i32),
}

fn rules_for(arch: u32) -> Vec<Rule> {
    use Rule::*;
    match arch {
        AUDIT_ARCH_X86_64 => {
            let base = [
                ModeArg(90, 1),           // chmod
                ModeArg(91, 1),           // fchmod
                ModeArg(268, 2),          // fchmodat
                ModeArg(452, 2),          // fchmodat2
                ModeArg(2, 2),            // open
                ModeArg(257, 3),          // openat
                ModeArg(85, 1),           // creat
                ModeArg(133, 1),          // mknod
                ModeArg(259, 2),          // mknodat
                Errno(437, libc::ENOSYS), // openat2
            ];
            let mut v: Vec<Rule> = base.to_vec();
            // The x32 ABI shares the audit arch and sets a bit in the number.
            v.extend(base.iter().map(|r| match *r {
                ModeArg(nr, a) => ModeArg(nr | X32_BIT, a),
                Errno(nr, e) => Errno(nr | X32_BIT, e),
            }));
            v
        }
        AUDIT_ARCH_I386 => vec![
            ModeArg(15, 1),  // chmod
            ModeArg(94, 1),  // fchmod
            ModeArg(306, 2), // fchmodat
            ModeArg(452, 2), // fchmodat2
            ModeArg(5, 2),   // open
            ModeArg(295, 3), // openat
            ModeArg(8, 1),   // creat
            ModeArg(14, 1),  // mknod
            ModeArg(297, 2), // mknodat
            Errno(437, libc::ENOSYS),
        ],
        AUDIT_ARCH_ARM => vec![
            ModeArg(15, 1),  // chmod
            ModeArg(94, 1),  // fchmod
            ModeArg(333, 2), // fchmodat
            ModeArg(452, 2), // fchmodat2
            ModeArg(5, 2),   // open
            ModeArg(322, 3), // openat
            ModeArg(8, 1),   // creat
            ModeArg(14, 1),  // mknod
            ModeArg(324, 2), // mknodat
            Errno(437, libc::ENOSYS),
        ],
        AUDIT_ARCH_AARCH64 => vec![
            ModeArg(52, 1),  // fchmod
            ModeArg(53, 2),  // fchmodat
            ModeArg(452, 2), // fchmodat2
            ModeArg(56, 3),  // openat
            ModeArg(33, 2),  // mknodat
            Errno(437, libc::ENOSYS),
        ],
        _ => Vec::new(),
    }
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// This build has no seccomp filter for its architecture.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no seccomp filter for the `{0}` architecture: the native and bwrap sandboxes only run on x86_64 and aarch64 (use --sandbox none to run without isolation)")]
pub struct UnsupportedArch(pub String);

/// The audit architectures (native first) whose system calls the filter checks, for a build
/// targeting `arch` (a `std::env::consts::ARCH` value).
fn audit_arches(arch: &str) -> Result<&'static [u32], UnsupportedArch> {
    match arch {
        "x86_64" => Ok(&[AUDIT_ARCH_X86_64, AUDIT_ARCH_I386]),
        "aarch64" => Ok(&[AUDIT_ARCH_AARCH64, AUDIT_ARCH_ARM]),
        other => Err(UnsupportedArch(other.to_owned())),
    }
}

/// The filter program for the architectures this build can run.
pub fn filter() -> Result<Vec<libc::sock_filter>, UnsupportedArch> {
    filter_for(std::env::consts::ARCH)
}

fn filter_for(arch: &str) -> Result<Vec<libc::sock_filter>, UnsupportedArch> {
    let mut prog = Vec::new();
    for &arch in audit_arches(arch)? {
        let mut block = Vec::new();
        for rule in rules_for(arch) {
            block.push(stmt(BPF_LD_W_ABS, OFF_NR));
            match rule {
                Rule::ModeArg(nr, arg) => {
                    block.push(jump(BPF_JEQ_K, nr, 0, 3));
                    block.push(stmt(BPF_LD_W_ABS, off_arg(arg)));
                    block.push(jump(BPF_JSET_K, MODE_BITS, 0, 1));
                    block.push(stmt(BPF_RET_K, SECCOMP_RET_ERRNO | libc::EPERM as u32));
                }
                Rule::Errno(nr, e) => {
                    block.push(jump(BPF_JEQ_K, nr, 0, 1));
                    block.push(stmt(BPF_RET_K, SECCOMP_RET_ERRNO | e as u32));
                }
            }
        }
        block.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
        prog.push(stmt(BPF_LD_W_ABS, OFF_ARCH));
        prog.push(jump(
            BPF_JEQ_K,
            arch,
            0,
            u8::try_from(block.len()).unwrap_or(u8::MAX),
        ));
        prog.extend(block);
    }
    // An ABI the filter does not know: never allowed unchecked.
    prog.push(stmt(BPF_RET_K, SECCOMP_RET_KILL_PROCESS));
    Ok(prog)
}

/// Install the filter in the calling process (needs `PR_SET_NO_NEW_PRIVS` first).
/// Returns the errno on failure. Async-signal-safe apart from building the program,
/// which callers do before forking.
pub(crate) fn install(prog: &[libc::sock_filter]) -> Result<(), i32> {
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).map_err(|_| libc::E2BIG)?,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points to a valid program that outlives the call.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &fprog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(nix::errno::Errno::last() as i32);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic-BPF interpreter for the instructions the filter uses: what the kernel would
    /// return for a system call `nr` of `arch` with arguments `args`.
    fn run(prog: &[libc::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let word = |k: u32| -> u32 {
            match k {
                OFF_NR => nr,
                OFF_ARCH => arch,
                k if (16..64).contains(&k) => {
                    let i = ((k - 16) / 8) as usize;
                    let v = args[i];
                    if (k - 16) % 8 == 0 {
                        v as u32
                    } else {
                        (v >> 32) as u32
                    }
                }
                k => panic!("load from offset {k}"),
            }
        };
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code {
                BPF_LD_W_ABS => acc = word(i.k),
                BPF_JEQ_K => pc += usize::from(if acc == i.k { i.jt } else { i.jf }),
                BPF_JSET_K => pc += usize::from(if acc & i.k != 0 { i.jt } else { i.jf }),
                BPF_RET_K => return i.k,
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    const EPERM: u32 = SECCOMP_RET_ERRNO | libc::EPERM as u32;

    #[test]
    fn blocks_fit_in_a_jump() {
        for arch in [
            AUDIT_ARCH_X86_64,
            AUDIT_ARCH_I386,
            AUDIT_ARCH_AARCH64,
            AUDIT_ARCH_ARM,
        ] {
            assert!(rules_for(arch).len() * 5 + 1 < 255);
        }
    }

    #[test]
    fn setuid_modes_refused_other_calls_allowed() {
        for build in ["x86_64", "aarch64"] {
            let f = filter_for(build).unwrap();
            let (arch, fchmodat, openat) = if build == "x86_64" {
                (AUDIT_ARCH_X86_64, 268, 257)
            } else {
                (AUDIT_ARCH_AARCH64, 53, 56)
            };
            assert_eq!(run(&f, arch, fchmodat, [0, 0, 0o4755, 0, 0, 0]), EPERM);
            assert_eq!(run(&f, arch, fchmodat, [0, 0, 0o2755, 0, 0, 0]), EPERM);
            assert_eq!(
                run(&f, arch, fchmodat, [0, 0, 0o755, 0, 0, 0]),
                SECCOMP_RET_ALLOW
            );
            assert_eq!(run(&f, arch, openat, [0, 0, 0o101, 0o4644, 0, 0]), EPERM);
            assert_eq!(
                run(&f, arch, 437, [0; 6]),
                SECCOMP_RET_ERRNO | libc::ENOSYS as u32
            );
            assert_eq!(run(&f, arch, 1, [0; 6]), SECCOMP_RET_ALLOW);
        }
        let f = filter_for("x86_64").unwrap();
        assert_eq!(run(&f, AUDIT_ARCH_I386, 15, [0, 0o4755, 0, 0, 0, 0]), EPERM);
        assert_eq!(
            run(&f, AUDIT_ARCH_X86_64, 90 | X32_BIT, [0, 0o6000, 0, 0, 0, 0]),
            EPERM
        );
        let f = filter_for("aarch64").unwrap();
        assert_eq!(run(&f, AUDIT_ARCH_ARM, 333, [0, 0, 0o4755, 0, 0, 0]), EPERM);
    }

    #[test]
    fn unknown_abi_at_run_time_is_killed() {
        for build in ["x86_64", "aarch64"] {
            let f = filter_for(build).unwrap();
            assert_eq!(
                run(&f, 0xC000_00F3, 56, [0; 6]),
                SECCOMP_RET_KILL_PROCESS,
                "riscv64 call under a {build} filter"
            );
        }
        let f = filter_for("x86_64").unwrap();
        assert_eq!(
            run(&f, AUDIT_ARCH_AARCH64, 1, [0; 6]),
            SECCOMP_RET_KILL_PROCESS
        );
    }

    #[test]
    fn unknown_build_architecture_is_an_error_naming_it() {
        let e = filter_for("riscv64").unwrap_err();
        assert_eq!(e, UnsupportedArch("riscv64".into()));
        assert!(e.to_string().contains("`riscv64`"), "{e}");
        assert!(
            filter().is_ok(),
            "this build's own architecture has a filter"
        );
    }
}
