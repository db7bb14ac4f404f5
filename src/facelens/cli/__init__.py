"""The ``facelens`` command line (an edge: it reads settings, the library does not)."""
