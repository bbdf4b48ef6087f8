CLASSOVERRIDE = "class-native"
python () {
    d.setVar('NATIVE_ANON', d.getVar('PN'))
}
