"""`make bench`: throughput, latency and memory measured on real processes."""
