"""`python -m edgescore.device_agent`."""

from edgescore.device_agent.main import main

raise SystemExit(main())
