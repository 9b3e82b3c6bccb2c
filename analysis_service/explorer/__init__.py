"""The explorer: HTML pages under /ui that browse jobs and their structure through the JSON
API, with plain JavaScript modules and a stylesheet shipped in `static/` (no build step)."""
