# setVar/appendVar/prependVar, flags, locals, tuple unpacking, +=,
# one-line if, return: all visible in `bitzel show`.
inherit features
BBCLASSEXTEND = "native"
FOO = "1"
DEPENDS = "zlib"
DEPENDS:append:class-target = " target-only"
do_compile[dirs] = "/build"

python () {
    if d.getVar('FOO') == '1':
        d.appendVar('DEPENDS', ' bar')
    d.prependVar('DEPENDS', 'first ')
    d.setVarFlag('do_compile', 'network', '1')
    d.appendVarFlag('do_compile', 'dirs', ' /extra')
    flags = d.getVarFlags('do_compile')
    d.setVar('COMPILE_FLAGS', ' '.join(sorted(flags.keys())))
    a, b = d.getVar('PN'), 'x'
    total = 0
    for i in range(4): total += i
    d.setVar('SUMMARY_ANON', '%s-%s-%d' % (a, b, total))
    if bb.utils.contains('DISTRO_FEATURES', 'x11', True, False, d): d.setVar('GUI', 'x11')
    d.delVar('FOO')
    d.appendVar('ORDER', ' recipe')
    return
    d.setVar('AFTER_RETURN', 'yes')
}
