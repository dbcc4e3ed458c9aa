"""DICOMweb clients over httpx (STOW-RS export)."""
