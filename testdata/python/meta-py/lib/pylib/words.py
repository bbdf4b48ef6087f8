def shout(d, var):
    value = d.getVar(var) or ""
    out = []
    i = 0
    while i < len(value.split()):
        out.append(value.split()[i].upper())
        i += 1
    return "-".join(out)
