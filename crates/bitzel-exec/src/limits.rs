//! Per-task resource limits from the metadata, and what a failure under them means.
//!
//! | variable (all tasks)       | task flag (one task)     | enforces                      |
//! |----------------------------|--------------------------|-------------------------------|
//! | `BITZEL_TASK_MEMORY_MAX`   | `do_x[memory-max]`       | cgroup v2 `memory.max`        |
//! | `BITZEL_TASK_PIDS_MAX`     | `do_x[pids-max]`         | cgroup v2 `pids.max`          |
//! | `BITZEL_TASK_NOFILE`       | `do_x[nofile]`           | `RLIMIT_NOFILE`               |
//! | `BITZEL_TASK_NPROC`        | `do_x[nproc]`            | `RLIMIT_NPROC`                |
//! | `BITZEL_TASK_CPU_SECONDS`  | `do_x[cpu-seconds]`      | `RLIMIT_CPU` (per process)    |
//!
//! The flag wins over the variable; an empty value or `max` means no limit. Sizes take a
//! `K`/`M`/`G`/`T` suffix (powers of 1024, an optional `iB`/`B`). Limits are not part of
//! the action key: they decide whether a run may finish, not what it produces, and failed
//! runs are never cached.

use bitzel_sandbox::{ExitStatus, Limits, ResourceUsage};

use crate::script::TaskData;

/// One limit: its variable, its task flag, and whether it is a size.
struct Knob {
    var: &'static str,
    flag: &'static str,
    size: bool,
}

const MEMORY: Knob = Knob {
    var: "BITZEL_TASK_MEMORY_MAX",
    flag: "memory-max",
    size: true,
};
const PIDS: Knob = Knob {
    var: "BITZEL_TASK_PIDS_MAX",
    flag: "pids-max",
    size: false,
};
const NOFILE: Knob = Knob {
    var: "BITZEL_TASK_NOFILE",
    flag: "nofile",
    size: false,
};
const NPROC: Knob = Knob {
    var: "BITZEL_TASK_NPROC",
    flag: "nproc",
    size: false,
};
const CPU: Knob = Knob {
    var: "BITZEL_TASK_CPU_SECONDS",
    flag: "cpu-seconds",
    size: false,
};

/// Parse a size (`512M`, `4G`, `4GiB`, `1.5G`, `1048576`: the cache's
/// [`bitzel_cache::parse_size`]); `None` for empty or `max`.
pub fn parse_size(s: &str) -> Result<Option<u64>, String> {
    let t = s.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("max") {
        return Ok(None);
    }
    bitzel_cache::parse_size(t)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Parse a count (`4096`); `None` for empty or `max`.
fn parse_count(s: &str) -> Result<Option<u64>, String> {
    let t = s.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("max") {
        return Ok(None);
    }
    t.parse()
        .map(Some)
        .map_err(|_| format!("`{s}` is not a whole number"))
}

fn knob(d: &dyn TaskData, task: &str, k: &Knob) -> Result<Option<u64>, String> {
    let (value, origin) = match d.flag(task, k.flag) {
        Some(v) => (v, format!("{task}[{}]", k.flag)),
        None => match d.var(k.var) {
            Some(v) => (v, k.var.to_owned()),
            None => return Ok(None),
        },
    };
    let parsed = if k.size {
        parse_size(&value)
    } else {
        parse_count(&value)
    };
    parsed.map_err(|e| format!("{origin} = \"{value}\": {e}"))
}

/// The limits for `task` (e.g. `do_compile`) of a recipe. `Err` names the variable or flag
/// and what is wrong with its value.
pub fn task_limits(d: &dyn TaskData, task: &str) -> Result<Limits, String> {
    Ok(Limits {
        memory_bytes: knob(d, task, &MEMORY)?,
        pids: knob(d, task, &PIDS)?,
        nofile: knob(d, task, &NOFILE)?,
        nproc: knob(d, task, &NPROC)?,
        cpu_secs: knob(d, task, &CPU)?,
    })
}

/// How a failed run ended, in words, with what its limits had to do with it.
pub fn describe_failure(status: ExitStatus, r: &ResourceUsage, task: &str) -> String {
    let mut s = match status {
        ExitStatus::Code(c) => format!("exited with code {c}"),
        ExitStatus::Signal(s) => format!("was killed by signal {s}"),
        ExitStatus::TimedOut => "timed out".to_string(),
        ExitStatus::OomKilled => {
            let mut m = "was killed by the OOM killer".to_string();
            if let Some(max) = r.memory_max {
                m.push_str(&format!(
                    " at its memory limit of {}",
                    bitzel_cache::human_bytes(max)
                ));
            }
            if let Some(peak) = r.memory_peak {
                m.push_str(&format!(" (peak {})", bitzel_cache::human_bytes(peak)));
            }
            m.push_str(&format!(
                "; raise {}[{}] or {}",
                task, MEMORY.flag, MEMORY.var
            ));
            m
        }
    };
    if r.pids_max_hits > 0 {
        s.push_str(&format!(
            "; {} fork(s) were refused at its process limit{} (raise {}[{}] or {})",
            r.pids_max_hits,
            r.pids_max.map(|p| format!(" of {p}")).unwrap_or_default(),
            task,
            PIDS.flag,
            PIDS.var
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::tests::Fake;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(Some(4096)));
        assert_eq!(parse_size("512M"), Ok(Some(512 << 20)));
        assert_eq!(parse_size(" 4G "), Ok(Some(4 << 30)));
        assert_eq!(parse_size("4GiB"), Ok(Some(4 << 30)));
        assert_eq!(parse_size("2k"), Ok(Some(2048)));
        assert_eq!(parse_size("1 TB"), Ok(Some(1 << 40)));
        assert_eq!(parse_size(""), Ok(None));
        assert_eq!(parse_size("max"), Ok(None));
        assert_eq!(parse_size("1.5G"), Ok(Some(3 << 29)));
        assert!(parse_size("12Q")
            .unwrap_err()
            .contains("invalid size \"12Q\""));
        assert!(parse_size("lots").unwrap_err().contains("e.g. 500M or 10G"));
    }

    #[test]
    fn flag_beats_variable_and_errors_name_the_source() {
        let d = Fake::default()
            .var("BITZEL_TASK_MEMORY_MAX", "2G")
            .var("BITZEL_TASK_PIDS_MAX", "512")
            .flag("do_compile", "memory-max", "6G");
        let l = task_limits(&d, "do_compile").unwrap();
        assert_eq!(l.memory_bytes, Some(6 << 30));
        assert_eq!(l.pids, Some(512));
        assert_eq!(l.nofile, None);
        let l = task_limits(&d, "do_install").unwrap();
        assert_eq!(l.memory_bytes, Some(2 << 30));
        let d = d.flag("do_install", "nofile", "many");
        let e = task_limits(&d, "do_install").unwrap_err();
        assert_eq!(
            e,
            "do_install[nofile] = \"many\": `many` is not a whole number"
        );
        let d = d.var("BITZEL_TASK_CPU_SECONDS", "1h");
        let e = task_limits(&d, "do_compile").unwrap_err();
        assert!(e.starts_with("BITZEL_TASK_CPU_SECONDS = \"1h\""), "{e}");
    }

    #[test]
    fn failures_explain_the_limit_that_ended_them() {
        let r = ResourceUsage {
            memory_max: Some(512 << 20),
            memory_peak: Some(512 << 20),
            oom_kills: 1,
            ..ResourceUsage::default()
        };
        assert_eq!(
            describe_failure(ExitStatus::OomKilled, &r, "do_compile"),
            "was killed by the OOM killer at its memory limit of 512.0 MiB (peak 512.0 MiB); raise do_compile[memory-max] or BITZEL_TASK_MEMORY_MAX"
        );
        let r = ResourceUsage {
            pids_max: Some(64),
            pids_max_hits: 3,
            ..ResourceUsage::default()
        };
        assert_eq!(
            describe_failure(ExitStatus::Code(2), &r, "do_compile"),
            "exited with code 2; 3 fork(s) were refused at its process limit of 64 (raise do_compile[pids-max] or BITZEL_TASK_PIDS_MAX)"
        );
        assert_eq!(
            describe_failure(ExitStatus::Signal(9), &ResourceUsage::default(), "do_x"),
            "was killed by signal 9"
        );
    }
}
