"""HL7 v2 over MLLP, as dcm4chee's HL7 receiver: ADT messages create, update and merge
patients, ORM^O01 and OMI^O23 orders create worklist items and change their status. Every
message is answered with an ACK, or an error ACK (AE or AR with an ERR segment naming the
segment and field). Messages are parsed by python-hl7 (`hl7`)."""
