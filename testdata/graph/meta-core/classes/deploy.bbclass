addtask deploy after do_compile before do_build
do_deploy[dirs] = "${WORKDIR}/deploy"
