"""What every layer uses: the one bad-input error, safe file writing, the package's data files, CSV tables.

The bottom layer: it imports nothing else from capgap.
"""
