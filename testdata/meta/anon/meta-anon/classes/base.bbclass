# Anonymous functions run at the end of parsing, in definition order,
# classes included where they were inherited (BitBake manual: "Anonymous
# Python Functions").
ORDER = "start"
python () {
    d.appendVar('ORDER', ' base')
}
