"""What a phone's camera would read from a QR code the page drew: the
element's pixels as Chromium painted them, decoded by ZXing (zxing-cpp),
a reader no one here wrote. A QR code carrying the wrong link, or drawn
so it cannot be read, fails the test that reads it."""
from __future__ import annotations

import io

import zxingcpp
from PIL import Image
from playwright.sync_api import Locator


def read_qr(element: Locator) -> str:
    element.scroll_into_view_if_needed()
    image = Image.open(io.BytesIO(element.screenshot()))
    found = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(found) == 1, f"expected one readable QR code in the element, found {len(found)}"
    return found[0].text
