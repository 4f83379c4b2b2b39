"""`make bench`: amiflow's figures against what the machine and Kafka allow (see BENCHMARKS.md)."""
