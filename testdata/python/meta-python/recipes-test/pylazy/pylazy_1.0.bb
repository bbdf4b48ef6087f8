# Inline Python calling a submodule that only this recipe's anonymous
# function imports (as poky's nativesdk values call oe.classextend).
SUMMARY = "Python parse-cache fixture"
LICENSE = "MIT"
LAZY = "${@pyfixture.lazy.tagged(d)}"

python () {
    import pyfixture.lazy
}
