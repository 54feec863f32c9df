"""``python -m redismem`` runs the ``redismem`` command."""

from redismem.cli import main

main()
