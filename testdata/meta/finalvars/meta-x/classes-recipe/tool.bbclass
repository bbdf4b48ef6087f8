TOOLDEP = "tool-native"
