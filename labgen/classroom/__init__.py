"""The classroom: a lab per seat on one server, reached by ssh (and, later, a browser), run by the trainer."""
