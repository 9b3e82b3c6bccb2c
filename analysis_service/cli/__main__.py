"""`python -m analysis_service.cli`: the same as the `subpop` console script."""

from analysis_service.cli.main import run

run()
