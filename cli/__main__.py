"""`python -m cli`: the `sweep` command, as the tests run it from a checkout."""
from cli import main

main()
