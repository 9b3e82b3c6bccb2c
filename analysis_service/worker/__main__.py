"""`python -m analysis_service.worker`."""

from analysis_service.worker import main

main()
