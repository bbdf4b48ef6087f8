# A recipe class found in classes-recipe/ (manual: "Locating Class Files").
EXTRA_OECONF ?= ""
autotools_do_configure() {
	${S}/configure --prefix=${prefix} ${EXTRA_OECONF}
}
autotools_do_install() {
	oe_runmake install DESTDIR=${D}
}
addtask configure after do_fetch before do_compile
addtask install after do_compile before do_build
EXPORT_FUNCTIONS do_configure do_install
do_install[dirs] = "${B}"
