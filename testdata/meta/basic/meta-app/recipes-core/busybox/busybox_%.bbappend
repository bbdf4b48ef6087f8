# Append files match with the % wildcard (manual: "Append Files").
EXTRA_OECONF:append = " --from-append"
# THISDIR is the directory of the file being parsed (this bbappend), so :=
# captures it here.
FILESEXTRAPATHS:prepend := "${THISDIR}/files:"
