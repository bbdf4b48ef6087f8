# The recipe this appended to was removed (or renamed) in its layer.
EXTRA = "1"
