"""`python -m georgebot` is the `georgebot` command."""

from georgebot.cli import main

main()
