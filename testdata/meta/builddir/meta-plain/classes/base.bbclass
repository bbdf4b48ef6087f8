do_build() {
    :
}
addtask build
