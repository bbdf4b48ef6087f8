LATE = "yes"
