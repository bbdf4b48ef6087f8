def handle(fn, d, include=0):
    raise RuntimeError("the stand-in has no parser")
