"""steelinspect: find and classify defects on steel-plate surface images (Severstal format)."""

__version__ = "0.1.0"
