BBIMPORTS = ["words"]
