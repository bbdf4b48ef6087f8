PN = "broken"

python () {
    try:
        pass
    finally:
        d.setVar("X", "1")
    undefined_name_here(d)
}
