SUMMARY = "The host's C compiler, offered to recipes as virtual/cc"
DESCRIPTION = "bitzel's 'host' build root lets tasks run the allow-listed host \
compiler (gcc, binutils, libc6-dev) read-only from /usr. This recipe only \
names that compiler as the provider of virtual/cc so that recipes can say \
DEPENDS = \"virtual/cc\" as they would for a cross toolchain. It builds \
nothing: the compiler is already part of every task's key through the \
host-tool set (HOSTTOOLS) and the host-root digest (headers, libraries, cc1), \
so a compiler or libc upgrade re-runs what it must."
LICENSE = "MIT"
PROVIDES = "virtual/cc"

# Nothing to fetch, build or stage.
SRC_URI = ""
do_fetch[noexec] = "1"
do_unpack[noexec] = "1"
do_patch[noexec] = "1"
do_configure[noexec] = "1"
do_compile[noexec] = "1"

# A record of which compiler the host root offers, for `bitzel show` and logs;
# it stays in this recipe's own output and is not staged into sysroots.
do_install() {
	mkdir -p ${WORKDIR}/host-toolchain
	${CC} --version | head -n1 >${WORKDIR}/host-toolchain/cc-version
	bbnote "virtual/cc is the host compiler: $(cat ${WORKDIR}/host-toolchain/cc-version)"
}
