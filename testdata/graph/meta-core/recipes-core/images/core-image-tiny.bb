inherit image
IMAGE_INSTALL = "busybox"
