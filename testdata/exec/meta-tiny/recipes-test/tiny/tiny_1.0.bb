SUMMARY = "bitzel-exec test recipe: every task writes something the tests look for"
LICENSE = "MIT"

SRC_URI = "file://hello.txt"

# Exported: part of the environment, so of every key.
export GREETING = "hello"
# Not exported and not used by any script: no key depends on it.
UNUSED_SETTING = "1"

# The config fragments (a glob) and a directory, mounted under ${TASK_FILESDIR}.
do_configure[file-checksums] = "${FILE_DIRNAME}/files/*.cfg:True ${FILE_DIRNAME}/files/conf.d:True ${FILE_DIRNAME}/files/absent.cfg.d:False"
do_configure() {
	cat ${TASK_FILESDIR}/*.cfg >config.txt
	cat ${TASK_FILESDIR}/conf.d/extra >>config.txt
}

tiny_pre() {
	echo "pre ran in $(pwd)" >${B}/pre.txt
}
tiny_post() {
	echo "post" >>${B}/out.txt
}
do_compile[prefuncs] = "tiny_pre"
do_compile[postfuncs] = "tiny_post"
do_compile() {
	cat ${WORKDIR}/hello.txt config.txt >out.txt
	echo "${GREETING} from do_compile" >>out.txt
}

do_install() {
	mkdir -p ${D}${datadir}/tiny
	cp out.txt pre.txt ${D}${datadir}/tiny/
}
