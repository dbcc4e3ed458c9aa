"""Fixtures shared by the tests of core/: export targets and archives with exporters, an
archive with its HL7 listener."""

from tests.core.export_support import orthanc_factory, start_archive, storescp  # noqa: F401
from tests.core.hl7_support import hl7_archive  # noqa: F401
