addtask build
do_build[noexec] = "1"
