"""`python -m trellis_ts`: the same command line as the `trellis-ts` script."""

from trellis_ts.cli import main

if __name__ == "__main__":
    main()
