do_compile[depends] = "cycle-a:do_install"
