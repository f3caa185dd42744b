"""`python -m kernelwright`: the same CLI as the `kernelwright` command."""

from kernelwright.cli.app import main

main()
