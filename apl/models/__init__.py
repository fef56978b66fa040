"""Networks of APL: G_ws (detector), G_sr (self-referenced deblurrer), D (discriminator)."""

from .deblurrer import UFAT, VARIANTS, SelfReferencedDeblurrer, UFATResBlock
from .detector import DefocusDetector
from .discriminator import Discriminator
from .summary import format_summary, summarize

__all__ = [
    "DefocusDetector",
    "SelfReferencedDeblurrer",
    "Discriminator",
    "UFAT",
    "UFATResBlock",
    "VARIANTS",
    "summarize",
    "format_summary",
]
