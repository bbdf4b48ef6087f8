//! The sandbox helper: a small single-threaded process the native backend forks from
//! (`bitzel-sandbox-helper __sandbox-helper run <spec-fd> <result-fd>`), and PID 1 inside
//! bubblewrap (`… __sandbox-helper init <report-fd> <json>`).

fn main() {
    bitzel_sandbox::helper_main()
}
