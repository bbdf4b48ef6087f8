SUMMARY = "Hello"
LICENSE = "MIT"
# inherit expands its argument when the statement is evaluated
# (manual: "inherit Directive").
HELLO_CLASSES = "autotools"
inherit ${HELLO_CLASSES}
RDEPENDS:${PN} = "busybox"
def hello_helper(d):
    return "x"

python do_report() {
    bb.note(d.getVar("PN"))
}
addtask report after do_compile
unset SUMMARY
CFLAGS[doc] ??= "weak doc"
unset CFLAGS[doc]
export HELLO_ENV = "1"
