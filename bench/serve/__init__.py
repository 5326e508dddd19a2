"""Helpers of bench/bench_serve.py: peer servers, the wrk load runner and the report."""
