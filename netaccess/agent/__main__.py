"""`python -m netaccess.agent`, and a build's entry point (tools/build-agent)."""

import sys

from netaccess.agent.main import main

sys.exit(main())
