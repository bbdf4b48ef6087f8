# A Python error BitBake would raise too fails the parse, with file:line.
python () {
    d.setVar('X', '1')
    x = undefined_name
}
