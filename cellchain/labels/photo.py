"""Reading a label from a photo (a phone's camera) on the server, with zxing-cpp.

``read_photo`` finds the cellchain QR code in an uploaded picture and returns the text it
holds; the caller resolves that text exactly as if a scanner had typed it. A photo with no
readable code, a code that is not a cellchain label, or two different labels in one photo is
refused with what to do instead: nothing is ever guessed.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from cellchain.core.i18n import LazyText, _, lazy
from cellchain.core.payload import is_payload
from cellchain.errors import InvalidInput

#: larger photos are refused before decoding (a phone photo is a few MB)
MAX_PHOTO_BYTES = 15 * 1024 * 1024
#: photos are scaled down to this many pixels on the long side before decoding
_DECODE_SIDE = 2400
#: larger pictures are refused before they are decompressed: a phone's photo is 12-50
#: megapixels, while a few kB of PNG can claim billions (a decompression bomb)
MAX_PHOTO_PIXELS = 64_000_000
# Pillow's own guard (a warning above the limit, an error above twice it), set on purpose to
# the same limit rather than left at its default of about 89 megapixels
Image.MAX_IMAGE_PIXELS = MAX_PHOTO_PIXELS


class UnreadablePhoto(InvalidInput):
    """A photo from which no label could be read, and why."""

    title: str | LazyText = lazy("Label not readable")
    type_slug = "unreadable-photo"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, errors={"photo": [detail]})


def read_photo(data: bytes) -> str:
    """The payload of the one cellchain label in the photo."""
    if not data:
        raise UnreadablePhoto(_("No photo was received; take or choose a photo of the label."))
    if len(data) > MAX_PHOTO_BYTES:
        raise UnreadablePhoto(
            _(
                "The photo is larger than %(megabytes)s MB; take it again at a lower size.",
                megabytes=MAX_PHOTO_BYTES // (1024 * 1024),
            )
        )
    image = _open(data)
    import zxingcpp

    # the set zxing-cpp makes of a tuple of formats, made here so its type is what it takes
    formats = zxingcpp.BarcodeFormats(
        (zxingcpp.BarcodeFormat.QRCode, zxingcpp.BarcodeFormat.DataMatrix)
    )
    texts = {result.text for result in zxingcpp.read_barcodes(image, formats=formats)}
    ours = {text for text in texts if is_payload(text)}
    if len(ours) > 1:
        raise UnreadablePhoto(
            _("The photo shows more than one cellchain label; photograph one label at a time.")
        )
    if ours:
        return ours.pop()
    if texts:
        raise UnreadablePhoto(
            _(
                "The photo holds a code, but not a cellchain label's QR code (an ISBT 128 Data "
                "Matrix or another system's code); photograph the QR code of the label."
            )
        )
    raise UnreadablePhoto(
        _(
            "No label could be read in the photo. Hold the label flat, fill most of the picture "
            "with its QR code, avoid glare, and try again — or type the code printed under it."
        )
    )


def _open(data: bytes) -> Image.Image:
    too_large = UnreadablePhoto(
        _(
            "The picture is larger than %(megapixels)s megapixels; take it again at a lower "
            "resolution.",
            megapixels=MAX_PHOTO_PIXELS // 1_000_000,
        )
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(data))  # reads the header only
            if image.width * image.height > MAX_PHOTO_PIXELS:
                raise too_large
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise too_large from error
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise UnreadablePhoto(
            _("The file is not a picture this system can read; send a JPEG or PNG photo.")
        ) from error
    image = ImageOps.exif_transpose(image)  # a phone records its rotation in EXIF
    image = image.convert("L")
    if max(image.size) > _DECODE_SIDE:
        image.thumbnail((_DECODE_SIDE, _DECODE_SIDE))
    return image
