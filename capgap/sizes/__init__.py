"""Model sizes: parsing and formatting sizes, parameter counts and FLOPs (``units``), the known model ladders
(``ladders``) and what runs cost (``costs``).

``from capgap.sizes import parse_size`` keeps working: this package answers the names of ``units``, the
module ``capgap.sizes`` was before it became a package.
"""

from capgap.core.faces import forward_to

__getattr__ = forward_to(__name__, "capgap.sizes.units")
