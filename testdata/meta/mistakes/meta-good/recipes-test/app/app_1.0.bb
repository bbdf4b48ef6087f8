SUMMARY = "An application whose DEPENDS misspells zlib"
DEPENDS = "zlibb"
