SUMMARY = "The library app means"
