//! What a task leaves behind for the user, as BitBake's `${T}` does: the
//! script that ran (`run.do_X`) and its log (`log.do_X`), how a failing
//! command is found, and the messages (`bbwarn`, `bberror`, `bbfatal`) a
//! task's log carries to the console.
//!
//! **Layout** (BitBake's): `<build>/tmp/work/<pn>/temp/run.do_X.<pid>` and
//! `log.do_X.<pid>` for each run (`<pid>` = the bitzel process), plus the
//! symlinks `run.do_X` and `log.do_X` to the newest. The run script is kept
//! with the sandbox's fixed paths, exactly as the task's key has it, so
//! `sh /path/in/devshell/run.do_X` reproduces the run inside
//! `bitzel devshell --task do_X` (where the recipe's temp directory is
//! `/bitzel/temp`). It is the keyed script plus the failure trace below;
//! the key has the script without the trace (a pure function of it, whose
//! version `EXEC_SEMANTICS_VERSION` covers).
//!
//! **Finding the failing command.** The host's `/bin/sh` is dash on Debian,
//! which has no `LINENO`, no `ERR` trap and no `DEBUG` trap, and `set -x`
//! would write into whatever a task captures of its own stderr (`f 2>&1 |
//! tee x`), changing its outputs. So [`with_failure_trace`] marks lines
//! itself: every line that starts a command where an assignment can safely
//! go first gets `__bitzel_line=N;` prepended (on the same line, so line
//! numbers stay), and an `EXIT` trap prints [`MARKER`] with the exit code
//! and the last marked line when the script fails. Nothing is written while
//! the task runs; the marker goes to the shell's stderr (the log) only when
//! the script exits non-zero. Lines inside `case`, here-documents,
//! arithmetic, quotes spanning lines, after a `\`/`|`/`&&`/`||` continuation
//! or reading `$?` are not marked; a failure there is reported at the last
//! marked line before it (the start of the enclosing command, usually).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The start of the line the `EXIT` trap writes when the script fails:
/// `bitzel: exit code <rc> after line <n> of the run script`.
pub const MARKER: &str = "bitzel: exit code ";

/// The trap and variable every traced script starts with (after `#!`).
const HEADER: &str = "__bitzel_line=0
__bitzel_exit() {
\t__bitzel_rc=$?
\t[ \"$__bitzel_rc\" = 0 ] || echo \"bitzel: exit code $__bitzel_rc after line $__bitzel_line of the run script\" >&2
}
trap __bitzel_exit EXIT
";

/// The core layer's message helpers: their lines are not marked, so a
/// failure through `bbfatal`/`die` is reported at the line that called it.
const UNMARKED_FUNCTIONS: &[&str] = &[
    "bbdebug", "bberror", "bbfatal", "bbnote", "bbplain", "bbwarn", "die",
];

/// The most task messages shown on the console per task.
pub const MAX_MESSAGES: usize = 50;

/// The kept files of one run of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptFiles {
    /// `run.do_X.<pid>`.
    pub run: PathBuf,
    /// `log.do_X.<pid>`.
    pub log: PathBuf,
}

impl KeptFiles {
    /// The files of `task` of recipe `pn` under the build directory, for
    /// this process.
    pub fn new(build_dir: &Path, pn: &str, task: &str) -> KeptFiles {
        let t = temp_dir(build_dir, pn);
        let pid = std::process::id();
        KeptFiles {
            run: t.join(format!("run.{task}.{pid}")),
            log: t.join(format!("log.{task}.{pid}")),
        }
    }

    /// Write the run script, start an empty log and point the `run.do_X` and
    /// `log.do_X` symlinks at them.
    pub fn create(&self, script: &str) -> io::Result<()> {
        if let Some(dir) = self.run.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::write(&self.run, script)?;
        fs::write(&self.log, "")?;
        for f in [&self.run, &self.log] {
            link_newest(f)?;
        }
        Ok(())
    }
}

/// BitBake's `${T}` for a recipe: `<build>/tmp/work/<pn>/temp`.
pub fn temp_dir(build_dir: &Path, pn: &str) -> PathBuf {
    build_dir.join("tmp").join("work").join(pn).join("temp")
}

/// Point `name` without its `.<pid>` suffix at `file` (temp link + rename).
fn link_newest(file: &Path) -> io::Result<()> {
    let (Some(dir), Some(name)) = (file.parent(), file.file_name().and_then(|n| n.to_str())) else {
        return Ok(());
    };
    let Some((stem, _pid)) = name.rsplit_once('.') else {
        return Ok(());
    };
    let tmp = dir.join(format!(".{name}.link"));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(name, &tmp)?;
    fs::rename(&tmp, dir.join(stem))
}

/// Where a script failed, from the marker its `EXIT` trap wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedAt {
    /// The exit code.
    pub code: i32,
    /// The last marked line (1-based) of the run script; 0 if none ran.
    pub line: usize,
}

/// What a task's log says, read in one pass (logs can be large: it is
/// streamed, never held whole).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogScan {
    /// The `WARNING: ` and `ERROR: ` lines (what `bbwarn`, `bberror` and
    /// `bbfatal` print), at most [`MAX_MESSAGES`].
    pub messages: Vec<TaskMessage>,
    /// How many more such lines there were.
    pub more: usize,
    /// The first failure marker.
    pub failed_at: Option<FailedAt>,
}

/// Read a log line by line (invalid UTF-8 replaced).
pub fn scan_log(mut r: impl io::BufRead) -> io::Result<LogScan> {
    let mut scan = LogScan::default();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf)? == 0 {
            return Ok(scan);
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']);
        if scan.failed_at.is_none() {
            scan.failed_at = marker(line);
        }
        let m = if let Some(m) = line.strip_prefix("WARNING: ") {
            TaskMessage::Warning(m.to_string())
        } else if let Some(m) = line.strip_prefix("ERROR: ") {
            TaskMessage::Error(m.to_string())
        } else {
            continue;
        };
        if scan.messages.len() < MAX_MESSAGES {
            scan.messages.push(m);
        } else {
            scan.more += 1;
        }
    }
}

/// The failure marker on one line, if it is one.
fn marker(l: &str) -> Option<FailedAt> {
    let rest = l.strip_prefix(MARKER)?;
    let (code, rest) = rest.split_once(" after line ")?;
    let line = rest.strip_suffix(" of the run script")?;
    Some(FailedAt {
        code: code.trim().parse().ok()?,
        line: line.trim().parse().ok()?,
    })
}

/// The command on `line` of a traced script, without the marking.
pub fn command_at(script: &str, line: usize) -> Option<String> {
    let text = script.lines().nth(line.checked_sub(1)?)?;
    let text = match text.trim_start().strip_prefix("__bitzel_line=") {
        Some(rest) => rest.split_once(';').map_or(rest, |(_, c)| c),
        None => text,
    };
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// A message a task printed through the core layer's helpers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskMessage {
    /// `bbwarn`: `WARNING: ...`.
    Warning(String),
    /// `bberror`, `bbfatal`, `die`: `ERROR: ...`.
    Error(String),
}

/// Lexical state of the line marker at the start of a line.
#[derive(Default)]
struct Lex {
    /// Open constructs: `(` subshell or `$(`, `A` arithmetic, `K` case,
    /// `` ` `` backquotes.
    stack: Vec<char>,
    single: bool,
    double: bool,
    /// Here-document delimiters waiting for their bodies (and whether `<<-`).
    heredocs: Vec<(String, bool)>,
    /// The here-document whose body is being read.
    in_heredoc: Option<(String, bool)>,
    /// The previous line continues onto this one.
    continued: bool,
}

/// Whether the line about to be read may get `__bitzel_line=N;` in front.
fn markable(lx: &Lex, line: &str) -> bool {
    if lx.single
        || lx.double
        || lx.continued
        || lx.in_heredoc.is_some()
        || lx.stack.iter().any(|c| matches!(c, 'A' | 'K' | '`'))
    {
        return false;
    }
    let t = line.trim_start();
    let first = t
        .split(|c: char| c.is_whitespace() || c == ';')
        .next()
        .unwrap_or("");
    !(t.is_empty()
        || t.starts_with('#')
        || t.starts_with(')')
        || t.starts_with('}')
        || t.starts_with(";;")
        || t.contains("$?")
        || t.contains("${?")
        || matches!(
            first,
            "then"
                | "do"
                | "done"
                | "fi"
                | "else"
                | "elif"
                | "esac"
                | "in"
                | "{"
                | "return"
                | "exit"
        ))
}

/// Advance the lexer over one line.
fn scan(lx: &mut Lex, line: &str) {
    if let Some((delim, strip)) = &lx.in_heredoc {
        let l = if *strip {
            line.trim_start_matches('\t')
        } else {
            line
        };
        if l == delim {
            lx.in_heredoc = None;
            if !lx.heredocs.is_empty() {
                lx.in_heredoc = Some(lx.heredocs.remove(0));
            }
        }
        return;
    }
    let b: Vec<char> = line.chars().collect();
    let mut i = 0;
    let mut word = String::new();
    let mut last_word = String::new();
    let end_word = |w: &mut String, lx: &mut Lex, last: &mut String| {
        match w.as_str() {
            "case" => lx.stack.push('K'),
            "esac" => {
                while let Some(c) = lx.stack.pop() {
                    if c == 'K' {
                        break;
                    }
                }
            }
            _ => {}
        }
        if !w.is_empty() {
            *last = std::mem::take(w);
        }
    };
    while i < b.len() {
        let c = b[i];
        if lx.single {
            if c == '\'' {
                lx.single = false;
            }
            i += 1;
            continue;
        }
        if c == '\\' {
            i += 2;
            continue;
        }
        if lx.double {
            if c == '"' {
                lx.double = false;
            }
            i += 1;
            continue;
        }
        match c {
            '\'' => lx.single = true,
            '"' => lx.double = true,
            '#' if i == 0 || b[i - 1].is_whitespace() || matches!(b[i - 1], ';' | '&' | '|') => {
                break
            }
            '`' => {
                if lx.stack.last() == Some(&'`') {
                    lx.stack.pop();
                } else {
                    lx.stack.push('`');
                }
            }
            '$' if b.get(i + 1) == Some(&'(') && b.get(i + 2) == Some(&'(') => {
                lx.stack.push('A');
                i += 3;
                continue;
            }
            '(' => lx.stack.push('('),
            ')' => {
                if matches!(lx.stack.last(), Some('(') | Some('A')) {
                    let top = lx.stack.pop();
                    if top == Some('A') && b.get(i + 1) == Some(&')') {
                        i += 1;
                    }
                }
            }
            '<' if b.get(i + 1) == Some(&'<') => {
                let strip = b.get(i + 2) == Some(&'-');
                let mut j = i + if strip { 3 } else { 2 };
                while j < b.len() && b[j].is_whitespace() {
                    j += 1;
                }
                let delim: String = b[j..]
                    .iter()
                    .take_while(|c| {
                        !c.is_whitespace() && !matches!(c, ';' | '|' | '&' | '>' | '<' | ')')
                    })
                    .filter(|c| !matches!(c, '\'' | '"' | '\\'))
                    .collect();
                if !delim.is_empty() {
                    lx.heredocs.push((delim, strip));
                }
                i = j;
                continue;
            }
            _ => {}
        }
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            end_word(&mut word, lx, &mut last_word);
        }
        i += 1;
    }
    end_word(&mut word, lx, &mut last_word);
    let t = line.trim_end();
    lx.continued = t.ends_with('\\')
        || t.ends_with('|')
        || t.ends_with("&&")
        // `f()` with its body on the next line.
        || t.ends_with("()")
        || last_word == "in" && t.ends_with("in");
    if !lx.heredocs.is_empty() {
        lx.in_heredoc = Some(lx.heredocs.remove(0));
    }
}

/// `script` with the failure trace (see the module documentation): the
/// trap after the `#!` line, and `__bitzel_line=N;` in front of every line
/// that starts a command where that is safe. Idempotent inputs give
/// identical outputs (the text is part of the task's key).
pub fn with_failure_trace(script: &str) -> String {
    let mut out = String::with_capacity(script.len() * 2);
    let mut lines = script.lines().peekable();
    if let Some(first) = lines.next_if(|l| l.starts_with("#!")) {
        out.push_str(first);
        out.push('\n');
    }
    out.push_str(HEADER);
    let mut n = out.lines().count();
    let mut lx = Lex::default();
    let mut in_helper = false;
    for line in lines {
        n += 1;
        // Function definitions as the script generator writes them: `name() {` ... `}`.
        if let Some(name) = line.strip_suffix("() {") {
            in_helper = UNMARKED_FUNCTIONS.contains(&name);
        } else if line == "}" {
            in_helper = false;
        }
        if !in_helper && markable(&lx, line) {
            let indent = &line[..line.len() - line.trim_start().len()];
            out.push_str(&format!("{indent}__bitzel_line={n}; "));
            let t = line.trim_start();
            if t == "(" {
                // A subshell does not inherit the trap: set it again inside.
                out.push_str("( trap __bitzel_exit EXIT");
            } else {
                out.push_str(t);
            }
        } else {
            out.push_str(line);
        }
        out.push('\n');
        scan(&mut lx, line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Run `script` (traced) with dash-compatible `/bin/sh`; (status, stderr).
    fn run(script: &str) -> (i32, String, String) {
        let traced = with_failure_trace(script);
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(&traced)
            .output()
            .expect("run /bin/sh");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let at = scan_log(err.as_bytes())
            .ok()
            .and_then(|s| s.failed_at)
            .map(|f| {
                let cmd = command_at(&traced, f.line).unwrap_or_default();
                format!("{} {} {cmd}", f.code, f.line)
            });
        (
            out.status.code().unwrap_or(-1),
            at.unwrap_or_default(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    #[test]
    fn names_the_failing_line_in_a_function() {
        let script = "#!/bin/sh\nset -e\n\nf() {\n\techo one\n\ttest -f /nonexistent/x.h\n\techo not reached\n}\n\ncd /\nf\n";
        let (code, at, out) = run(script);
        assert_eq!(code, 1);
        assert_eq!(out, "one\n");
        // The header ends at line 7 (`#!` + 6 lines).
        assert_eq!(at, "1 12 test -f /nonexistent/x.h");
    }

    #[test]
    fn a_failure_through_bbfatal_is_reported_where_it_was_called() {
        let script = "#!/bin/sh\nset -e\nbbfatal() {\n\techo \"ERROR: $*\" >&2\n\texit 1\n}\n\nf() {\n\ttrue\n\tbbfatal \"no config\"\n}\n\nf\n";
        let (code, at, _) = run(script);
        assert_eq!(code, 1);
        assert_eq!(at, "1 16 bbfatal \"no config\"");
    }

    #[test]
    fn a_failing_subshell_reports_its_own_line() {
        let script = "#!/bin/sh\nset -e\ng() {\n\tfalse\n}\n(\ncd /\ng\n)\n";
        let (code, at, _) = run(script);
        assert_eq!(code, 1);
        assert_eq!(at, "1 10 false");
    }

    #[test]
    fn success_prints_nothing_and_semantics_are_kept() {
        let script = "#!/bin/sh\nset -e\nx=$(echo a |\n  tr a b)\necho \"$x\"\ncase $x in\nb)\n  echo case-ok\n  ;;\nesac\ncat <<EOF\nline $x\n  false\nEOF\nfalse || true\ny=$((1 +\n 2))\necho $y\nif true\nthen\n  echo then-ok\nfi\nfor i in \\\n  1 2\ndo echo $i; done\nf() { return 3; }\nf || echo \"rc $?\"\ng()\n(\n  echo sub\n)\ng\n";
        let (code, at, out) = run(script);
        assert_eq!(code, 0, "{at}");
        assert_eq!(at, "");
        assert_eq!(
            out,
            "b\ncase-ok\nline b\n  false\n3\nthen-ok\n1\n2\nrc 3\nsub\n"
        );
        let traced = with_failure_trace(script);
        for unmarked in ["\n  false\n", "\n 2))\n", "\nb)\n", "\n  1 2\n"] {
            assert!(traced.contains(unmarked), "{unmarked:?} marked:\n{traced}");
        }
        assert_eq!(traced, with_failure_trace(script));
    }

    /// Every shell function of the core layer, the examples and the test
    /// layers, traced, is still a script `sh -n` accepts.
    #[test]
    fn every_shell_function_in_the_tree_stays_valid_when_traced() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut files = Vec::new();
        let mut dirs = vec![
            root.join("layers"),
            root.join("examples"),
            root.join("testdata"),
        ];
        while let Some(d) = dirs.pop() {
            for e in fs::read_dir(&d).expect("read_dir").flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p
                    .extension()
                    .is_some_and(|x| x == "bb" || x == "bbclass" || x == "bbappend" || x == "inc")
                {
                    files.push(p);
                }
            }
        }
        let mut checked = 0;
        for f in files {
            let text = fs::read_to_string(&f).expect("read");
            let mut body: Option<String> = None;
            for line in text.lines() {
                if let Some(b) = &mut body {
                    b.push_str(line);
                    b.push('\n');
                    if line == "}" {
                        let script = format!("#!/bin/sh\nset -e\n{b}");
                        let traced = with_failure_trace(&script);
                        let ok = Command::new("/bin/sh")
                            .arg("-n")
                            .arg("-c")
                            .arg(&traced)
                            .status()
                            .expect("sh -n");
                        assert!(
                            ok.success(),
                            "{}: traced function is invalid:\n{traced}",
                            f.display()
                        );
                        checked += 1;
                        body = None;
                    }
                } else if line.strip_suffix("() {").is_some_and(|name| {
                    // Shell names only (not `do_x:append`, `python f`, `fakeroot f`).
                    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                }) {
                    body = Some(format!("{line}\n"));
                }
            }
        }
        assert!(checked > 20, "only {checked} functions found");
    }

    #[test]
    fn messages_and_markers_are_read_from_the_log() {
        let log = "NOTE: x\nWARNING: careful\nmake: *** [all] Error 1\nERROR: broken\nbitzel: exit code 2 after line 40 of the run script\nbitzel: exit code 1 after line 3 of the run script\n";
        let scan = scan_log(log.as_bytes()).expect("scan");
        assert_eq!(scan.failed_at, Some(FailedAt { code: 2, line: 40 }));
        assert_eq!(
            scan.messages,
            vec![
                TaskMessage::Warning("careful".into()),
                TaskMessage::Error("broken".into())
            ]
        );
        assert_eq!(scan.more, 0);
        let mut many = "WARNING: w\n".repeat(MAX_MESSAGES + 3).into_bytes();
        many.extend_from_slice(b"not\xffutf8\n");
        let scan = scan_log(&many[..]).expect("scan");
        assert_eq!((scan.messages.len(), scan.more), (MAX_MESSAGES, 3));
        assert_eq!(
            scan_log(&b"no marker\n\xff\n"[..]).expect("scan").failed_at,
            None
        );
    }

    #[test]
    fn kept_files_link_the_newest_run() {
        let t = tempfile::tempdir().expect("tempdir");
        let k = KeptFiles::new(t.path(), "greet", "do_compile");
        k.create("echo hi\n").expect("create");
        k.create("echo again\n").expect("create twice");
        let temp = t.path().join("tmp/work/greet/temp");
        assert_eq!(
            fs::read_to_string(temp.join("run.do_compile")).expect("read"),
            "echo again\n"
        );
        assert!(temp.join("log.do_compile").exists());
        assert_eq!(
            fs::read_link(temp.join("run.do_compile")).expect("link"),
            PathBuf::from(format!("run.do_compile.{}", std::process::id()))
        );
    }
}
