do_compile[depends] = "cycle-b:do_install"
