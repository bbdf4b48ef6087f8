SUMMARY = "A recipe of a build directory without kas"
