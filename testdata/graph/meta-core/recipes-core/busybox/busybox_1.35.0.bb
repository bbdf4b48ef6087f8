SUMMARY = "busybox for the graph fixtures"
DEPENDS = "zlib (>= 1.1) virtual/libc quilt-native git-native"
RDEPENDS:${PN} = "libz1"
RRECOMMENDS:${PN} = "kernel-module-loop"
# `before` inverts into the later task's dependencies.
addtask selftest after do_compile before do_install
# A deleted task disappears, and so do the edges through it (no reconnection,
# as in BitBake): do_configure loses its do_patch dependency.
deltask do_patch
