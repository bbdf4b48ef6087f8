# Found next to this file.
require demo.inc
# classes-recipe/ is looked in first, through BBPATH.
inherit tool
# Inherited at finalisation: listed after this recipe's own files.
inherit_defer late
BBCLASSEXTEND = "native"

do_compile() {
	:
}
addtask compile before do_build
do_compile[depends] = "${TOOLDEP}:do_populate_sysroot"
do_compile[nostamp] = "1"
do_build[deptask] = "do_compile"

python () {
    d.setVar("ANON_RAN", "yes")
}
