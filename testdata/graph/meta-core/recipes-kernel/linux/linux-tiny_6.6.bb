inherit deploy
PROVIDES = "virtual/kernel"
PACKAGES_DYNAMIC = "^kernel-module-.*"
