# Not chosen unless asked for: DEFAULT_PREFERENCE below the default 0.
DEFAULT_PREFERENCE = "-1"
