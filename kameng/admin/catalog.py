"""Admin pages for the catalog and card-key stock."""
