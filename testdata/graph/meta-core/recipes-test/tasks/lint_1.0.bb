# A malformed [depends] entry (no ':'): an error as soon as this recipe is
# part of a build, whichever of its tasks is wanted (as in BitBake).
do_lint[depends] = "no-colon-here"
addtask lint
