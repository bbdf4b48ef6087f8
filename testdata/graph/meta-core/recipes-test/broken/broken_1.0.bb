SUMMARY = "asks for something nobody provides"
DEPENDS = "zlib does-not-exist"
