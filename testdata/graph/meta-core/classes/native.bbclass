# The native variant: no packaging (the tasks are deleted; deleted tasks
# never appear in the graph and drop out of other tasks' dependencies).
CLASSOVERRIDE = "class-native"
PACKAGES = ""
deltask do_package
deltask do_packagedata
deltask do_package_write
