//! Tests of the built-ins: parsing, mirrors, fetch (file, http from a local
//! server, git from a local bare repository), and the generated unpack and
//! patch scripts run for real with `sh`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use expect_test::{expect, Expect};

use super::*;

// --- helpers ---------------------------------------------------------------------

fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn no_flags(_: &str) -> Option<String> {
    None
}

fn parse_one(uri: &str) -> SrcEntry {
    let mut v = SrcUri::parse(uri).unwrap();
    assert_eq!(v.len(), 1);
    v.remove(0)
}

fn summary(e: &SrcEntry) -> String {
    format!(
        "#{} {:?} scheme={} host={} path={} local={} patch={} params={:?} sha256={:?} srcrev={:?}",
        e.index,
        e.kind,
        e.scheme,
        e.host,
        e.path,
        e.local_name,
        e.is_patch(),
        e.params,
        e.sha256.as_deref().map(|s| &s[..8]),
        e.srcrev
    )
}

fn check_parse(src: &str, expect: Expect) {
    let out = match SrcUri::parse(src) {
        Ok(v) => v.iter().map(summary).collect::<Vec<_>>().join("\n"),
        Err(e) => format!("error: {e}"),
    };
    expect.assert_eq(&out);
}

/// A tiny HTTP/1.1 server: serves `files` by path, 404 otherwise, counts requests.
struct Server {
    url: String,
    hits: Arc<AtomicUsize>,
    paths: Arc<Mutex<Vec<String>>>,
}

fn serve(files: BTreeMap<String, Vec<u8>>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let paths = Arc::new(Mutex::new(Vec::new()));
    let (h, p) = (hits.clone(), paths.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut hdr = String::new();
                if reader.read_line(&mut hdr).is_err() || hdr == "\r\n" || hdr.is_empty() {
                    break;
                }
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            h.fetch_add(1, Ordering::SeqCst);
            p.lock().unwrap().push(path.clone());
            let resp = match files.get(&path) {
                Some(body) => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(body);
                    r
                }
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec(),
            };
            let _ = stream.write_all(&resp);
        }
    });
    Server { url, hits, paths }
}

fn settings(dl: &Path) -> FetchSettings {
    FetchSettings {
        dl_dir: dl.to_path_buf(),
        ..FetchSettings::default()
    }
}

fn with_sha(uri: &str, sha: &str) -> Vec<SrcEntry> {
    let sha = sha.to_string();
    SrcUri::parse_with(
        uri,
        &move |f| (f == "sha256sum").then(|| sha.clone()),
        &no_flags,
    )
    .unwrap()
}

fn run_sh(script: &str) -> (bool, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("sh runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn tool(name: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .map(|o| o.status.success());
    assert!(
        ok.unwrap_or(false),
        "the host tool `{name}` is missing: run scripts/install-deps --test (these tests need it)"
    );
}

/// The names in a directory, sorted, without the downloads' `.lock` files
/// (which stay by design; `download_lock_serialises_fetches` checks them).
fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    names.sort();
    names
}

fn listing(root: &Path) -> String {
    let mut out = Vec::new();
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                out.push(format!("{rel}/"));
                walk(&p, root, out);
            } else if m.file_type().is_symlink() {
                out.push(format!(
                    "{rel} -> {}",
                    std::fs::read_link(&p).unwrap().display()
                ));
            } else {
                out.push(format!(
                    "{rel} = {:?}",
                    String::from_utf8_lossy(&std::fs::read(&p).unwrap())
                ));
            }
        }
    }
    walk(root, root, &mut out);
    out.join("\n")
}

// --- SRC_URI parsing ------------------------------------------------------------------

#[test]
fn parses_the_busybox_src_uri() {
    check_parse(
        "https://busybox.net/downloads/busybox-1.35.0.tar.bz2 \n  file://static.cfg file://fix-build.patch;striplevel=2 \
         file://defaults/app.conf;subdir=extra",
        expect![[r#"
            #0 Http scheme=https host=busybox.net path=/downloads/busybox-1.35.0.tar.bz2 local=busybox-1.35.0.tar.bz2 patch=false params={} sha256=None srcrev=None
            #1 File scheme=file host= path=static.cfg local=static.cfg patch=false params={} sha256=None srcrev=None
            #2 File scheme=file host= path=fix-build.patch local=fix-build.patch patch=true params={"striplevel": "2"} sha256=None srcrev=None
            #3 File scheme=file host= path=defaults/app.conf local=defaults/app.conf patch=false params={"subdir": "extra"} sha256=None srcrev=None"#]],
    );
}

#[test]
fn parses_params_git_and_patch_flags() {
    check_parse(
        "git://git.example.org/proj/tool.git;protocol=https;branch=stable;name=tool;destsuffix=tool-src \
         git+https://user@example.org/a/b.git;nobranch=1 \
         https://example.org/dl/get.php?id=3;downloadfilename=tool-3.tar.gz \
         file:///abs/dir/local.diff;apply=no file://notes.txt;apply=yes;patchdir=sub",
        expect![[r#"
            #0 Git scheme=git host=git.example.org path=/proj/tool.git local=git2/git.example.org.proj.tool.git patch=false params={"branch": "stable", "destsuffix": "tool-src", "name": "tool", "protocol": "https"} sha256=None srcrev=None
            #1 Git scheme=git+https host=example.org path=/a/b.git local=git2/example.org.a.b.git patch=false params={"nobranch": "1"} sha256=None srcrev=None
            #2 Http scheme=https host=example.org path=/dl/get.php?id=3 local=tool-3.tar.gz patch=false params={"downloadfilename": "tool-3.tar.gz"} sha256=None srcrev=None
            #3 File scheme=file host= path=/abs/dir/local.diff local=local.diff patch=false params={"apply": "no"} sha256=None srcrev=None
            #4 File scheme=file host= path=notes.txt local=notes.txt patch=true params={"apply": "yes", "patchdir": "sub"} sha256=None srcrev=None"#]],
    );
    let e = &SrcUri::parse("git+ssh://h/x.git git://h/y.git;protocol=file git://h/z.git").unwrap();
    assert_eq!(
        e.iter().map(|e| e.git_protocol()).collect::<Vec<_>>(),
        ["ssh", "file", "git"]
    );
    assert_eq!(e[0].branch(), "master");
    assert_eq!(e[0].destsuffix(), "git/");
}

#[test]
fn rejects_malformed_entries() {
    check_parse("busybox.tar.gz", expect!["error: SRC_URI entry 0 `busybox.tar.gz`: not a URL: expected `scheme://...` (e.g. `file://name.patch`)"]);
    check_parse(
        "file://a.patch file://b.patch;striplevel",
        expect!["error: SRC_URI entry 1 `file://b.patch;striplevel`: parameter `striplevel` has no value (expected `;striplevel=value`)"],
    );
    check_parse("https://example.org/", expect!["error: SRC_URI entry 0 `https://example.org/`: the URL names no file; add `;downloadfilename=<name>`"]);
    check_parse("file://../escape.patch", expect!["error: SRC_URI entry 0 `file://../escape.patch`: the local name `../escape.patch` must stay inside DL_DIR (no `..`)"]);
    let e = parse_one("file://x.patch;striplevel=one");
    assert_eq!(
        e.striplevel().unwrap_err().to_string(),
        "SRC_URI entry 0 `file://x.patch;striplevel=one`: striplevel=`one` is not a number"
    );
}

#[test]
fn checksums_and_srcrev_are_looked_up_by_name() {
    let flags = |f: &str| match f {
        "sha256sum" => Some("AA".repeat(32)),
        "extra.sha256sum" => Some("bb".repeat(32)),
        _ => None,
    };
    let vars = |v: &str| match v {
        "SRCREV" => Some("INVALID".to_string()),
        "SRCREV_tool" => Some("c".repeat(40)),
        _ => None,
    };
    let v = SrcUri::parse_with(
        "https://e.org/a.tar.gz https://e.org/b.tar.gz;name=extra https://e.org/c.tar.gz;name=none \
         git://e.org/t.git;name=tool git://e.org/u.git",
        &flags,
        &vars,
    )
    .unwrap();
    let got: Vec<_> = v
        .iter()
        .map(|e| {
            (
                e.checksum_flag("sha256"),
                e.sha256.clone(),
                e.srcrev.clone(),
            )
        })
        .collect();
    assert_eq!(got[0], ("sha256sum".into(), Some("aa".repeat(32)), None));
    assert_eq!(
        got[1],
        ("extra.sha256sum".into(), Some("bb".repeat(32)), None)
    );
    assert_eq!(got[2], ("none.sha256sum".into(), None, None));
    assert_eq!(got[3].2, Some("c".repeat(40)));
    assert_eq!(got[4].2, None, "SRCREV = INVALID counts as unset");

    // file:// entries take no checksum (BitBake's local fetcher has none): the
    // recipe's unnamed SRC_URI[sha256sum] belongs to the tarball only.
    let v = SrcUri::parse_with("https://e.org/a.tar.gz file://static.cfg", &flags, &vars).unwrap();
    assert_eq!(v[0].sha256, Some("aa".repeat(32)));
    assert_eq!(v[1].sha256, None);
    // ...unless named: a file that lives only in DL_DIR, declared on purpose.
    let v = SrcUri::parse_with("file://k.deb;name=extra", &flags, &vars).unwrap();
    assert_eq!(v[0].sha256, Some("bb".repeat(32)));

    let bad = SrcUri::parse_with(
        "https://e.org/a.tar.gz",
        &|_| Some("1234".into()),
        &no_flags,
    )
    .unwrap_err();
    assert_eq!(
        bad.to_string(),
        "SRC_URI entry 0 `https://e.org/a.tar.gz`: SRC_URI[sha256sum] = \"1234\" is not a sha256 (64 hex digits)"
    );
}

#[test]
fn builtin_flag_values() {
    assert_eq!(Builtin::from_flag("fetch"), Some(Builtin::Fetch));
    assert_eq!(Builtin::from_flag(" unpack "), Some(Builtin::Unpack));
    assert_eq!(
        Builtin::from_flag("patch").map(Builtin::as_str),
        Some("patch")
    );
    assert_eq!(Builtin::from_flag("compile"), None);
}

// --- mirrors ---------------------------------------------------------------------------

fn check_mirror(uri: &str, mirrors: &str, expect: Expect) {
    let e = parse_one(uri);
    let rules = parse_mirrors("PREMIRRORS", mirrors).unwrap();
    let out: Vec<String> = rules
        .iter()
        .map(|r| rewrite_for_mirror(&e, r).unwrap_or_else(|| "(no match)".into()))
        .collect();
    expect.assert_eq(&out.join("\n"));
}

#[test]
fn mirror_rules_rewrite_like_bitbake() {
    check_mirror(
        "https://busybox.net/downloads/busybox-1.35.0.tar.bz2",
        r"https?://.*/.* file:///srv/mirror/ \n ftp://.*/.* http://m.example/ftp/ \n
          https?://busybox\.net/.* http://m.example/HOST/BASENAME \n git://.*/.* http://m.example/ \n
          https://.*/downloads/(.*) http://m.example/by-name/\1 \n http://.*/.* http://m.example/TYPE/",
        expect![[r#"
            file:///srv/mirror/busybox-1.35.0.tar.bz2
            (no match)
            http://m.example/busybox.net/busybox-1.35.0.tar.bz2
            (no match)
            http://m.example/by-name/busybox-1.35.0.tar.bz2
            (no match)"#]],
    );
    check_mirror(
        "git://git.example.org/proj/tool.git;protocol=https;branch=main",
        r"git://.*/.* git:///srv/git/MIRRORNAME;protocol=file",
        expect!["git:///srv/git/git.example.org.proj.tool.git;branch=main;protocol=file"],
    );
    // Parameters named in the pattern must match.
    check_mirror(
        "git://h.org/a.git;protocol=https",
        "git://.*/.*;protocol=ssh git:///x/MIRRORNAME;protocol=file",
        expect!["(no match)"],
    );
}

#[test]
fn mirror_values_must_pair_up_and_compile() {
    let e = parse_mirrors("MIRRORS", "https://.*/.* http://m/ http://.*/.*").unwrap_err();
    assert_eq!(
        e.to_string(),
        "MIRRORS: expected pairs of `pattern replacement`, got 3 words (the last, `http://.*/.*`, has no partner)"
    );
    let e = parse_mirrors("PREMIRRORS", "https://(.*/.* http://m/").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("PREMIRRORS: pattern `https://(.*/.*`: bad regular expression `(.*`"),
        "{e}"
    );
    assert!(parse_mirrors("MIRRORS", " \\n ").unwrap().is_empty());
}

// --- fetch: file:// ----------------------------------------------------------------------

#[test]
fn filespath_tries_overrides_first() {
    let dirs = filespath_dirs(
        "/r/busybox-1.0:/r/busybox:/r/files",
        "x86-64:qemux86-64:bitzel",
    );
    let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    expect![[r#"
        /r/busybox-1.0/bitzel
        /r/busybox/bitzel
        /r/files/bitzel
        /r/busybox-1.0/qemux86-64
        /r/busybox/qemux86-64
        /r/files/qemux86-64
        /r/busybox-1.0/x86-64
        /r/busybox/x86-64
        /r/files/x86-64
        /r/busybox-1.0
        /r/busybox
        /r/files"#]]
    .assert_eq(&dirs.join("\n"));
}

#[test]
fn file_entries_are_searched_in_filespath_then_dl_dir() {
    let t = tempfile::tempdir().unwrap();
    let files = t.path().join("files");
    let machine = t.path().join("files/qemux86-64");
    let dl = t.path().join("dl");
    for d in [&files, &machine, &dl] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(files.join("a.cfg"), "generic").unwrap();
    std::fs::write(machine.join("a.cfg"), "machine").unwrap();
    std::fs::write(dl.join("big.deb"), "deb").unwrap();
    std::fs::create_dir_all(files.join("tree/sub")).unwrap();
    std::fs::write(files.join("tree/sub/x"), "x").unwrap();
    let mut s = settings(&dl);
    s.filespath = filespath_dirs(&files.display().to_string(), "qemux86-64");
    let entries = SrcUri::parse("file://a.cfg file://big.deb file://tree").unwrap();
    let got = fetch(&entries, &s).unwrap();
    assert_eq!(
        got[0].local_path,
        machine.join("a.cfg"),
        "the override directory wins"
    );
    assert_eq!(got[0].local_name, "a.cfg");
    assert_eq!(got[0].digest, blake3::hash(b"machine").to_hex().to_string());
    assert_eq!(
        got[0].sha256.as_deref(),
        Some(sha256_hex(b"machine").as_str())
    );
    assert_eq!(
        got[1].local_path,
        dl.join("big.deb"),
        "DL_DIR is the last resort"
    );
    assert!(got[2].is_dir && got[2].sha256.is_none());
    assert!(got.iter().all(|f| !f.downloaded));
    assert_eq!(got[2].digest, tree_digest(&files.join("tree")).unwrap());

    let missing = fetch(&SrcUri::parse("file://nope.patch").unwrap(), &s)
        .unwrap_err()
        .to_string();
    let missing = missing.replace(&t.path().display().to_string(), "$T");
    expect![[r#"
        SRC_URI entry `file://nope.patch`: `nope.patch` was not found; searched (in order):
          $T/files/qemux86-64
          $T/files
          $T/dl
        put the file into one of these directories (usually `files/` next to the recipe) or fix the name"#]]
    .assert_eq(&missing);
}

#[test]
fn tree_digest_depends_on_content_and_names_not_on_location() {
    let t = tempfile::tempdir().unwrap();
    let mk = |root: &Path, content: &str| {
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::write(root.join("d/f"), content).unwrap();
        std::os::unix::fs::symlink("d/f", root.join("link")).unwrap();
    };
    mk(&t.path().join("a"), "1");
    mk(&t.path().join("b"), "1");
    mk(&t.path().join("c"), "2");
    let a = tree_digest(&t.path().join("a")).unwrap();
    assert_eq!(a, tree_digest(&t.path().join("b")).unwrap());
    assert_ne!(a, tree_digest(&t.path().join("c")).unwrap());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        t.path().join("b/d/f"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    assert_ne!(
        a,
        tree_digest(&t.path().join("b")).unwrap(),
        "the executable bit counts"
    );
}

// --- fetch: http ------------------------------------------------------------------------

const TARBALL: &[u8] = b"pretend this is busybox-1.35.0.tar.bz2";

#[test]
fn http_download_is_verified_kept_and_reused_without_network() {
    let srv = serve(BTreeMap::from([(
        "/dl/busybox-1.35.0.tar.bz2".to_string(),
        TARBALL.to_vec(),
    )]));
    let t = tempfile::tempdir().unwrap();
    let entries = with_sha(
        &format!("{}/dl/busybox-1.35.0.tar.bz2", srv.url),
        &sha256_hex(TARBALL),
    );
    let got = fetch(&entries, &settings(t.path())).unwrap();
    assert_eq!(srv.hits.load(Ordering::SeqCst), 1);
    assert!(got[0].downloaded);
    assert_eq!(got[0].local_name, "busybox-1.35.0.tar.bz2");
    assert_eq!(
        std::fs::read(t.path().join("busybox-1.35.0.tar.bz2")).unwrap(),
        TARBALL
    );
    assert_eq!(got[0].digest, blake3::hash(TARBALL).to_hex().to_string());
    assert_eq!(
        dir_names(t.path()).len(),
        1,
        "no temporary file left behind"
    );

    // Second fetch: the file in DL_DIR has the right checksum, no request.
    let mut s = settings(t.path());
    s.no_network = true;
    let again = fetch(&entries, &s).unwrap();
    assert!(!again[0].downloaded, "found in DL_DIR, not downloaded");
    assert_eq!(
        again,
        vec![Fetched {
            downloaded: false,
            ..got[0].clone()
        }]
    );
    assert_eq!(srv.hits.load(Ordering::SeqCst), 1);
}

#[test]
fn http_checksum_mismatch_is_an_error_and_the_download_is_kept_aside() {
    let srv = serve(BTreeMap::from([(
        "/x.tar.gz".to_string(),
        b"tampered".to_vec(),
    )]));
    let t = tempfile::tempdir().unwrap();
    let uri = format!("{}/x.tar.gz", srv.url);
    let bad_name = format!("x.tar.gz_bad-checksum_{}", sha256_hex(b"tampered"));
    let err = fetch(
        &with_sha(&uri, &sha256_hex(b"original")),
        &settings(t.path()),
    )
    .unwrap_err();
    let msg = err
        .to_string()
        .replace(&srv.url, "$URL")
        .replace(&t.path().display().to_string(), "$DL")
        .replace(&sha256_hex(b"tampered"), "$TAMPERED");
    expect![[r#"checksum mismatch for `$URL/x.tar.gz` (from $URL/x.tar.gz): expected sha256 0682c5f2076f099c34cfdd15a9e063849ed437a49677e6fcc5b4198c76575be5, got $TAMPERED; the file was moved aside to $DL/x.tar.gz_bad-checksum_$TAMPERED. If the new content is expected (a new version), set SRC_URI[sha256sum] = "$TAMPERED" in the recipe; otherwise retry or check upstream"#]]
    .assert_eq(&msg);
    let BuiltinError::ChecksumMismatch(m) = &err else {
        panic!("{err}")
    };
    assert_eq!(m.bad_file, BadFile::MovedAside(t.path().join(&bad_name)));
    assert_eq!(
        dir_names(t.path()),
        std::slice::from_ref(&bad_name),
        "the bad bytes are kept aside, never under the real name; no temp file is left"
    );
    assert_eq!(
        std::fs::read(t.path().join(&bad_name)).unwrap(),
        b"tampered"
    );

    // Trying again with the same bad content replaces the copy kept aside.
    fetch(
        &with_sha(&uri, &sha256_hex(b"original")),
        &settings(t.path()),
    )
    .unwrap_err();
    assert_eq!(dir_names(t.path()), std::slice::from_ref(&bad_name));

    let err = fetch(&SrcUri::parse(&uri).unwrap(), &settings(t.path())).unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "add SRC_URI[sha256sum] = \"{}\"",
            sha256_hex(b"tampered")
        )),
        "{err}"
    );
    assert_eq!(
        dir_names(t.path()),
        [bad_name],
        "without a checksum nothing is kept"
    );
}

#[test]
fn no_network_names_the_url_and_the_dl_dir_path() {
    let t = tempfile::tempdir().unwrap();
    let mut s = settings(t.path());
    s.no_network = true;
    let uri = "https://busybox.net/downloads/busybox-1.35.0.tar.bz2";
    let err = fetch(&with_sha(uri, &sha256_hex(TARBALL)), &s)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err.replace(&t.path().display().to_string(), "$DL"),
        "`https://busybox.net/downloads/busybox-1.35.0.tar.bz2` is needed but BB_NO_NETWORK is set and it is \
         not in DL_DIR at $DL/busybox-1.35.0.tar.bz2; put the file there (e.g. scripts/preseed-downloads) or \
         unset BB_NO_NETWORK"
    );
}

#[test]
fn a_bad_file_in_dl_dir_is_moved_aside_without_network() {
    let t = tempfile::tempdir().unwrap();
    let mut s = settings(t.path());
    s.no_network = true;
    let uri = "https://busybox.net/downloads/busybox-1.35.0.tar.bz2";
    let dest = t.path().join("busybox-1.35.0.tar.bz2");
    std::fs::write(&dest, b"truncated").unwrap();
    let err = fetch(&with_sha(uri, &sha256_hex(TARBALL)), &s).unwrap_err();
    let bad = t.path().join(format!(
        "busybox-1.35.0.tar.bz2_bad-checksum_{}",
        sha256_hex(b"truncated")
    ));
    let BuiltinError::ChecksumMismatch(m) = &err else {
        panic!("{err}")
    };
    assert_eq!(m.bad_file, BadFile::MovedAside(bad.clone()));
    let msg = err
        .to_string()
        .replace(&t.path().display().to_string(), "$DL")
        .replace(&sha256_hex(b"truncated"), "$BAD")
        .replace(&sha256_hex(TARBALL), "$GOOD");
    expect![[r#"checksum mismatch for `https://busybox.net/downloads/busybox-1.35.0.tar.bz2` (from $DL/busybox-1.35.0.tar.bz2 (already in DL_DIR)): expected sha256 $GOOD, got $BAD; the file was moved aside to $DL/busybox-1.35.0.tar.bz2_bad-checksum_$BAD. If the new content is expected (a new version), set SRC_URI[sha256sum] = "$BAD" in the recipe; otherwise put the right file at $DL/busybox-1.35.0.tar.bz2 or unset BB_NO_NETWORK to download it again"#]]
    .assert_eq(&msg);
    assert!(!dest.exists(), "the bad file no longer has the real name");
    assert_eq!(std::fs::read(&bad).unwrap(), b"truncated");
    assert_eq!(
        dir_names(t.path()),
        [bad.file_name().unwrap().to_string_lossy().into_owned()]
    );

    // Now nothing is in DL_DIR under the real name: the plain no-network error.
    let err = fetch(&with_sha(uri, &sha256_hex(TARBALL)), &s).unwrap_err();
    assert!(matches!(err, BuiltinError::NoNetwork { .. }), "{err}");
    assert_eq!(
        std::fs::read(&bad).unwrap(),
        b"truncated",
        "the evidence stays"
    );
}

/// A DL_DIR holding a bad `pkg-1.0.tar.gz` (`bad` is where it gets moved
/// aside to), and settings with BB_NO_NETWORK and a `file://` PREMIRROR that
/// holds the good one.
struct BadFileAndMirror {
    _t: tempfile::TempDir,
    dl: PathBuf,
    dest: PathBuf,
    bad: PathBuf,
    entries: Vec<SrcEntry>,
    settings: FetchSettings,
}

fn bad_file_and_mirror() -> BadFileAndMirror {
    let t = tempfile::tempdir().unwrap();
    let dl = t.path().join("dl");
    let mirror = t.path().join("premirror");
    std::fs::create_dir_all(&dl).unwrap();
    std::fs::create_dir_all(&mirror).unwrap();
    std::fs::write(mirror.join("pkg-1.0.tar.gz"), TARBALL).unwrap();
    let dest = dl.join("pkg-1.0.tar.gz");
    std::fs::write(&dest, b"half a download").unwrap();
    let bad = dl.join(format!(
        "pkg-1.0.tar.gz_bad-checksum_{}",
        sha256_hex(b"half a download")
    ));
    let entries = with_sha(
        "https://example.invalid/pkg-1.0.tar.gz",
        &sha256_hex(TARBALL),
    );
    let mut s = settings(&dl);
    s.no_network = true;
    s.premirrors = parse_mirrors(
        "PREMIRRORS",
        &format!("https://.*/.* file://{}/", mirror.display()),
    )
    .unwrap();
    BadFileAndMirror {
        _t: t,
        dl,
        dest,
        bad,
        entries,
        settings: s,
    }
}

#[test]
fn a_bad_file_in_dl_dir_is_moved_aside_and_fetched_again() {
    let BadFileAndMirror {
        _t,
        dl,
        dest,
        bad,
        entries,
        settings: s,
    } = bad_file_and_mirror();
    let got = fetch(&entries, &s).unwrap();
    assert!(got[0].downloaded);
    assert_eq!(got[0].local_path, dest);
    assert_eq!(got[0].sha256.as_deref(), Some(sha256_hex(TARBALL).as_str()));
    assert_eq!(std::fs::read(&dest).unwrap(), TARBALL);
    assert_eq!(std::fs::read(&bad).unwrap(), b"half a download");
    assert_eq!(
        dir_names(&dl),
        [
            "pkg-1.0.tar.gz".to_string(),
            bad.file_name().unwrap().to_string_lossy().into_owned()
        ],
        "no temporary file is left"
    );

    // Over http too, from the local server.
    let srv = serve(BTreeMap::from([(
        "/pkg-1.0.tar.gz".to_string(),
        TARBALL.to_vec(),
    )]));
    std::fs::write(&dest, b"half a download").unwrap();
    let got = fetch(
        &with_sha(&format!("{}/pkg-1.0.tar.gz", srv.url), &sha256_hex(TARBALL)),
        &settings(&dl),
    )
    .unwrap();
    assert!(got[0].downloaded);
    assert_eq!(srv.hits.load(Ordering::SeqCst), 1);
    assert_eq!(std::fs::read(&dest).unwrap(), TARBALL);
    assert_eq!(std::fs::read(&bad).unwrap(), b"half a download");
    assert_eq!(dir_names(&dl).len(), 2, "the same bad bytes, the same name");
}

#[test]
fn a_bad_file_in_dl_dir_is_listed_when_no_source_has_it() {
    let srv = serve(BTreeMap::new());
    let t = tempfile::tempdir().unwrap();
    let dest = t.path().join("gone.tar.gz");
    std::fs::write(&dest, b"stale").unwrap();
    let err = fetch(
        &with_sha(&format!("{}/gone.tar.gz", srv.url), &sha256_hex(TARBALL)),
        &settings(t.path()),
    )
    .unwrap_err()
    .to_string()
    .replace(&srv.url, "$URL")
    .replace(&t.path().display().to_string(), "$DL")
    .replace(&sha256_hex(b"stale"), "$BAD")
    .replace(&sha256_hex(TARBALL), "$GOOD");
    expect![[r#"
        could not fetch `$URL/gone.tar.gz`; tried:
          $DL/gone.tar.gz (already in DL_DIR): sha256 $BAD instead of $GOOD; moved aside to $DL/gone.tar.gz_bad-checksum_$BAD
          $URL/gone.tar.gz: http status: 404"#]]
    .assert_eq(&err);
    assert!(!dest.exists());
}

#[test]
fn premirrors_come_first_and_mirrors_last() {
    let srv = serve(BTreeMap::from([(
        "/mirror/pkg-1.0.tar.gz".to_string(),
        TARBALL.to_vec(),
    )]));
    let t = tempfile::tempdir().unwrap();
    let local_mirror = t.path().join("premirror");
    std::fs::create_dir_all(&local_mirror).unwrap();
    std::fs::write(local_mirror.join("pkg-1.0.tar.gz"), TARBALL).unwrap();
    let dl = t.path().join("dl");
    let entries = with_sha(
        &format!("{}/upstream/pkg-1.0.tar.gz", srv.url),
        &sha256_hex(TARBALL),
    );

    // PREMIRRORS: a local directory; no request reaches the server, even with the network off.
    let mut s = settings(&dl);
    s.no_network = true;
    s.premirrors = parse_mirrors(
        "PREMIRRORS",
        &format!("http://.*/.* file://{}/", local_mirror.display()),
    )
    .unwrap();
    fetch(&entries, &s).unwrap();
    assert_eq!(srv.hits.load(Ordering::SeqCst), 0);

    // MIRRORS: tried after upstream (404) fails.
    std::fs::remove_dir_all(&dl).unwrap();
    let mut s = settings(&dl);
    s.mirrors = parse_mirrors("MIRRORS", &format!("http://.*/.* {}/mirror/", srv.url)).unwrap();
    fetch(&entries, &s).unwrap();
    assert_eq!(
        *srv.paths.lock().unwrap(),
        ["/upstream/pkg-1.0.tar.gz", "/mirror/pkg-1.0.tar.gz"]
    );

    // Nothing anywhere: every attempt is listed.
    let err = fetch(
        &with_sha(&format!("{}/gone.tar.gz", srv.url), &sha256_hex(TARBALL)),
        &settings(&dl),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err.replace(&srv.url, "$URL"),
        "could not fetch `$URL/gone.tar.gz`; tried:\n  $URL/gone.tar.gz: http status: 404"
    );
}

// --- fetch: git ----------------------------------------------------------------------

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs (scripts/install-deps --test installs it)");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A bare repository with two commits on `main` and one on `topic`.
fn bare_repo(root: &Path) -> (PathBuf, String, String, String) {
    let work = root.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("README"), "v1\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "one"]);
    let first = git(&work, &["rev-parse", "HEAD"]);
    std::fs::create_dir_all(work.join("src")).unwrap();
    std::fs::write(work.join("src/main.c"), "int main(void) { return 0; }\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "two"]);
    let second = git(&work, &["rev-parse", "HEAD"]);
    git(&work, &["checkout", "-q", "-b", "topic"]);
    std::fs::write(work.join("TOPIC"), "t\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "topic"]);
    let topic = git(&work, &["rev-parse", "HEAD"]);
    let bare = root.join("upstream.git");
    git(
        root,
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );
    (bare, first, second, topic)
}

#[test]
fn git_fetch_mirrors_and_exports_srcrev() {
    let t = tempfile::tempdir().unwrap();
    let (bare, first, second, topic) = bare_repo(t.path());
    let dl = t.path().join("dl");
    let uri = format!("git://{};protocol=file;branch=main", bare.display());
    let rev = second.clone();
    let entries = SrcUri::parse_with(&uri, &no_flags, &move |v| {
        (v == "SRCREV").then(|| rev.clone())
    })
    .unwrap();
    let got = fetch(&entries, &settings(&dl)).unwrap();
    let mirror = entries[0].local_name.clone();
    assert!(
        mirror.starts_with("git2/") && mirror.ends_with("upstream.git"),
        "{mirror}"
    );
    assert!(
        dl.join(&mirror).join("HEAD").is_file(),
        "a bare mirror in DL_DIR/git2/"
    );
    assert_eq!(
        got[0].local_name,
        format!("git2/exports/{}/{second}", &mirror[5..])
    );
    assert!(got[0].is_dir);
    assert!(got[0].downloaded, "cloned into DL_DIR");
    expect![[r#"
        README = "v1\n"
        src/
        src/main.c = "int main(void) { return 0; }\n""#]]
    .assert_eq(&listing(&got[0].local_path));

    // The older commit: from the existing mirror, with the network off.
    let mut s = settings(&dl);
    s.no_network = true;
    let rev = first.clone();
    let old = SrcUri::parse_with(&uri, &no_flags, &move |v| {
        (v == "SRCREV").then(|| rev.clone())
    })
    .unwrap();
    let got_old = fetch(&old, &s).unwrap();
    assert!(
        !got_old[0].downloaded,
        "exported from the mirror already there"
    );
    assert_eq!(listing(&got_old[0].local_path), "README = \"v1\\n\"");
    assert_ne!(got_old[0].digest, got[0].digest);

    // A commit that is not on the branch.
    let rev = topic.clone();
    let e = SrcUri::parse_with(&uri, &no_flags, &move |v| {
        (v == "SRCREV").then(|| rev.clone())
    })
    .unwrap();
    let err = fetch(&e, &settings(&dl)).unwrap_err().to_string();
    assert!(
        err.contains(&format!("SRCREV {topic} is not on branch `main`")),
        "{err}"
    );
    // ... fine with nobranch=1.
    let rev = topic.clone();
    let e = SrcUri::parse_with(&format!("{uri};nobranch=1"), &no_flags, &move |v| {
        (v == "SRCREV").then(|| rev.clone())
    })
    .unwrap();
    assert!(fetch(&e, &settings(&dl)).unwrap()[0]
        .local_path
        .join("TOPIC")
        .is_file());

    // No SRCREV, or a floating one.
    let err = fetch(&SrcUri::parse(&uri).unwrap(), &settings(&dl))
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("no revision: set SRCREV to the full commit id to build"),
        "{err}"
    );
    let e = SrcUri::parse_with(&uri, &no_flags, &|_| Some("AUTOINC".into())).unwrap();
    assert!(matches!(
        fetch(&e, &settings(&dl)).unwrap_err(),
        BuiltinError::Unsupported { .. }
    ));
}

#[test]
fn git_without_network_and_without_mirror_is_an_error() {
    let t = tempfile::tempdir().unwrap();
    let mut s = settings(t.path());
    s.no_network = true;
    let e = SrcUri::parse_with(
        "git://git.example.org/a.git;protocol=https",
        &no_flags,
        &|_| Some("a".repeat(40)),
    )
    .unwrap();
    let err = fetch(&e, &s).unwrap_err();
    assert!(matches!(err, BuiltinError::NoNetwork { .. }), "{err}");
    assert!(
        err.to_string().contains("git2/git.example.org.a.git"),
        "{err}"
    );
}

// --- unpack ---------------------------------------------------------------------------

fn fetched_for(entries: &[SrcEntry], dirs: &[usize]) -> Vec<Fetched> {
    entries
        .iter()
        .map(|e| Fetched {
            entry_index: e.index,
            local_name: if e.kind == SrcKind::Git {
                format!("git2/exports/x/{}", "1".repeat(40))
            } else {
                e.local_name.clone()
            },
            local_path: PathBuf::from("/host/dl").join(&e.local_name),
            digest: String::new(),
            sha256: None,
            is_dir: dirs.contains(&e.index) || e.kind == SrcKind::Git,
            downloaded: false,
        })
        .collect()
}

#[test]
fn unpack_script_snapshot() {
    let entries = SrcUri::parse(
        "https://e.org/busybox-1.35.0.tar.bz2 file://static.cfg file://fix.patch \
         file://linux-image-amd64.deb;subdir=kernel-deb file://big.deb;unpack=0 \
         file://data.txt.xz file://src-1.0.tar.gz;striplevel=1;subdir=src git://e.org/t.git;destsuffix=tool",
    )
    .unwrap();
    let script = unpack_script(
        &entries,
        &fetched_for(&entries, &[]),
        &UnpackSettings::default(),
    )
    .unwrap();
    expect![[r##"
        #!/bin/sh
        # Generated by bitzel's unpack built-in.
        set -e
        bitzel_unpack_failed() {
        	echo "ERROR: do_unpack: SRC_URI entry $1 failed: $2" >&2
        	exit 1
        }
        mkdir -p /bitzel/work

        # https://e.org/busybox-1.35.0.tar.bz2
        mkdir -p /bitzel/work
        tar -x --no-same-owner -j -f /bitzel/downloads/busybox-1.35.0.tar.bz2 -C /bitzel/work || bitzel_unpack_failed https://e.org/busybox-1.35.0.tar.bz2 'extracting the tar archive'

        # file://static.cfg
        mkdir -p /bitzel/work
        cp --preserve=mode,timestamps /bitzel/downloads/static.cfg /bitzel/work/static.cfg || bitzel_unpack_failed file://static.cfg copying

        # file://fix.patch
        mkdir -p /bitzel/work
        cp --preserve=mode,timestamps /bitzel/downloads/fix.patch /bitzel/work/fix.patch || bitzel_unpack_failed file://fix.patch copying

        # file://linux-image-amd64.deb;subdir=kernel-deb
        mkdir -p /bitzel/work/kernel-deb
        bitzel_deb=$(mktemp -d)
        (cd "$bitzel_deb" && ar x /bitzel/downloads/linux-image-amd64.deb) || bitzel_unpack_failed 'file://linux-image-amd64.deb;subdir=kernel-deb' 'ar x of the .deb'
        set -- "$bitzel_deb"/data.tar*
        [ -f "$1" ] || bitzel_unpack_failed 'file://linux-image-amd64.deb;subdir=kernel-deb' 'the .deb has no data.tar member'
        tar -x --no-same-owner -f "$1" -C /bitzel/work/kernel-deb || bitzel_unpack_failed 'file://linux-image-amd64.deb;subdir=kernel-deb' 'extracting the .deb'\''s data.tar'
        rm -rf "$bitzel_deb"

        # file://big.deb;unpack=0
        mkdir -p /bitzel/work
        cp --preserve=mode,timestamps /bitzel/downloads/big.deb /bitzel/work/big.deb || bitzel_unpack_failed 'file://big.deb;unpack=0' copying

        # file://data.txt.xz
        mkdir -p /bitzel/work
        mkdir -p "$(dirname /bitzel/work/data.txt)"
        xz -dc /bitzel/downloads/data.txt.xz >/bitzel/work/data.txt || bitzel_unpack_failed file://data.txt.xz decompressing

        # file://src-1.0.tar.gz;striplevel=1;subdir=src
        mkdir -p /bitzel/work/src
        tar -x --no-same-owner -z --strip-components=1 -f /bitzel/downloads/src-1.0.tar.gz -C /bitzel/work/src || bitzel_unpack_failed 'file://src-1.0.tar.gz;striplevel=1;subdir=src' 'extracting the tar archive'

        # git://e.org/t.git;destsuffix=tool
        mkdir -p /bitzel/work
        rm -rf /bitzel/work/tool
        mkdir -p /bitzel/work/tool
        cp -PR --preserve=mode,timestamps,links /bitzel/downloads/git2/exports/x/1111111111111111111111111111111111111111/. /bitzel/work/tool/ || bitzel_unpack_failed 'git://e.org/t.git;destsuffix=tool' 'copying the git tree'
    "##]]
    .assert_eq(&script);
}

#[test]
fn unpack_script_really_unpacks() {
    for t in ["tar", "gzip", "bzip2", "xz", "zstd", "ar"] {
        tool(t);
    }
    let t = tempfile::tempdir().unwrap();
    let dl = t.path().join("downloads");
    let work = t.path().join("work");
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("pkg-1.0/sub")).unwrap();
    std::fs::create_dir_all(&dl).unwrap();
    std::fs::write(src.join("pkg-1.0/sub/file.c"), "int x;\n").unwrap();
    std::fs::write(src.join("pkg-1.0/README"), "hello\n").unwrap();
    let sh = |cmd: String| {
        let (ok, out) = run_sh(&cmd);
        assert!(ok, "{cmd}: {out}");
    };
    let (s, d) = (src.display(), dl.display());
    sh(format!("tar -C {s} -cjf {d}/pkg-1.0.tar.bz2 pkg-1.0"));
    sh(format!("tar -C {s} -czf {d}/pkg2.tgz pkg-1.0"));
    sh(format!("tar -C {s} --zstd -cf {d}/pkg3.tar.zst pkg-1.0"));
    sh(format!("printf 'compressed\\n' | xz >{d}/notes.txt.xz"));
    sh(format!("printf 'CONFIG_STATIC=y\\n' >{d}/static.cfg"));
    // A Debian package: debian-binary, control.tar.xz, data.tar.xz (./boot/vmlinuz-test).
    sh(format!(
        "cd {s} && mkdir -p deb/data/boot deb/ctl && printf 'kernel\\n' >deb/data/boot/vmlinuz-test \
         && printf 'Package: k\\n' >deb/ctl/control && printf '2.0\\n' >deb/debian-binary \
         && tar -C deb/ctl -cJf deb/control.tar.xz . && tar -C deb/data -cJf deb/data.tar.xz ./boot \
         && cd deb && ar rc {d}/linux-image-amd64.deb debian-binary control.tar.xz data.tar.xz"
    ));
    let entries = SrcUri::parse(
        "https://e.org/pkg-1.0.tar.bz2 file://pkg2.tgz;subdir=two;striplevel=1 file://pkg3.tar.zst;subdir=three \
         file://notes.txt.xz file://static.cfg file://linux-image-amd64.deb;subdir=kernel-deb \
         file://pkg2.tgz;unpack=0;subdir=raw",
    )
    .unwrap();
    let settings = UnpackSettings {
        downloads_dir: d.to_string(),
        unpack_dir: work.display().to_string(),
    };
    let script = unpack_script(&entries, &fetched_for(&entries, &[]), &settings).unwrap();
    let (ok, out) = run_sh(&script);
    assert!(ok, "{out}\n{script}");
    let listing = listing(&work);
    let listing: Vec<&str> = listing
        .lines()
        .filter(|l| !l.contains("raw/pkg2.tgz ="))
        .collect();
    expect![[r#"
        kernel-deb/
        kernel-deb/boot/
        kernel-deb/boot/vmlinuz-test = "kernel\n"
        notes.txt = "compressed\n"
        pkg-1.0/
        pkg-1.0/README = "hello\n"
        pkg-1.0/sub/
        pkg-1.0/sub/file.c = "int x;\n"
        raw/
        static.cfg = "CONFIG_STATIC=y\n"
        three/
        three/pkg-1.0/
        three/pkg-1.0/README = "hello\n"
        three/pkg-1.0/sub/
        three/pkg-1.0/sub/file.c = "int x;\n"
        two/
        two/README = "hello\n"
        two/sub/
        two/sub/file.c = "int x;\n""#]]
    .assert_eq(&listing.join("\n"));
    assert_eq!(
        std::fs::read(work.join("raw/pkg2.tgz")).unwrap(),
        std::fs::read(dl.join("pkg2.tgz")).unwrap()
    );

    // A corrupt archive: the script names the entry and fails.
    std::fs::write(dl.join("pkg-1.0.tar.bz2"), "not bzip2").unwrap();
    let (ok, out) = run_sh(&script);
    assert!(!ok);
    assert!(
        out.contains("ERROR: do_unpack: SRC_URI entry https://e.org/pkg-1.0.tar.bz2 failed: extracting the tar archive"),
        "{out}"
    );
}

#[test]
fn unpack_needs_a_fetch_result_per_entry() {
    let entries = SrcUri::parse("file://a.cfg").unwrap();
    let err = unpack_script(&entries, &[], &UnpackSettings::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "SRC_URI entry 0 `file://a.cfg`: was not fetched (no fetch result for it)"
    );
}

// --- patch ----------------------------------------------------------------------------

const GOOD_PATCH: &str = "--- a/src/main.c\n+++ b/src/main.c\n@@ -1,3 +1,3 @@\n int main(void)\n {\n-\treturn 1;\n+\treturn 0;\n }\n";
const BAD_PATCH: &str = "--- a/src/main.c\n+++ b/src/main.c\n@@ -1,3 +1,3 @@\n int main(void)\n {\n-\treturn 7;\n+\treturn 8;\n }\n";
const OTHER_PATCH: &str = "--- pkg/README\n+++ pkg/README\n@@ -1 +1 @@\n-hello\n+hello, patched\n";

#[test]
fn patch_script_snapshot() {
    let entries = SrcUri::parse(
        "https://e.org/p-1.0.tar.gz file://0001-fix.patch file://sub.diff;patchdir=lib;striplevel=0 \
         file://notes.txt file://more/x.patch;subdir=extra file://skip.patch;apply=no",
    )
    .unwrap();
    let s = patch_script(
        &entries,
        &PatchSettings {
            unpack_dir: "/bitzel/work".into(),
            s: "/bitzel/work/p-1.0".into(),
        },
    )
    .unwrap();
    let calls: Vec<&str> = s
        .lines()
        .filter(|l| l.starts_with("bitzel_apply_patch "))
        .collect();
    expect![[r#"
        bitzel_apply_patch /bitzel/work/0001-fix.patch /bitzel/work/p-1.0 1 0001-fix.patch
        bitzel_apply_patch /bitzel/work/sub.diff /bitzel/work/p-1.0/lib 0 sub.diff
        bitzel_apply_patch /bitzel/work/extra/more/x.patch /bitzel/work/p-1.0 1 more/x.patch"#]]
    .assert_eq(&calls.join("\n"));
    let none = patch_script(
        &entries[..1],
        &PatchSettings {
            unpack_dir: "/w".into(),
            s: "/w/s".into(),
        },
    )
    .unwrap();
    assert!(none.ends_with("echo \"NOTE: do_patch: no patches in SRC_URI\"\n"));
}

#[test]
fn patches_apply_in_order_and_a_failing_hunk_names_patch_and_file() {
    tool("patch");
    let t = tempfile::tempdir().unwrap();
    let work = t.path().join("work");
    let s_dir = work.join("pkg");
    std::fs::create_dir_all(s_dir.join("src")).unwrap();
    std::fs::write(
        s_dir.join("src/main.c"),
        "int main(void)\n{\n\treturn 1;\n}\n",
    )
    .unwrap();
    std::fs::write(s_dir.join("README"), "hello\n").unwrap();
    std::fs::write(work.join("0001-good.patch"), GOOD_PATCH).unwrap();
    std::fs::write(work.join("0002-readme.patch"), OTHER_PATCH).unwrap();
    std::fs::write(work.join("0003-bad.patch"), BAD_PATCH).unwrap();
    let settings = PatchSettings {
        unpack_dir: work.display().to_string(),
        s: s_dir.display().to_string(),
    };

    let good =
        SrcUri::parse("file://0001-good.patch file://0002-readme.patch;striplevel=1").unwrap();
    let (ok, out) = run_sh(&patch_script(&good, &settings).unwrap());
    assert!(ok, "{out}");
    assert_eq!(
        std::fs::read_to_string(s_dir.join("src/main.c")).unwrap(),
        "int main(void)\n{\n\treturn 0;\n}\n"
    );
    assert_eq!(
        std::fs::read_to_string(s_dir.join("README")).unwrap(),
        "hello, patched\n"
    );
    assert!(
        !s_dir.join("src/main.c.orig").exists(),
        "no backup files in the output"
    );

    let bad = SrcUri::parse("file://0003-bad.patch").unwrap();
    let (ok, out) = run_sh(&patch_script(&bad, &settings).unwrap());
    assert!(!ok, "a failing hunk must fail the task: {out}");
    let first_lines: Vec<&str> = out.lines().take(2).collect();
    let first_lines = first_lines
        .join("\n")
        .replace(&s_dir.display().to_string(), "$S");
    expect![[r#"
        ERROR: do_patch: 0003-bad.patch does not apply in $S (striplevel 1):
        ERROR: do_patch: 0003-bad.patch: hunk #1 FAILED in file src/main.c"#]]
    .assert_eq(&first_lines);
    assert_eq!(
        std::fs::read_to_string(s_dir.join("src/main.c")).unwrap(),
        "int main(void)\n{\n\treturn 0;\n}\n",
        "a patch that does not apply changes nothing"
    );
    assert!(!s_dir.join("src/main.c.rej").exists());

    let wrong_strip = SrcUri::parse("file://0002-readme.patch;striplevel=3").unwrap();
    let (ok, out) = run_sh(&patch_script(&wrong_strip, &settings).unwrap());
    assert!(!ok);
    assert!(
        out.contains("0002-readme.patch: a file it patches does not exist (wrong striplevel?)"),
        "{out}"
    );
}

#[test]
fn download_lock_serialises_fetches() {
    let BadFileAndMirror {
        _t,
        dl,
        dest,
        bad: _,
        entries,
        settings: s,
    } = bad_file_and_mirror();

    // Another process holds the lock: the fetch waits for it.
    let lock_path = dl.join("pkg-1.0.tar.gz.lock");
    let holder = nix::fcntl::Flock::lock(
        std::fs::File::create(&lock_path).unwrap(),
        nix::fcntl::FlockArg::LockExclusive,
    )
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (e2, s2) = (entries.clone(), s.clone());
    let waiter = std::thread::spawn(move || {
        let r = fetch(&e2, &s2);
        tx.send(()).unwrap();
        r
    });
    assert!(
        rx.recv_timeout(std::time::Duration::from_millis(300))
            .is_err(),
        "the fetch went ahead while the download was locked"
    );
    assert_eq!(std::fs::read(&dest).unwrap(), b"half a download");
    drop(holder);
    let got = waiter.join().unwrap().unwrap();
    assert!(got[0].downloaded);
    assert_eq!(std::fs::read(&dest).unwrap(), TARBALL);

    // Many fetches of one file at once: all succeed, one download, one moved-aside copy.
    std::fs::write(&dest, b"half a download").unwrap();
    let results: Vec<_> = (0..6)
        .map(|_| {
            let (e, s) = (entries.clone(), s.clone());
            std::thread::spawn(move || fetch(&e, &s))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    assert_eq!(results.iter().filter(|r| r[0].downloaded).count(), 1);
    assert_eq!(std::fs::read(&dest).unwrap(), TARBALL);
    assert_eq!(
        dir_names(&dl),
        [
            "pkg-1.0.tar.gz".to_string(),
            format!(
                "pkg-1.0.tar.gz_bad-checksum_{}",
                sha256_hex(b"half a download")
            )
        ]
    );
    assert!(lock_path.is_file());
}

#[test]
fn fixed_outputs_are_known_from_the_declaration_alone() {
    let flags = |f: &str| match f {
        "sha256sum" => Some("aa".repeat(32)),
        "k.sha256sum" => Some("bb".repeat(32)),
        _ => None,
    };
    let vars = |v: &str| match v {
        "SRCREV_full" => Some("C".repeat(40)),
        "SRCREV_short" => Some("c0ffee".to_string()),
        _ => None,
    };
    let v = SrcUri::parse_with(
        "https://e.org/a.tar.gz file://k.deb;name=k file://static.cfg \
         git://e.org/t.git;name=full git://e.org/u.git;name=short ftp://e.org/x.tgz",
        &flags,
        &vars,
    )
    .unwrap();
    let got: Vec<_> = v
        .iter()
        .map(|e| fixed_output(e).map(|f| (f.identity, f.local_name, f.is_dir)))
        .collect();
    assert_eq!(
        got,
        [
            Some((
                format!("sha256:{}", "aa".repeat(32)),
                "a.tar.gz".into(),
                false
            )),
            Some((format!("sha256:{}", "bb".repeat(32)), "k.deb".into(), false)),
            None,
            Some((
                format!("git-export:{}", "c".repeat(40)),
                format!("git2/exports/e.org.t.git/{}", "c".repeat(40)),
                true
            )),
            None,
            None,
        ]
    );
}

#[test]
fn a_file_with_the_wrong_declared_checksum_in_dl_dir_is_moved_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let dl = tmp.path().join("dl");
    std::fs::create_dir_all(&dl).unwrap();
    std::fs::write(dl.join("k.deb"), b"not the kernel").unwrap();
    let want = sha256_hex(b"the kernel");
    let v = SrcUri::parse_with(
        "file://k.deb;name=k",
        &|f| (f == "k.sha256sum").then(|| want.clone()),
        &no_flags,
    )
    .unwrap();
    let settings = FetchSettings {
        dl_dir: dl.clone(),
        ..FetchSettings::default()
    };
    let err = fetch(&v, &settings).unwrap_err().to_string();
    let bad = sha256_hex(b"not the kernel");
    assert!(
        err.contains(&format!("expected sha256 {want}, got {bad}")),
        "{err}"
    );
    assert!(!dl.join("k.deb").exists());
    assert_eq!(
        std::fs::read(dl.join(format!("k.deb_bad-checksum_{bad}"))).unwrap(),
        b"not the kernel"
    );
}

#[test]
fn git_mirror_tarballs_are_written_and_serve_another_dl_dir_offline() {
    let t = tempfile::tempdir().unwrap();
    let (bare, _first, second, _topic) = bare_repo(t.path());
    let dl = t.path().join("dl");
    let rev = second.clone();
    let local = SrcUri::parse_with(
        &format!("git://{};protocol=file;branch=main", bare.display()),
        &no_flags,
        &move |v| (v == "SRCREV").then(|| rev.clone()),
    )
    .unwrap();
    let got = fetch(&local, &settings(&dl)).unwrap();
    let tarball = git_mirror_tarball(&local[0], &dl, got[0].downloaded)
        .unwrap()
        .expect("a tarball of the fresh mirror");
    let name = local[0].local_name.trim_start_matches("git2/").to_string();
    assert_eq!(tarball, dl.join(format!("git2_{name}.tar.gz")));
    assert_eq!(
        git_mirror_tarball(&local[0], &dl, false).unwrap(),
        None,
        "current already"
    );

    // A second DL_DIR, offline, with DL_DIR #1 as a file:// premirror; the
    // upstream repository is gone, so only the tarball can serve it.
    std::fs::remove_dir_all(&bare).unwrap();
    let dl2 = t.path().join("dl2");
    let mut s = settings(&dl2);
    s.no_network = true;
    s.premirrors = parse_mirrors(
        "PREMIRRORS",
        &format!("git://.*/.* file://{}/", dl.display()),
    )
    .unwrap();
    let got2 = fetch(&local, &s).unwrap();
    assert!(got2[0].downloaded, "taken from the tarball");
    assert_eq!(got2[0].digest, got[0].digest);
    assert!(dl2.join(&local[0].local_name).join("HEAD").is_file());
}

#[test]
fn a_declared_file_only_in_dl_dir_can_come_from_a_file_premirror() {
    let tmp = tempfile::tempdir().unwrap();
    let dl = tmp.path().join("dl");
    let mirror = tmp.path().join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    std::fs::write(mirror.join("k.deb"), b"the kernel").unwrap();
    let want = sha256_hex(b"the kernel");
    let v = SrcUri::parse_with(
        "file://k.deb;name=k;unpack=0",
        &|f| (f == "k.sha256sum").then(|| want.clone()),
        &no_flags,
    )
    .unwrap();
    let settings = FetchSettings {
        dl_dir: dl.clone(),
        premirrors: parse_mirrors(
            "PREMIRRORS",
            &format!("file://.* file://{}/", mirror.display()),
        )
        .unwrap(),
        no_network: true,
        ..FetchSettings::default()
    };
    let got = fetch(&v, &settings).unwrap();
    assert!(got[0].downloaded);
    assert_eq!(got[0].local_path, dl.join("k.deb"));
    assert_eq!(std::fs::read(dl.join("k.deb")).unwrap(), b"the kernel");
    // Undeclared: a file of the layer, never looked for on mirrors.
    let plain = SrcUri::parse("file://other.cfg").unwrap();
    assert!(matches!(
        fetch(&plain, &settings).unwrap_err(),
        BuiltinError::LocalFileNotFound { .. }
    ));
}
