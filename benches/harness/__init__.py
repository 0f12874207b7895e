"""The parts of benches/report.py: driving the runtimes (runtimes.py), the memory and density
measurements (memory.py) and the SVG charts (svg.py). Standard library only."""
