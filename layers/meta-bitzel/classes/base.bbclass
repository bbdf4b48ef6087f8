# base.bbclass: inherited by every recipe (BitBake inherits "base" itself).
#
# The task chain:
#   do_fetch -> do_unpack -> do_patch -> do_configure -> do_compile
#            -> do_install -> do_populate_sysroot -> do_build
# plus do_prepare_recipe_sysroot (after do_fetch, before do_configure), which
# carries the inter-recipe DEPENDS edges, and do_deploy where deploy.bbclass
# adds it.
#
# do_fetch, do_unpack and do_patch are bitzel built-ins (flag [builtin]): Rust
# code in bitzel-exec runs them (fetch on the host; unpack and patch as a
# generated script in the sandbox). Their Python bodies below document what
# they do and are never run by bitzel.

# --- logging helpers for shell tasks -----------------------------------------------
bbplain() {
	echo "$*"
}

bbnote() {
	echo "NOTE: $*"
}

bbwarn() {
	echo "WARNING: $*" >&2
}

bberror() {
	echo "ERROR: $*" >&2
}

bbdebug() {
	# usage: bbdebug <level> <message...>
	shift
	echo "DEBUG: $*"
}

bbfatal() {
	echo "ERROR: $*" >&2
	exit 1
}

die() {
	bbfatal "$*"
}

# --- make ---------------------------------------------------------------------------
oe_runmake_call() {
	bbnote ${MAKE} ${EXTRA_OEMAKE} "$@"
	${MAKE} ${EXTRA_OEMAKE} "$@"
}

oe_runmake() {
	oe_runmake_call ${PARALLEL_MAKE} "$@" || die "oe_runmake failed"
}

# --- Kconfig fragments (BusyBox, the kernel and other Kbuild trees) --------------
# usage: bitzel_merge_config <fragment> [<.config>]
# Every symbol the fragment sets ("CONFIG_X=..." or "# CONFIG_X is not set")
# replaces that symbol's line in .config; the rest of .config is kept.
bitzel_merge_config() {
	frag="$1"
	cfg=.config
	[ $# -lt 2 ] || cfg="$2"
	[ -f "$frag" ] || bbfatal "config fragment $frag not found (is it in SRC_URI?)"
	[ -f "$cfg" ] || bbfatal "$cfg not found: run the defconfig step first"
	awk '
	function sym(l,   s) {
		if (match(l, /^CONFIG_[A-Za-z0-9_]+=/)) return substr(l, 1, RLENGTH - 1)
		if (match(l, /^# CONFIG_[A-Za-z0-9_]+ is not set$/)) { s = substr(l, 3); sub(/ is not set$/, "", s); return s }
		return ""
	}
	NR == FNR { s = sym($0); if (s != "") drop[s] = 1; next }
	{ s = sym($0); if (!(s in drop)) print }
	' "$frag" "$cfg" >"$cfg.bitzel-merge"
	grep -E '^(CONFIG_[A-Za-z0-9_]+=|# CONFIG_[A-Za-z0-9_]+ is not set$)' "$frag" >>"$cfg.bitzel-merge" || true
	mv "$cfg.bitzel-merge" "$cfg"
	bbnote "merged $(grep -c -E '^(CONFIG_|# CONFIG_)' "$frag") settings from $frag into $cfg"
}

# usage: bitzel_check_config <fragment> [<.config>]
# Fails when a setting of the fragment did not survive `make oldconfig`
# (typically an unmet dependency of the symbol).
bitzel_check_config() {
	frag="$1"
	cfg=.config
	[ $# -lt 2 ] || cfg="$2"
	grep -E '^(CONFIG_[A-Za-z0-9_]+=|# CONFIG_[A-Za-z0-9_]+ is not set$)' "$frag" | while IFS= read -r line; do
		case "$line" in
		"# "*)
			s=${line#"# "}
			s=${s%" is not set"}
			if grep -q "^$s=" "$cfg"; then
				bbfatal "$frag: '$line' did not survive oldconfig: $cfg has $(grep "^$s=" "$cfg")"
			fi
			;;
		*)
			grep -qxF "$line" "$cfg" || bbfatal "$frag: '$line' did not survive oldconfig (unmet dependency?)"
			;;
		esac
	done
}

# Note: BitBake expands ${NAME} references in shell functions before the shell
# sees them, so the helpers above avoid the shell's ${...} forms.

# --- the tasks ------------------------------------------------------------------------
python base_do_fetch() {
    # bitzel built-in "fetch": downloads every SRC_URI entry into DL_DIR on the
    # host (PREMIRRORS, upstream, MIRRORS; checksums verified; BB_NO_NETWORK
    # honoured) and records each file's content digest as an input of the
    # tasks that follow.
    bb.fatal("do_fetch is run by bitzel's fetch built-in")
}
do_fetch[builtin] = "fetch"
do_fetch[network] = "1"
do_fetch[dirs] = "${DL_DIR}"
do_fetch[vardeps] += "SRCREV"
do_fetch[doc] = "Fetches the source code (SRC_URI) into DL_DIR"
addtask fetch

python base_do_unpack() {
    # bitzel built-in "unpack": extracts every SRC_URI entry from
    # /bitzel/downloads into UNPACKDIR (archives, .deb, plain files, git
    # trees; subdir=, unpack=, striplevel= honoured).
    bb.fatal("do_unpack is run by bitzel's unpack built-in")
}
do_unpack[builtin] = "unpack"
do_unpack[dirs] = "${UNPACKDIR}"
do_unpack[doc] = "Unpacks the source code into the work directory"
addtask unpack after do_fetch

python base_do_patch() {
    # bitzel built-in "patch": applies the SRC_URI patches in order in
    # ${S}/<patchdir> with patch -p<striplevel> (default 1).
    bb.fatal("do_patch is run by bitzel's patch built-in")
}
do_patch[builtin] = "patch"
do_patch[dirs] = "${WORKDIR}"
do_patch[doc] = "Applies the SRC_URI patches to the source code"
addtask patch after do_unpack

# The dependencies' sysroots: bitzel mounts the [sysroot-layer] outputs of the
# do_populate_sysroot tasks this task depends on at ${STAGING_DIR_HOST}
# (/bitzel/sysroot); there is nothing to copy, so the task itself is empty.
do_prepare_recipe_sysroot[noexec] = "1"
do_prepare_recipe_sysroot[deptask] = "do_populate_sysroot"
do_prepare_recipe_sysroot[doc] = "Gives the recipe the sysroot of its dependencies"
addtask prepare_recipe_sysroot before do_configure after do_fetch

base_do_configure() {
	:
}
do_configure[dirs] = "${B}"
do_configure[doc] = "Configures the source"
addtask configure after do_patch do_prepare_recipe_sysroot

base_do_compile() {
	if [ -e Makefile ] || [ -e makefile ] || [ -e GNUmakefile ]; then
		oe_runmake || die "make failed"
	else
		bbnote "nothing to compile"
	fi
}
do_compile[dirs] = "${B}"
do_compile[doc] = "Compiles the source in the build directory"
addtask compile after do_configure

base_do_install() {
	:
}
do_install[dirs] = "${B}"
do_install[cleandirs] = "${D}"
do_install[doc] = "Installs the build result into the destination directory D"
addtask install after do_compile

# Stages what do_install put in ${D} for the recipes that DEPEND on this one.
# bitzel has no packaging step: the whole of ${D} is staged (a native recipe
# stages the part below the native sysroot's path, where it installs), and
# images assemble their root file system from these layers.
SYSROOT_SOURCE ?= "${D}"
base_do_populate_sysroot() {
	if [ -d ${SYSROOT_SOURCE} ]; then
		cp -a ${SYSROOT_SOURCE}/. ${SYSROOT_DESTDIR}/
	fi
}
do_populate_sysroot[dirs] = "${WORKDIR}"
do_populate_sysroot[cleandirs] = "${SYSROOT_DESTDIR}"
do_populate_sysroot[sysroot-layer] = "sysroot-destdir"
do_populate_sysroot[doc] = "Stages what do_install installed for the recipes that depend on this one"
addtask populate_sysroot after do_install

do_build[noexec] = "1"
do_build[doc] = "The default task: everything the recipe builds"
addtask build after do_populate_sysroot

EXPORT_FUNCTIONS do_fetch do_unpack do_patch do_configure do_compile do_install do_populate_sysroot
