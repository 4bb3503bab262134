"""Benchmarks behind `make bench`: each module measures one target and returns markdown.

Run all: `python -m bench`; one: `python -m bench parse`. Results are written to
`docs/benchmarks.md` with the command and the machine that produced them.
"""
