"""No events: bitzel fires only the classes a BitBake has."""
