DEPENDS = "virtual/libc"
DEPENDS:class-native = ""
BBCLASSEXTEND = "native"
