"""`python -m analysis_service.auth keys create|list|revoke`."""

import sys

from analysis_service.auth.cli import main

sys.exit(main())
