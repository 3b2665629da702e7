"""Paper experiments, each a function the command line calls (entropy toy, ...)."""
