# A value that is a Python object holding `d` (as nativesdk's ClassExtender):
# the parse cache keeps it by its pickled state.
PN = "kept"
BASE_NAME = "zlib"

python () {
    import pylib.keeper
    pylib.keeper.Keeper("nativesdk", d)
    d.setVar("EXTENDED", "${@d.getVar('KEEPER').name('BASE_NAME')}")
}
