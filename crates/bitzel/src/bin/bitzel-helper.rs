//! bitzel's sandbox helper as a binary of its own: the process the native
//! backend forks tasks from and PID 1 inside bubblewrap. It links no more
//! than the sandbox crate (not the embedded CPython the `bitzel` binary
//! links), so it starts inside a `rootfs` build root that has no
//! `libpython`. `bitzel` uses it when it sits next to it (see
//! `build_flow::sandbox_config`), else re-executes itself.

fn main() {
    bitzel_sandbox::helper_main()
}
