# Task flags: [noexec] tasks are nodes like any other, [nostamp], [dirs],
# [cleandirs] carried to the node.
addtask extra after do_compile before do_build
do_extra[noexec] = "1"
do_extra[nostamp] = "1"
do_extra[dirs] = "${WORKDIR}/extra ${B}"
do_extra[cleandirs] = "${WORKDIR}/extra"
