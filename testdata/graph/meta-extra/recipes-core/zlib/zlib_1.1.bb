# Older, but its layer has the higher BBFILE_PRIORITY: it wins unless a
# PREFERRED_VERSION selects another.
RPROVIDES:${PN} = "libz1"
