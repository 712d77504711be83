"""`python -m edgescore.device_agent`."""

from .main import main

raise SystemExit(main())
