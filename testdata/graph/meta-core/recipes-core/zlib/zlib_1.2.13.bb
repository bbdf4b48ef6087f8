RPROVIDES:${PN} = "libz1"
