"""`python -m steelinspect ...` (also what `torchrun -m steelinspect` runs)."""

from steelinspect.cli.main import main

if __name__ == "__main__":
    main()
