# No tasks: these fixtures stop before any task runs.
