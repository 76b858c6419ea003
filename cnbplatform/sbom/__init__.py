"""SBOMs: collect the buildpacks' SBOMs from an image's SBOM layer, inventory its OS packages, merge, write
CycloneDX 1.6 / SPDX 2.3 (validated) and the HTML audit report, and diff two images (docs/design.md §3 decision 9).

Modules import their format libraries themselves, so importing this package stays cheap.
"""
