PN = "vetoed"
