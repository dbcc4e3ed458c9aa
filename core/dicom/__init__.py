"""DICOM data handling: headers, attribute filters, Part 10 files, UIDs."""

from pydicom import config as _pydicom_config

# A server reads whatever peers send: invalid values are stored as received, not logged
# as warnings on every read (pydicom warns by default, which costs time and floods logs).
_pydicom_config.settings.reading_validation_mode = _pydicom_config.IGNORE
