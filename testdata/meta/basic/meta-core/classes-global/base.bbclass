# base is always inherited first (manual: "INHERIT Configuration Directive"
# and "bitbake.conf / base.bbclass").
BB_DEFAULT_TASK ?= "build"

# Tasks (manual: "Tasks": "Promoting a Function to a Task").
base_do_fetch() {
	echo fetching ${SRC_URI}
}
base_do_compile() {
	oe_runmake
}
python base_do_build() {
    bb.note("build")
}
addtask fetch
addtask compile after do_fetch
addtask build after do_compile
EXPORT_FUNCTIONS do_fetch do_compile do_build

oe_runmake() {
	${MAKE} ${EXTRA_OEMAKE} "$@"
}
MAKE = "make"
EXTRA_OEMAKE = ""
