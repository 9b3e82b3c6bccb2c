"""What both services import: the caption wire contract, settings base, logging, errors."""
