# A function that reaches a construct outside the subset changes nothing.
A = "a"
python () {
    d.setVar('A', 'changed')
    d.setVar('NEW', 'x')
    d.setVarFlag('A', 'doc', 'changed')
    while True:
        pass
}
python () {
    d.setVar('SECOND', 'ran')
}
