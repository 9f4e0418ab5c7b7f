"""``python -m train``: parsing flags into the requests of :mod:`train.commands` and printing outcomes.

:mod:`train.cli.args` builds each step's parser from its request's fields;
:mod:`train.cli.run` runs a parsed step and prints.
"""
