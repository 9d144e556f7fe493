"""The hospital side: a DICOM receiver (C-STORE SCP) that forwards each received instance to the
upload bucket, through a durable local spool, so it flows through the pipeline like any upload.

    python -m pacs          # configured by environment variables (pacs.config)

Modules: ``config`` (the settings, read once), ``spool`` (what was acknowledged, on disk until it is
uploaded), ``uploader`` (spool to bucket, with retries), ``receiver`` (the pynetdicom application
entity: who may send, what it accepts, when it answers success).
"""
