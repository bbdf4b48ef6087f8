//! A small seccomp filter installed in every task (native and bubblewrap backends): it makes
//! `chmod`-family calls and file creation that would set the setuid or setgid bit fail with
//! `EPERM` (as Nix does), so such bits can never be created inside the sandbox. Together with
//! `nosuid` on every mount and `PR_SET_NO_NEW_PRIVS`, setuid bits can be neither created nor used.
//! `openat2` (whose mode sits in a struct the filter cannot read) returns `ENOSYS`; callers fall back.

/// Audit architecture numbers.
const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;
const X32_BIT: u32 = 0x4000_0000;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JSET_K: u16 = 0x45;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
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

/// The filter program for the architectures this build can run.
pub fn filter() -> Vec<libc::sock_filter> {
    let arches: &[u32] = if cfg!(target_arch = "x86_64") {
        &[AUDIT_ARCH_X86_64, AUDIT_ARCH_I386]
    } else if cfg!(target_arch = "aarch64") {
        &[AUDIT_ARCH_AARCH64]
    } else {
        &[]
    };
    let mut prog = Vec::new();
    for &arch in arches {
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
    prog.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    prog
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

    #[test]
    fn blocks_fit_in_a_jump() {
        for arch in [AUDIT_ARCH_X86_64, AUDIT_ARCH_I386, AUDIT_ARCH_AARCH64] {
            assert!(rules_for(arch).len() * 5 + 1 < 255);
        }
        let f = filter();
        assert!(!f.is_empty());
        assert_eq!(f.last().map(|i| i.k), Some(SECCOMP_RET_ALLOW));
    }
}
