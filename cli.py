"""`python cli.py ...` from a checkout: the same command line as `trellis-ts ...`."""

if __name__ == "__main__":
    from trellis_ts.cli import main

    main()
