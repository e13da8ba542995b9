"""`python -m server MODULE:APP` is `wsrun MODULE:APP`."""

from server.cli import main

if __name__ == "__main__":
    main(prog_name="wsrun")
