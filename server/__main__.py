import sys

from edgescore.server.main import main

# Guarded: compute workers start by importing the main module again (multiprocessing).
if __name__ == "__main__":
    sys.exit(main())
