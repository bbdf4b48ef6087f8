PN = "hostfact"

# Parse-time Python that uses a value the configuration read from the host
# (crates/bitzel-python/tests/host.rs: a warm parse after the host changed
# equals a cold one).
python () {
    d.setVar("FACT_SEEN", "seen:" + (d.getVar("HOST_FACT") or "none"))
}
