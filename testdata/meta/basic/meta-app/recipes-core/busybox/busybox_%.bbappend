# Append files match with the % wildcard (manual: "Append Files").
EXTRA_OECONF:append = " --from-append"
# THISDIR is not set yet: an unexpandable reference stays literal
# (manual: "Variable Expansion").
FILESEXTRAPATHS:prepend := "${THISDIR}/files:"
THISDIR = "/somewhere"
