PN = "marked"

# Parse-time Python that reads a file and marks it as a dependency of the
# parse, as poky's python3 recipe does with its manifest: the file is listed
# in BBINCLUDED, and a change to it parses the recipe again
# (crates/bitzel-python/tests/host.rs).
python () {
    path = d.getVar("MARKED_FILE")
    if not path:
        return
    bb.parse.mark_dependency(d, path)
    with open(path) as f:
        d.setVar("MARKED_SEEN", f.read().strip())
}
