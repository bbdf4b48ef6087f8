"""Stand-in for bb.build: its presence of ensure_task_prefix tells bitzel
that this BitBake names addtask's after/before entries with do_."""


def ensure_task_prefix(name):
    raise RuntimeError("the stand-in's ensure_task_prefix ran: bitzel only checks that it exists")
