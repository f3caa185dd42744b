"""`python -m kernelwright`: the same CLI as the `kernelwright` command."""

from kernelwright.cli import main

main()
