"""`python -m imputehub`: the same as the `imputehub` command."""

from imputehub.cli.main import main

main()
