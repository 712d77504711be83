import sys

from edgescore.server.main import main

sys.exit(main())
