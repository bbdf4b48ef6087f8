# The native class extension (manual: "BBCLASSEXTEND"). bitzel parses the
# recipe again with PN set to "${PN}-native" and this class inherited at
# finalisation, as BitBake does.
CLASSOVERRIDE = "class-native"
prefix = "/usr/native"
