"""What the Lambdas send to the endpoint: an upload validated and re-encoded as a small gray PNG."""

from __future__ import annotations

import io

from PIL import Image

from model.core.decoding import MAX_IMAGE_BYTES, decoder_for


def downsize_png(data: bytes, max_side: int = 512, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """Validate an upload and re-encode it as gray PNG with its longest side at most ``max_side``.

    A few hundred KB instead of a multi-MB original, with every bad input rejected before the endpoint
    is called. Larger than any preset, so no detail the model uses is lost. Peak memory stays near the
    decoded size (``model.core.decoding.MAX_DECODED_BYTES`` at most).
    """
    gray = decoder_for(data, max_bytes).reduced(data, max_side)
    if max(gray.size) > max_side:
        gray.thumbnail((max_side, max_side), Image.Resampling.BILINEAR, reducing_gap=3.0)
    buffer = io.BytesIO()
    gray.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
